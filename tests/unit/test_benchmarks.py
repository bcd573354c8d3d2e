"""Smoke tests of the benchmark scripts: they run, and print a line of numbers per algorithm; the
learner benchmark's batches have the recorded SMAX episode lengths and the host's padding."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import episode_lengths  # noqa: E402

ALGORITHMS = ("qmix", "cds", "acorm", "r3dm")
LEARNER_ROWS = (*ALGORITHMS, "r3dm-padded")
NUMBER = r"-?\d+(?:\.\d+)?"


def run_script(name: str, *args: str, timeout: float = 120) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    return proc.stdout


def rows(text: str, min_numbers: int, names=ALGORITHMS) -> dict[str, list[float]]:
    """algorithm -> the numbers of the last line that starts with its name and has enough numbers."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in names:
            numbers = [float(n) for n in re.findall(rf"(?<![\w.]){NUMBER}(?![\w.])", line[len(words[0]):])]
            if len(numbers) >= min_numbers:
                found[words[0]] = numbers
    return found


def test_learner_update_quick_prints_every_algorithm_with_time_ratio_flops_and_memory():
    out = run_script("learner_update.py", "--quick")
    assert "memory method check" in out and "(ok)" in out
    # both phases of 2s3z, each with its padding fraction, and R3DM with and without skipping padding
    padding = re.findall(rf"phase (early|late): .*\n  padding fraction ({NUMBER}) over 1 batch", out)
    assert [p for p, _ in padding] == ["early", "late"], out
    assert all(0 <= float(f) < 1 for _, f in padding), out
    assert len(re.findall(rf"skipping padding: r3dm-padded / r3dm update time = {NUMBER}x", out)) == 2, out
    table = rows(out, min_numbers=7, names=LEARNER_ROWS)
    assert set(table) == set(LEARNER_ROWS), out
    # columns: update ms, (min, max), amortised ms, x QMIX, GFLOP/upd, GFLOP/s, peak MB, state MB (+ contrastive)
    for name, numbers in table.items():
        update_ms, ratio, peak_mb, state_mb = numbers[0], numbers[-5], numbers[-2], numbers[-1]
        assert update_ms > 0 and peak_mb > 0 and state_mb > 0, (name, numbers)
        assert ratio > 0, (name, numbers)
    assert table["qmix"][-5] == 1.0  # the baseline's own ratio
    for part in ("world-model training", "world-model reward term", "policy-KL reward term",
                 "TD + rest of the update", "contrastive step"):
        assert part in out, part
    assert out.count("target GFLOP/s") == 2 * 4  # per phase, every row but the baseline


def test_padding_fraction_of_known_batches():
    # batch 1: 2 episodes padded to 10 steps (20 slots, 15 steps); batch 2: 3 padded to 4 (12 slots, 10 steps)
    assert episode_lengths.padding_fraction([[10, 5], [4, 4, 2]]) == pytest.approx(1 - 25 / 32)
    assert episode_lengths.padding_fraction([[7, 7, 7]]) == 0.0


def test_learner_update_batch_is_filled_and_padded_as_the_host_runner_does():
    """Episodes of 3 (terminated) and 5 (timed out) steps: 6 slots (5 steps + the final obs), and the
    learner's TD mask keeps exactly the 8 real steps of 10, the padding fraction's complement."""
    pytest.importorskip("pymarlzooplus")
    import learner_update
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.learners.q_learner import td_mask

    shapes = dict(B=2, T=120, N=3, obs=4, state=6, actions=5)
    batch = learner_update.make_batch(get_host("pymarlzooplus"), shapes, [3, 5], [True, False])
    assert batch.max_seq_length == 6
    assert batch["filled"][..., 0].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch["terminated"][..., 0].tolist() == [[0, 0, 1, 0, 0, 0], [0] * 6]
    assert batch["obs"][0, 4:].abs().sum() == 0 and batch["obs"][0, 3].abs().sum() > 0
    assert batch["avail_actions"][0, 4:].sum() == 0 and batch["actions_onehot"][0, 4:].sum() == 0
    _, mask = td_mask(batch)
    assert mask.sum().item() == 8 and mask.numel() == 10
    assert 1 - mask.mean().item() == pytest.approx(episode_lengths.padding_fraction([[3, 5]]))


def test_recorded_smax_lengths_have_both_phases_with_more_padding_early():
    from r3dm_epymarl.envs.smax import EPISODE_LIMITS

    entry = json.loads(episode_lengths.DATA.read_text())["2s3z"]
    limit = entry["episode_limit"]
    assert limit == EPISODE_LIMITS["2s3z"] and entry["n_agents"] == 5
    padding = {}
    for name in episode_lengths.PHASES:
        phase = entry["phases"][name]
        lengths, terminated = phase["lengths"], phase["terminated"]
        assert len(lengths) == len(terminated) == phase["episodes"] >= 200
        assert all(1 <= n <= limit for n in lengths)
        assert all(n == limit for n, t in zip(lengths, terminated) if not t)  # a time-out lasts the limit
        assert phase["mean_length"] == pytest.approx(sum(lengths) / len(lengths))
        batches = [episode_lengths.sample(phase, 32, seed)[0] for seed in range(200)]
        padding[name] = episode_lengths.padding_fraction(batches)
    # random actions: a few long wandering episodes in most batches; the heuristic: longer, tighter battles
    assert 0.35 < padding["early"] < 0.5 and 0.25 < padding["late"] < 0.4, padding
    assert padding["early"] > padding["late"] + 0.05, padding


def test_recorded_smax_shapes_are_the_live_envs():
    pytest.importorskip("jaxmarl")
    from r3dm_epymarl.envs.smax import SMAXEnv

    entry = json.loads(episode_lengths.DATA.read_text())["2s3z"]
    info = SMAXEnv(map_name="2s3z", seed=0).get_env_info()
    assert (info["n_agents"], info["obs_shape"], info["state_shape"], info["n_actions"], info["episode_limit"]) == (
        entry["n_agents"], entry["obs"], entry["state"], entry["actions"], entry["episode_limit"])


def test_learner_update_quick_scaling_prints_ratios_for_3_8_27_agents():
    out = run_script("learner_update.py", "--quick", "--scaling", "--no-memory", "--algos", "qmix", "r3dm")
    lines = [line.split() for line in out.splitlines()]
    ns = [int(words[0]) for words in lines if len(words) >= 3 and words[0].isdigit()]
    assert ns == [3, 8, 27], out
    assert re.search(r"target r3dm: N=8: ratio\(N\)/ratio\(3\) = [\d.]+ vs N/3 = 2\.67 .*N=27: .* vs N/3 = 9\.00", out), out


def test_rows_rejects_a_missing_algorithm():
    text = "qmix 1.0 2 3 4 5 6 7\ncds 1.0 2 3 4 5 6 7\nacorm crashed\n"
    assert set(rows(text, 7)) == {"qmix", "cds"}


def test_throughput_padded_variant_passes_the_key_to_the_child():
    import throughput
    assert throughput.split_variant("r3dm-padded") == ("r3dm", ["wm_skip_padding=False"])
    assert throughput.split_variant("acorm") == ("acorm", [])
    with pytest.raises(SystemExit, match="no wm_skip_padding key"):
        throughput.split_variant("acorm-padded")


def test_throughput_one_algorithm_through_the_host_run_loop():
    """One short child run (~20 s) of R3DM's padded variant: the host's loop is instrumented, the window
    closes, the row is printed."""
    pytest.importorskip("jaxmarl")
    pytest.importorskip("pymarlzooplus")
    out = run_script("throughput.py", "--algos", "r3dm-padded", "--map", "3m", "--steps", "60", timeout=300)
    table = rows(out, min_numbers=8, names=("r3dm-padded",))
    assert set(table) == {"r3dm-padded"}, out
    # env steps/s, (min-max), x baseline, (min-max), ep len, upd/s, % acting, testing, learning, logging, other
    steps_per_s, ratio = table["r3dm-padded"][0], table["r3dm-padded"][3]
    acting, testing, learning, logging, other = table["r3dm-padded"][-5:]
    assert steps_per_s > 0 and ratio == 1.0, out
    assert acting > 0 and learning > 0 and abs(acting + testing + learning + logging + other - 100) < 0.5, out


@pytest.mark.skipif(os.environ.get("R3DM_BENCH_THROUGHPUT") != "1",
                    reason="all four algorithms end to end take over a minute; set R3DM_BENCH_THROUGHPUT=1")
def test_throughput_tiny_budget_prints_steps_per_second_per_algorithm():
    pytest.importorskip("jaxmarl")
    pytest.importorskip("pymarlzooplus")
    out = run_script("throughput.py", "--map", "3m", "--steps", "100", timeout=900)
    table = rows(out, min_numbers=8)
    assert set(table) == set(ALGORITHMS), out
    for name, numbers in table.items():
        assert numbers[0] > 0, (name, numbers)

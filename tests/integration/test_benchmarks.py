"""Smoke tests of the benchmark scripts, each run as a user runs it (a fresh process): they run, and
print a line of numbers per algorithm."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

ALGORITHMS = ("qmix", "cds", "acorm", "r3dm")
LEARNER_ROWS = (*ALGORITHMS, "r3dm-padded")
NUMBER = r"-?\d+(?:\.\d+)?"


def run_script(name: str, *args: str, timeout: float = 120) -> str:
    """`python benchmarks/NAME ARGS` from the repository root; its stdout (a non-zero exit fails)."""
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
    gflops = re.findall(rf"GFLOP/s ratio to qmix: \S+ ({NUMBER})x", out)
    assert len(gflops) == 2 * 4 and all(float(r) > 0 for r in gflops), out  # per phase, every row but the baseline


def test_learner_update_quick_scaling_prints_ratios_for_3_8_27_agents():
    out = run_script("learner_update.py", "--quick", "--scaling", "--no-memory", "--algos", "qmix", "r3dm")
    lines = [line.split() for line in out.splitlines()]
    ns = [int(words[0]) for words in lines if len(words) >= 3 and words[0].isdigit()]
    assert ns == [3, 8, 27], out
    assert re.search(r"growth of r3dm's ratio: N=8: ratio\(N\)/ratio\(3\) = [\d.]+, N/3 = 2\.67; "
                     r"N=27: ratio\(N\)/ratio\(3\) = [\d.]+, N/3 = 9\.00", out), out


def test_rows_rejects_a_missing_algorithm():
    text = "qmix 1.0 2 3 4 5 6 7\ncds 1.0 2 3 4 5 6 7\nacorm crashed\n"
    assert set(rows(text, 7)) == {"qmix", "cds"}


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

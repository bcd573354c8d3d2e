"""Smoke tests of the benchmark scripts: they run, and print a line of numbers per algorithm."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALGORITHMS = ("qmix", "cds", "acorm", "r3dm")
NUMBER = r"-?\d+(?:\.\d+)?"


def run_script(name: str, *args: str, timeout: float = 120) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    return proc.stdout


def rows(text: str, min_numbers: int) -> dict[str, list[float]]:
    """algorithm -> the numbers of the last line that starts with its name and has enough numbers."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in ALGORITHMS:
            numbers = [float(n) for n in re.findall(rf"(?<![\w.]){NUMBER}(?![\w.])", line[len(words[0]):])]
            if len(numbers) >= min_numbers:
                found[words[0]] = numbers
    return found


def test_learner_update_quick_prints_every_algorithm_with_time_ratio_flops_and_memory():
    out = run_script("learner_update.py", "--quick")
    assert "memory method check" in out and "(ok)" in out
    table = rows(out, min_numbers=7)
    assert set(table) == set(ALGORITHMS), out
    # columns: update ms, (min, max), amortised ms, x QMIX, GFLOP/upd, GFLOP/s, peak MB, state MB (+ contrastive)
    for name, numbers in table.items():
        update_ms, ratio, peak_mb, state_mb = numbers[0], numbers[-5], numbers[-2], numbers[-1]
        assert update_ms > 0 and peak_mb > 0 and state_mb > 0, (name, numbers)
        assert ratio > 0, (name, numbers)
    assert table["qmix"][-5] == 1.0  # the baseline's own ratio
    for part in ("world-model training", "world-model reward term", "policy-KL reward term",
                 "TD + rest of the update", "contrastive step"):
        assert part in out, part
    assert out.count("target GFLOP/s") == 3


def test_learner_update_quick_scaling_prints_ratios_for_3_8_27_agents():
    out = run_script("learner_update.py", "--quick", "--scaling", "--no-memory", "--algos", "qmix", "r3dm")
    lines = [line.split() for line in out.splitlines()]
    ns = [int(words[0]) for words in lines if len(words) >= 3 and words[0].isdigit()]
    assert ns == [3, 8, 27], out
    assert re.search(r"target r3dm: N=8: ratio\(N\)/ratio\(3\) = [\d.]+ vs N/3 = 2\.67 .*N=27: .* vs N/3 = 9\.00", out), out


def test_rows_rejects_a_missing_algorithm():
    text = "qmix 1.0 2 3 4 5 6 7\ncds 1.0 2 3 4 5 6 7\nacorm crashed\n"
    assert set(rows(text, 7)) == {"qmix", "cds"}


def test_throughput_one_algorithm_through_the_host_run_loop():
    """One short child run (~20 s): the host's loop is instrumented, the window closes, the row is printed."""
    pytest.importorskip("jaxmarl")
    pytest.importorskip("pymarlzooplus")
    out = run_script("throughput.py", "--algos", "r3dm", "--map", "3m", "--steps", "60", timeout=300)
    table = rows(out, min_numbers=8)
    assert set(table) == {"r3dm"}, out
    # env steps/s, (min-max), x baseline, (min-max), ep len, upd/s, % acting, testing, learning, logging, other
    steps_per_s, ratio = table["r3dm"][0], table["r3dm"][3]
    acting, testing, learning, logging, other = table["r3dm"][-5:]
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

"""`r3dm-epymarl report` as users run it, on bad paths and damaged runs: one line and exit 2 for what
the user must fix, the damaged run named and skipped otherwise; never a traceback (issue 28, item 8)."""
from __future__ import annotations

import pytest

from tests.helpers import cli, run_ok
from tests.sacred_folders import WON, two_good_runs, write_run


@pytest.fixture()
def runs(tmp_path):
    two_good_runs(tmp_path / "runs")
    (tmp_path / "blocker").write_text("a file")
    return tmp_path


@pytest.mark.parametrize("options, fragment", [
    (["--out", "{tmp}/blocker/report"], "--out {tmp}/blocker/report: {tmp}/blocker is a file, not a folder"),
    (["--export", "marl-eval", "{tmp}/blocker/x.json"],
     "--export marl-eval {tmp}/blocker/x.json: {tmp}/blocker is a file"),
    (["--paper", "{tmp}/missing.csv"], "--paper {tmp}/missing.csv: cannot read it (No such file or directory)"),
    (["{tmp}/nowhere"], "report: {tmp}/nowhere does not exist"),
])
def test_what_the_user_must_fix_is_one_line_and_exit_2(options, fragment, runs):
    proc = cli("report", str(runs / "runs"), *(o.format(tmp=runs) for o in options), cwd=runs)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("r3dm-epymarl: error: " + fragment.format(tmp=runs)), line
    assert sorted(p.name for p in runs.iterdir()) == ["blocker", "runs"], "nothing written"


def test_a_damaged_run_is_skipped_in_one_line_and_the_rest_reported(runs):
    listed = write_run(runs / "runs" / "listed", seed=3, metrics=[1, 2])
    write_run(runs / "runs" / "short", seed=4, curves={WON: ([0, 500, 1000], [1.0])})
    proc = cli("report", str(runs / "runs"), "--out", str(runs / "out"), "--reps", "200", cwd=runs)
    run_ok(proc)
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("report: skipping")]
    assert len(skipped) == 2 and skipped[0].startswith(f"report: skipping {listed}: unreadable (ValueError: ")
    assert "has 3 steps but 1 values" in skipped[1]
    tables = proc.stdout.split("== rliable:")[0]
    assert [line.split()[:3] for line in tables.splitlines() if line.startswith("qmix ")] == [["qmix", "2", "0.400"]]
    assert (runs / "out" / "report.csv").is_file()

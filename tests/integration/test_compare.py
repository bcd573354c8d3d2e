"""`r3dm-epymarl compare`: a real grid of host runs (PyMARLzoo+ on LBF), local pool and local Ray."""
import csv
import json
import os
import re
import signal
import subprocess

import pytest

from tests.faults import faults
from tests.helpers import LBF_KEY, assert_real_png, cli, run_ok
from tests.signals import alive, command_in, start_cli, wait_for

TINY = ["env_args.time_limit=25", "t_max=300", "batch_size=4", "buffer_size=32", "test_interval=150",
        "test_nepisode=2", "log_interval=150", "runner_log_interval=150", "learner_log_interval=150"]


def _compare(out, *args):
    return cli("compare", "--host", "pymarlzooplus", "--env-config", "gymma", "--out", str(out), *args,
               "--with", *TINY, timeout=900)


def _sacred_runs(out):
    return sorted(out.glob("*/*/seed*/results/sacred/*/*/*/run.json"))


def test_two_algorithms_two_seeds_then_resume(zoo_available, tmp_path):
    out = tmp_path / "grid"
    proc = _compare(out, "--algorithms", "r3dm_qmix", "acorm", "--seeds", "1", "2", "--maps", LBF_KEY, "--jobs", "2")
    run_ok(proc)
    assert "running 4 on local x2" in proc.stdout
    assert proc.stdout.count(" done ") == 4 and "FAILED" not in proc.stdout
    # The table: one row per algorithm, two seeds each, on the LBF map (metric: the test return).
    assert "== Foraging-8x8-3p-3f-v3: test_return_mean" in proc.stdout
    tables, rliable = proc.stdout.split("== rliable:")  # the per-map table, then rliable's blocks
    table = [line.split() for line in tables.splitlines() if line.startswith(("acorm ", "r3dm_qmix "))]
    assert sorted(row[0] for row in table) == ["acorm", "r3dm_qmix"] and all(row[1] == "2" for row in table)
    assert "probability of improvement" in rliable and "IQM" in rliable
    with open(out / "report" / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["algorithm"], r["seeds"]) for r in rows} == {("acorm", "1 2"), ("r3dm_qmix", "1 2")}
    assert_real_png(out / "report" / "curves_Foraging-8x8-3p-3f-v3.png")
    assert len(_sacred_runs(out)) == 4

    again = _compare(out, "--algorithms", "r3dm_qmix", "acorm", "--seeds", "1", "2", "--maps", LBF_KEY)
    run_ok(again)
    assert "4 finished before (kept)" in again.stdout and "[1/" not in again.stdout
    assert len(_sacred_runs(out)) == 4, "no finished cell is trained again"


def test_ray_backend_reports_a_failed_cell_and_retries_only_it(zoo_available, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "grid"
    args = ["--backend", "ray", "--jobs", "2", "--algorithms", "r3dm_qmix", "--seeds", "3", "4", "--maps", LBF_KEY]
    failing = faults(FAIL_SEED=4)  # seed 4's run raises once it trains: a failure no check before it catches
    proc = cli("compare", "--host", "pymarlzooplus", "--env-config", "gymma", "--out", str(out), *args,
               "--with", *TINY, env=failing, timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"1 of 2 cells failed: r3dm_qmix {LBF_KEY} seed 4" in proc.stdout
    assert "log: " in proc.stdout
    failed_log = out / "lbforaging_Foraging-8x8-3p-3f-v3" / "r3dm_qmix" / "seed4" / "cell.log"
    assert "injected failure for seed 4" in failed_log.read_text()
    assert "r3dm_qmix  1" in proc.stdout  # the report still covers the cell that finished

    again = cli("compare", "--host", "pymarlzooplus", "--env-config", "gymma", "--out", str(out), *args,
                "--with", *TINY, env=failing, timeout=900)
    assert again.returncode == 1
    assert "1 finished before (kept); running 1 on ray" in again.stdout
    good = out / "lbforaging_Foraging-8x8-3p-3f-v3" / "r3dm_qmix" / "seed3"
    assert len(list(good.glob("results/sacred/*/*/*/run.json"))) == 1, "the finished cell is not run again"


def test_unknown_algorithm_fails_before_any_cell_starts(zoo_available, tmp_path):
    proc = _compare(tmp_path / "grid", "--algorithms", "qmix", "r3dn", "--maps", LBF_KEY)
    assert proc.returncode == 2 and "unknown config 'r3dn'" in proc.stderr and "r3dm" in proc.stderr
    assert not (tmp_path / "grid").exists()


@pytest.mark.parametrize("bad, message", [
    (["--with", "bogus_key=3"], "compare: r3dm_qmix on {map}: unknown config key 'bogus_key'"),
    (["--maps", "lbforaging:No-Such-Env-v0"], "compare: r3dm_qmix on lbforaging:No-Such-Env-v0: env_args.key "
                                              "'lbforaging:No-Such-Env-v0': gymnasium has no such env"),
])
def test_a_cell_command_run_would_refuse_fails_before_any_cell_starts(zoo_available, tmp_path, bad, message):
    """Each algorithm's command on each map is checked as `run` checks it before the grid starts (else
    every cell, or every queued Slurm job, would fail on its own)."""
    proc = cli("compare", "--host", "pymarlzooplus", "--env-config", "gymma", "--out", str(tmp_path / "grid"),
               "--algorithms", "r3dm_qmix", "--maps", LBF_KEY, *bad, timeout=300)
    assert proc.returncode == 2 and message.format(map=LBF_KEY) in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "grid").exists()


def test_a_cell_killed_mid_run_continues_from_its_checkpoint(zoo_available, tmp_path):
    """SIGKILL a cell between checkpoints; the same command again continues it from its newest checkpoint
    (its t_env does not restart at 0), and the report stitches the two Sacred runs into one curve."""
    import json


    out = tmp_path / "grid"
    args = ["--algorithms", "r3dm_qmix", "--seeds", "1", "--maps", LBF_KEY, "--checkpoint-interval", "100"]
    killed = cli("compare", "--host", "pymarlzooplus", "--env-config", "gymma", "--out", str(out), *args,
                 "--with", *TINY, env={**faults(KILL_AT_T=260), "R3DM_EPYMARL_PROGRESS_SECONDS": "1"}, timeout=900)
    assert killed.returncode == 1 and "FAILED (exit -9)" in killed.stdout, killed.stdout
    assert "compare: 0/1 done, 1 running, 0 failed" in killed.stdout  # the grid's status line
    again = _compare(out, *args)
    run_ok(again)
    (line,) = [l for l in again.stdout.splitlines() if "continuing from its checkpoint" in l]
    t_resume = int(line.rsplit(" ", 1)[-1].replace(",", ""))
    assert 100 <= t_resume < 260, line
    runs = {json.loads(p.read_text())["status"]: p.parent for p in _sacred_runs(out)}
    resumed_from = json.loads((runs["COMPLETED"] / "resumed_from.json").read_text())
    assert resumed_from["t_env"] == t_resume and resumed_from["run_dir"] == str(runs["RUNNING"].resolve())
    metrics = json.loads((runs["COMPLETED"] / "metrics.json").read_text())
    assert metrics["resumed_from_t_env"]["values"] == [t_resume]
    assert min(metrics["test_return_mean"]["steps"]) > t_resume  # it did not start again at step 0
    # The report reads the resumed run's curve from step 0: the killed run's part, then its own.
    from r3dm_epymarl.experiments.report import load_file_runs

    (run,) = [r for r in load_file_runs(out) if r.status == "COMPLETED"]
    steps, _ = run.series["test_return_mean"]
    killed_steps = json.loads((runs["RUNNING"] / "metrics.json").read_text())["test_return_mean"]["steps"] \
        if (runs["RUNNING"] / "metrics.json").is_file() else []
    assert steps == [s for s in killed_steps if s <= t_resume] + sorted(metrics["test_return_mean"]["steps"])
    assert steps[0] == min(killed_steps or steps)
    with open(out / "report" / "report.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["seeds"] == "1"


@pytest.mark.parametrize("how", ["sigterm_to_compare_alone", "ctrl_c_to_its_process_group"])
def test_a_stopped_compare_stops_its_cell_and_the_same_command_continues_it(zoo_available, tmp_path, how):
    """SIGTERM to compare alone (a `kill`, a scheduler signalling the job's main process) or Ctrl-C (to the
    terminal's whole process group): the running cell saves a checkpoint and stops, none is left training
    on its own; compare says so in one line, with the command that continues the grid."""
    from r3dm_epymarl.experiments.report import safe_name

    out = tmp_path / "grid"
    args = ["compare", "--host", "pymarlzooplus", "--env-config", "gymma", "--out", str(out), "--algorithms",
            "r3dm_qmix", "--seeds", "1", "--maps", LBF_KEY, "--checkpoint-interval", "100", "--with", *TINY]
    # The cell waits at the end of an iteration between its second test phase and its third (t_env >= 200),
    # so the signal lands mid-run however fast or loaded the machine is.
    compare = start_cli(*args, folder=tmp_path / "cli", new_session=True, env=faults(WAIT_AT_T=200))
    cell = out / safe_name(LBF_KEY) / "r3dm_qmix" / "seed1"
    wait_for(cell / "cell.log", r"waiting for a signal at t_env \d+", compare.proc)
    cell_pid = int(re.search(r"pid (\d+)", (cell / "cell.lock").read_text())[1])
    if how == "sigterm_to_compare_alone":
        compare.proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(compare.proc.pid, signal.SIGINT)
    code = compare.wait(timeout=300)
    stdout, stderr = compare.text()
    assert code == (143 if how == "sigterm_to_compare_alone" else 130), f"exit {code}\n{stdout}\n{stderr}"
    assert not alive(cell_pid), "the cell is still training after compare stopped"
    assert "Traceback" not in stdout + stderr + (cell / "cell.log").read_text()
    last = stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"compare: stopped by (SIGTERM|Ctrl-C \(SIGINT\)): 1 running cell\(s\) stopped \(1 at a "
                        r"checkpoint\), 0 not started, 0 of 1 finished; none is left running; continue with: .*", last)
    (stopped,) = [line for line in stdout.splitlines() if line.startswith("[1/1] stopped")]
    t_stop = int(re.search(r"checkpoint at t_env ([\d,]+)", stopped)[1].replace(",", ""))
    (run_json,) = _sacred_runs(out)
    assert json.loads(run_json.read_text())["status"] == "INTERRUPTED"
    assert max(json.loads((run_json.parent / "metrics.json").read_text())["test_return_mean"]["steps"]) <= t_stop
    assert not list(cell.glob(".stop-*")), "compare removes its stop files"
    again = subprocess.run(command_in(last, "continue with: "), capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
    run_ok(again)
    assert f"compare: r3dm_qmix {LBF_KEY} seed 1: continuing from its checkpoint at t_env {t_stop:,}" in again.stdout
    assert "[1/1] done" in again.stdout

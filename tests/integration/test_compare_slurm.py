"""`compare --backend slurm` against a real one-node Slurm (munged, slurmctld, slurmd started by
tests/slurm_cluster.py), cells submitted through submitit: a grid submitted, finished and reported; a
cell requeued mid-run (Slurm's SIGTERM) continuing from its checkpoint as the same run, bit for bit; the
same command resubmitting only the cell that did not finish; bad input refused before any submission."""
import json
import os
import re
import subprocess
import time

import pytest

from tests.faults import faults
from tests.helpers import LBF_KEY, cli, run_ok
from tests.slurm_cluster import SlurmCluster, missing

TINY = ["env_args.time_limit=25", "t_max=300", "batch_size=4", "buffer_size=32", "test_interval=100",
        "test_nepisode=2", "log_interval=100", "runner_log_interval=100", "learner_log_interval=100"]
GRID = ["--host", "pymarlzooplus", "--env-config", "gymma", "--algorithms", "r3dm_qmix", "--maps", LBF_KEY,
        "--checkpoint-interval", "100", "--time", "10", "--signal-delay", "60"]
CELL = "lbforaging_Foraging-8x8-3p-3f-v3/r3dm_qmix"

needs_slurm = pytest.mark.skipif(bool(missing()), reason=missing() or "a real Slurm is here")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("submitit")
    if missing():
        pytest.skip(missing())
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


def _compare(cluster, out, *args, env=None, timeout=900):
    return cli("compare", *GRID, "--backend", "slurm", "--out", str(out), *args, "--with", *TINY,
               env={**cluster.env, "R3DM_EPYMARL_PROGRESS_SECONDS": "2", **(env or {})}, timeout=timeout)


def _metrics(cell) -> dict[str, dict]:
    """Each Sacred run of a cell, by its status."""
    return {json.loads((p.parent / "run.json").read_text())["status"]: json.loads(p.read_text())
            for p in cell.glob("results/sacred/*/*/*/metrics.json")}


def _points(metrics: dict, keep) -> dict:
    """Every metric's (step, value) pairs whose step passes `keep`, except wall-clock timings."""
    points = {k: [(s, v) for s, v in zip(m["steps"], m["values"]) if keep(s)]
              for k, m in metrics.items() if not k.startswith("time_")}
    return {k: v for k, v in points.items() if v}


def _job(cell) -> str:
    return json.loads((cell / "slurm_job.json").read_text())["job_id"]


def _state(cluster, job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True,
                         env=cluster.client_env()).stdout
    return dict(line.split() for line in out.splitlines() if line.strip()).get(job_id, "gone")


def _wait_for(path, pattern: str, timeout: float = 600) -> re.Match:
    """The first match of `pattern` in the file at `path` (a cell's log, written inside a Slurm job)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.search(pattern, path.read_text(errors="replace")) if path.is_file() else None
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no {pattern!r} in {path} after {timeout} s")


def _wait_gone(cluster, job_id: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while _state(cluster, job_id) != "gone":
        assert time.time() < deadline, f"job {job_id} still {_state(cluster, job_id)} after {timeout} s"
        time.sleep(1)


@pytest.fixture(scope="module")
def grid(cluster, tmp_path_factory):
    """Two seeds submitted with --wait: finished and reported (also the uninterrupted reference)."""
    out = tmp_path_factory.mktemp("grid") / "runs"
    proc = _compare(cluster, out, "--seeds", "1", "2", "--wait")
    return out, proc


def test_a_two_cell_grid_is_submitted_finished_and_reported(cluster, grid):
    out, proc = grid
    run_ok(proc)
    submitted = re.search(r"compare: submitted 2 cell\(s\) to Slurm: (.*)", proc.stdout)
    assert submitted and submitted[1].count(" = job ") == 2, proc.stdout
    ids = [_job(out / CELL / f"seed{s}") for s in (1, 2)]
    assert all(re.fullmatch(r"\d+_[01]", j) for j in ids) and ids[0].split("_")[0] == ids[1].split("_")[0]
    assert "running | t_env" in proc.stdout  # --wait follows each cell's progress
    assert "r3dm_qmix  2" in proc.stdout  # the report: one row, two seeds
    assert (out / "report" / "report.csv").is_file()
    for seed in (1, 2):
        (metrics,) = _metrics(out / CELL / f"seed{seed}").values()
        assert max(metrics["test_return_mean"]["steps"]) >= 300
    array = ids[0].split("_")[0]
    sbatch = (out / "slurm" / array / f"{array}_submission.sh").read_text()  # submitit's sbatch file
    assert "#SBATCH --requeue" in sbatch and "#SBATCH --array=0-1" in sbatch and "#SBATCH --time=10" in sbatch
    again = _compare(cluster, out, "--seeds", "1", "2")
    run_ok(again)
    assert "compare: 2 cells in" in again.stdout and ": 2 finished" in again.stdout
    assert "nothing to submit" in again.stdout


@pytest.mark.parametrize("how", ["scontrol_requeue", "time_limit_signal"])
def test_an_interrupted_cell_is_requeued_and_continues_as_the_same_run(cluster, grid, tmp_path, how):
    """Mid-run, `scontrol requeue` (Slurm's SIGTERM to every process of the job, as on preemption), or the
    signal submitit asks Slurm for --signal-delay seconds before the time limit (USR2, sent here with
    scancel --signal): the run checkpoints its step, the job is requeued, the requeued job continues from
    that checkpoint, and every metric equals the uninterrupted run's, bit for bit."""
    (reference,) = _metrics(grid[0] / CELL / "seed1").values()
    out = tmp_path / "runs"
    # The run waits at the end of the first iteration past t_env 150 (after a test phase and a checkpoint),
    # so the signal lands mid-run however loaded the machine is; the requeued run does not wait again.
    proc = _compare(cluster, out, "--seeds", "1", env=faults(WAIT_AT_T=150))
    run_ok(proc)
    cell = out / CELL / "seed1"
    job_id = _job(cell)
    t_stop = int(_wait_for(cell / "cell.log", r"waiting for a signal at t_env (\d+)")[1])
    if how == "scontrol_requeue":
        cluster.scontrol("requeue", job_id)
    else:
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, env=cluster.client_env())
    deadline = time.time() + 300
    while "INTERRUPTED" not in _metrics(cell) or _state(cluster, job_id) != "PENDING":
        assert time.time() < deadline, f"job {job_id}: {_state(cluster, job_id)}, runs {list(_metrics(cell))}"
        time.sleep(0.5)
    states = _compare(cluster, out, "--seeds", "1")  # the same command: the cell is queued, not resubmitted
    run_ok(states)
    assert f"r3dm_qmix {LBF_KEY} seed 1: preempted (requeued) (job {job_id})" in states.stdout, states.stdout
    assert "nothing to submit" in states.stdout
    cluster.scontrol("update", f"JobId={job_id}", "StartTime=now")  # Slurm holds a requeued job a while
    _wait_gone(cluster, job_id)
    log = (cell / "cell.log").read_text()
    assert f"r3dm-epymarl: stopped by SIGTERM at t_env {t_stop}; checkpoint saved" in log, log[-3000:]
    assert f"continuing from its checkpoint at t_env {t_stop:,}" in _slurm_log(out, job_id)
    assert re.search(rf"resumed exactly from \S+/{t_stop} at t_env {t_stop}\b", log)
    if how == "time_limit_signal":
        assert "requeueing" in _slurm_log(out, job_id) and "Requeued job" in _slurm_log(out, job_id)
    runs = _metrics(cell)
    assert set(runs) == {"INTERRUPTED", "COMPLETED"}, list(runs)
    assert _points(runs["INTERRUPTED"], lambda s: s <= t_stop) == _points(reference, lambda s: s <= t_stop)
    after = _points(reference, lambda s: s > t_stop)
    assert sum(len(v) for v in after.values()) > 5
    assert _points(runs["COMPLETED"], lambda s: s > t_stop) == after


def _slurm_log(out, job_id: str) -> str:
    return "".join(p.read_text(errors="replace") for p in (out / "slurm").glob(f"{job_id}/{job_id}_*log.out"))


def test_the_same_command_resubmits_only_the_cell_that_failed(cluster, tmp_path):
    """A grid with a cell that fails once it trains: --wait reports it failed with its log; the same
    command again keeps the finished cell and resubmits the failed one alone."""
    out = tmp_path / "runs"
    args = ["--seeds", "3", "4", "--wait"]
    failing = faults(FAIL_SEED=4)
    first = _compare(cluster, out, *args, env=failing)
    assert first.returncode == 1, first.stdout + first.stderr
    assert re.search(rf"compare: r3dm_qmix {LBF_KEY} seed 4: FAILED \(job \d+_1\); log: ", first.stdout), first.stdout
    assert "1 of 2 cells did not finish" in first.stdout
    assert "injected failure for seed 4" in (out / CELL / "seed4" / "cell.log").read_text()
    again = _compare(cluster, out, *args, env=failing)
    assert again.returncode == 1
    assert ": 1 failed, 1 finished" in again.stdout, again.stdout
    assert re.search(rf"r3dm_qmix {LBF_KEY} seed 4: failed \(job \d+_1\); log: ", again.stdout)
    assert re.search(rf"compare: submitted 1 cell\(s\) to Slurm: r3dm_qmix {LBF_KEY} seed 4 = job \d+\n",
                     again.stdout), again.stdout  # one cell: a plain job, not an array
    assert len(_metrics(out / CELL / "seed3")) == 1, "the finished cell is not run again"


def test_a_bad_with_key_fails_before_anything_is_submitted(cluster, tmp_path):
    out = tmp_path / "runs"
    proc = cli("compare", *GRID, "--backend", "slurm", "--out", str(out), "--seeds", "1", "--with", "bogus_key=3",
               env=cluster.env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"compare: r3dm_qmix on {LBF_KEY}: unknown config key 'bogus_key'" in proc.stderr
    assert not out.exists() and _queue_is_empty(cluster)


def _queue_is_empty(cluster) -> bool:
    return subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=cluster.client_env()).stdout.strip() == ""


@pytest.mark.parametrize("args, message", [
    (["--time", "ten"], "--time ten: not a Slurm time limit: give MINUTES, H:M:S or D-H:M:S"),
    (["--time", "1:00", "--signal-delay", "90"], "--signal-delay 90: must be shorter than --time (1 min)"),
    (["--mem", "8 gigs"], "--mem 8 gigs: give a size as sbatch takes it"),
    (["--sbatch", "=x"], "--sbatch =x: give sbatch options as KEY=VALUE"),
])
def test_malformed_slurm_options_fail_in_one_line_before_anything_is_submitted(tmp_path, args, message):
    out = tmp_path / "runs"
    proc = cli("compare", *GRID, "--backend", "slurm", "--out", str(out), "--seeds", "1", *args, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_no_sbatch_on_path_fails_in_one_line(tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "runs"
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not os.path.exists(os.path.join(p, "sbatch")))
    proc = cli("compare", *GRID, "--backend", "slurm", "--out", str(out), "--seeds", "1",
               env={"PATH": path}, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "--backend slurm: no `sbatch` on PATH: run compare on a machine of the cluster" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_an_unknown_partition_fails_in_one_line(cluster, tmp_path):
    out = tmp_path / "runs"
    proc = _compare(cluster, out, "--seeds", "1", "--partition", "gpu-a100")
    assert proc.returncode == 2, proc.stderr
    assert "--partition gpu-a100: the cluster has no such partition: choose from debug" in proc.stderr
    assert not out.exists() and _queue_is_empty(cluster)


def test_slurm_options_with_another_backend_are_refused(tmp_path):
    proc = cli("compare", *GRID[:-4], "--out", str(tmp_path / "runs"), "--partition", "gpu", timeout=300)
    assert proc.returncode == 2
    assert "--partition is for --backend slurm (the local backend runs every cell on this machine)" in proc.stderr


def test_dry_run_prints_what_would_be_submitted(tmp_path):
    out = tmp_path / "runs"
    proc = cli("compare", *GRID, "--backend", "slurm", "--out", str(out), "--seeds", "1", "2", "--dry-run",
               "--gpus", "1", "--mem", "8G", "--sbatch", "constraint=a100", timeout=300)
    run_ok(proc)
    assert re.search(r"would submit 2 job\(s\) as one array through submitit: time=10 cpus_per_task=1 .*"
                     r"mem=8G .*gpus_per_node=1 --requeue --constraint=a100", proc.stderr), proc.stderr
    commands = proc.stdout.strip().splitlines()
    assert len(commands) == 2 and all(c.endswith("use_cuda=True") for c in commands)
    assert not out.exists()

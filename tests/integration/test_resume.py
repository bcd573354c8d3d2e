"""Exact resume after a SIGKILL, through the real EPyMARL run loop on SMAX 3m, for every registered
algorithm: a run killed between two checkpoints and resumed logs, after its resume point, exactly the
metrics of the uninterrupted run with the same seed (bitwise: same floats). A run stopped by SIGTERM
(Slurm's preemption) or Ctrl-C saves a checkpoint of the step it stopped at, keeps every metric, and
says in one line how to resume; resumed, it is the uninterrupted run too."""
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from r3dm_epymarl.registry import ALGORITHMS
from r3dm_epymarl.runs.checkpoints import MANIFEST, RUN_STATE, read_manifest, step_folders
from tests.faults import faults
from tests.helpers import cli, run_ok
from tests.signals import command_in, start_cli, wait_for

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = [
    pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)"),
    pytest.mark.filterwarnings("ignore"),
]
pytest.importorskip("jaxmarl", reason="SMAX needs jaxmarl (pip install 'r3dm-epymarl[smax]')")

# ~1200 steps of SMAX 3m, checkpoints about every 400, a test phase every 400.
RUN = ["env_args.map_name=3m", "seed=5", "t_max=1200", "batch_size=4", "buffer_size=32",
       "test_interval=400", "test_nepisode=2", "log_interval=400", "runner_log_interval=400",
       "learner_log_interval=0", "save_model=True", "save_model_interval=400", "use_cuda=False"]
PRETRAIN = ["pretrain_encoder_steps=2", "pretrain_contrastive_steps=2"]


def _argv(algorithm: str, base: Path, *extra: str) -> list[str]:
    pretrain = PRETRAIN if ALGORITHMS[algorithm].learner in ("acorm_learner", "r3dm_learner") else []
    return ["run", "--epymarl", EPYMARL_PATH, "--base-dir", str(base), f"--config={algorithm}",
            "--env-config=smax", "with", *RUN, *pretrain, *extra]


def _models(base: Path) -> Path:
    (folder,) = base.glob("results/models/*")
    return folder


def _metrics(base: Path) -> dict[str, dict]:
    """Each Sacred run under `base`, by its run folder."""
    return {p.parent.name: json.loads(p.read_text()) for p in base.glob("results/sacred/*/*/*/metrics.json")}


def _resumed(base: Path) -> dict:
    """The metrics of the resumed run under `base` (the one with a resumed_from.json)."""
    (folder,) = [p.parent for p in base.glob("results/sacred/*/*/*/resumed_from.json")]
    return json.loads((folder / "metrics.json").read_text())


def _after(metrics: dict, t: int) -> dict:
    """Every metric's (step, value) pairs after step t, except wall-clock timings (time_*_ms)."""
    after = {k: [(s, v) for s, v in zip(m["steps"], m["values"]) if s > t]
             for k, m in metrics.items() if not k.startswith("time_")}
    return {k: v for k, v in after.items() if v}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run of each algorithm, made once per module."""
    cache = {}

    def get(algorithm: str) -> tuple[Path, dict]:
        if algorithm not in cache:
            base = tmp_path_factory.mktemp(f"{algorithm}-ref")
            run_ok(cli(*_argv(algorithm, base)))
            (metrics,) = _metrics(base).values()
            cache[algorithm] = (base, metrics)
        return cache[algorithm]

    return get


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_sigkill_between_checkpoints_then_resume_is_the_same_run(algorithm, tmp_path, uninterrupted):
    ref_base, reference = uninterrupted(algorithm)
    killed = cli(*_argv(algorithm, tmp_path), env=faults(KILL_AT_T=600))
    assert killed.returncode == -9, f"expected SIGKILL, got exit {killed.returncode}\n{killed.stderr[-2000:]}"
    models = _models(tmp_path)
    saved = [int(f.name) for f in step_folders(models)]
    assert saved and max(saved) < 600 < 1200, saved  # killed after a checkpoint, before the next
    resumed = cli(*_argv(algorithm, tmp_path, f"checkpoint_path={models}"))
    run_ok(resumed)
    t_resume = max(saved)
    assert f"resumed exactly from {models / str(t_resume)} at t_env {t_resume}" in resumed.stderr
    second = _resumed(tmp_path)
    after_ref = _after(reference, t_resume)
    assert sum(len(v) for v in after_ref.values()) > 10  # there is something after the resume point
    assert _after(second, t_resume) == after_ref  # the same keys, steps and values, bit for bit
    # The checkpoint the resumed run wrote says where it came from.
    manifest = read_manifest(step_folders(_models(tmp_path))[0])
    assert manifest["resumed_from"]["t_env"] == t_resume and manifest["exact"] is True
    assert manifest["algorithm"] == algorithm and manifest["seed"] == 5 and manifest["map"] == "3m"


def test_kill_while_writing_a_checkpoint_leaves_the_previous_one_usable(tmp_path, uninterrupted):
    algorithm = "r3dm"
    _, reference = uninterrupted(algorithm)
    killed = cli(*_argv(algorithm, tmp_path), env=faults(KILL_IN_SAVE_AT_T=400))
    assert killed.returncode == -9
    models = _models(tmp_path)
    newest, previous = step_folders(models)[:2]
    assert (newest / RUN_STATE).is_file() and not (newest / MANIFEST).exists()  # the half-written one
    read_manifest(previous)  # intact
    resumed = cli(*_argv(algorithm, tmp_path, f"checkpoint_path={models}"))
    run_ok(resumed)
    assert f"skipping checkpoint {newest}: no {MANIFEST}" in resumed.stderr
    t_resume = int(previous.name)
    second = _resumed(tmp_path)
    assert _after(second, t_resume) == _after(reference, t_resume)


def test_a_corrupt_checkpoint_is_reported_and_skipped(tmp_path, uninterrupted):
    ref_base, _ = uninterrupted("r3dm_qmix")
    # Only the newest two checkpoints keep a run state (buffer, RNG); older ones say they hold models only.
    folders = step_folders(_models(ref_base))
    assert len(folders) >= 3 and [(f / RUN_STATE).is_file() for f in folders] == [True, True] + [False] * (len(folders) - 2)
    assert [read_manifest(f)["exact"] for f in folders[2:]] == [False] * (len(folders) - 2)
    copy = tmp_path / "models"
    shutil.copytree(_models(ref_base), copy)
    newest = step_folders(copy)[0]
    state = newest / RUN_STATE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # truncated
    with pytest.raises(ValueError, match="does not match its manifest"):
        read_manifest(newest)
    assert read_manifest(step_folders(copy)[1])["t_env"] == int(step_folders(copy)[1].name)


def _upto(metrics: dict, t: int) -> dict:
    """Every metric's (step, value) pairs up to step t, except wall-clock timings."""
    upto = {k: [(s, v) for s, v in zip(m["steps"], m["values"]) if s <= t]
            for k, m in metrics.items() if not k.startswith("time_")}
    return {k: v for k, v in upto.items() if v}


def _stopped(tmp_path: Path, algorithm: str, signum: int):
    """A run signalled once its second test phase began (inside the loop, past its first checkpoint):
    (exit code, stdout, stderr) after it stopped."""
    # The loop waits at the end of an iteration between the second test phase and the third (t_env >= 500),
    # so the signal lands mid-run however fast or loaded the machine is.
    run = start_cli(*_argv(algorithm, tmp_path), folder=tmp_path / "cli", env=faults(WAIT_AT_T=500))
    wait_for(run.stderr, r"waiting for a signal at t_env \d+", run.proc)
    run.proc.send_signal(signum)
    code = run.wait(timeout=300)
    return (code, *run.text())


def test_sigterm_keeps_every_metric_checkpoints_its_step_and_resumes_as_the_same_run(tmp_path, uninterrupted):
    algorithm = "acorm"
    _, reference = uninterrupted(algorithm)
    code, out, err = _stopped(tmp_path, algorithm, signal.SIGTERM)
    assert code == 143, f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in out + err and "Aborted" not in err
    last = err.strip().splitlines()[-1]
    stopped = re.fullmatch(r"r3dm-epymarl: stopped by SIGTERM at t_env ([\d,]+); checkpoint saved at this step, "
                           r"metrics saved, Sacred run INTERRUPTED; resume with: .*", last)
    assert stopped, last
    t_stop = int(stopped[1].replace(",", ""))
    (run_json,) = tmp_path.glob("results/sacred/*/*/*/run.json")
    assert json.loads(run_json.read_text())["status"] == "INTERRUPTED"
    # Every point logged before the signal is in metrics.json (Sacred's last heartbeat), equal to the
    # uninterrupted run's: both test phases so far (at the first episode and after ~400 steps) among them.
    (first,) = _metrics(tmp_path).values()
    assert _upto(first, t_stop) == _upto(reference, t_stop)
    tests = [s for s in reference["test_return_mean"]["steps"] if s <= t_stop]
    assert first["test_return_mean"]["steps"] == tests and len(tests) == 2, (tests, t_stop)
    # The checkpoint of the step it stopped at, complete and exact.
    models = _models(tmp_path)
    assert f"checkpoint_path={models}" in last
    manifest = read_manifest(models / str(t_stop))
    assert manifest["t_env"] == t_stop and manifest["exact"] is True
    # The command the line gives resumes from it: the same metrics as the uninterrupted run, bit for bit.
    resumed = subprocess.run(command_in(last, "resume with: "), capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
    run_ok(resumed)
    assert f"resumed exactly from {models / str(t_stop)} at t_env {t_stop}" in resumed.stderr
    after_ref = _after(reference, t_stop)
    assert sum(len(v) for v in after_ref.values()) > 10
    assert _after(_resumed(tmp_path), t_stop) == after_ref


def test_ctrl_c_during_a_run_prints_one_line_with_the_command_that_resumes_it(tmp_path):
    code, out, err = _stopped(tmp_path, "r3dm_qmix", signal.SIGINT)
    assert code == 130, f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err and "Aborted" not in err
    ours = [line for line in err.splitlines() if line.startswith("r3dm-epymarl: stopped")]
    assert len(ours) == 1 and ours[0] == err.strip().splitlines()[-1], err[-3000:]
    line = ours[0]
    assert line.startswith("r3dm-epymarl: stopped by Ctrl-C (SIGINT) at t_env ") and "resume with: python -m " \
        "r3dm_epymarl run --host epymarl --epymarl " in line, line
    command = command_in(line, "resume with: ")
    assert command[-1] == f"checkpoint_path={_models(tmp_path)}" and "--config=r3dm_qmix" in command
    t_stop = int(re.search(r"at t_env ([\d,]+)", line)[1].replace(",", ""))
    assert read_manifest(_models(tmp_path) / str(t_stop))["exact"] is True

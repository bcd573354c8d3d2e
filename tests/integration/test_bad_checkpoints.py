"""checkpoint_path as users mistype it, through the real CLI and EPyMARL run loop on SMAX 3m: each
mistake is one line and a non-zero exit before a Sacred run starts, the step-folder form resumes from
that step, and a resume under another config says which keys differ."""
import os
import shutil
from pathlib import Path

import pytest

from r3dm_epymarl.runs.checkpoints import read_manifest, step_folders
from tests.helpers import cli, run_ok

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = [
    pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)"),
    pytest.mark.filterwarnings("ignore"),
]
pytest.importorskip("jaxmarl", reason="SMAX needs jaxmarl (pip install 'r3dm-epymarl[smax]')")

RUN = ["seed=3", "t_max=300", "batch_size=4", "buffer_size=32", "test_interval=150", "test_nepisode=2",
       "log_interval=150", "runner_log_interval=150", "learner_log_interval=0", "save_model=True",
       "save_model_interval=100", "use_cuda=False"]
PRETRAIN = {"acorm": ["pretrain_encoder_steps=2", "pretrain_contrastive_steps=2"],
            "r3dm": ["pretrain_encoder_steps=2", "pretrain_contrastive_steps=2"]}


def _run(base: Path, algorithm: str = "acorm", map_name: str = "3m", *extra: str):
    return cli("run", "--epymarl", EPYMARL_PATH, "--base-dir", str(base), f"--config={algorithm}",
               "--env-config=smax", "with", f"env_args.map_name={map_name}", *RUN, *PRETRAIN.get(algorithm, []),
               *extra)


def _refused(proc, *fragments: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r3dm-epymarl: error: "), lines[-20:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _no_sacred_run(base: Path) -> None:
    assert not list(base.glob("results/sacred/*/*/*/run.json")), "refused before Sacred started a run"


@pytest.fixture(scope="module")
def acorm_3m(tmp_path_factory) -> Path:
    """The models folder of a short acorm run on 3m with a checkpoint every 100 steps."""
    base = tmp_path_factory.mktemp("acorm3m")
    run_ok(_run(base))
    (models,) = base.glob("results/models/*")
    assert len(step_folders(models)) >= 3
    return models


@pytest.fixture
def models(acorm_3m, tmp_path) -> Path:
    """A copy (a resumed run saves into the folder it resumed from)."""
    copy = tmp_path / "acorm3m"
    shutil.copytree(acorm_3m, copy)
    return copy


@pytest.mark.parametrize("case, fragment", [
    ("missing", "no such folder"),
    ("file", "is a file"),
    ("no_steps", "holds no <t_env>/ checkpoint folders"),
    ("junk", "100/agent.th is not a saved torch model"),
])
def test_a_checkpoint_path_the_host_cannot_use_is_one_line(tmp_path, case, fragment):
    path = tmp_path / "ckpt"
    if case == "file":
        path.write_text("not a folder")
    elif case == "no_steps":
        (path / "latest").mkdir(parents=True)
    elif case == "junk":
        (path / "100").mkdir(parents=True)
        (path / "100" / "agent.th").write_text("hello")
    base = tmp_path / "base"
    _refused(_run(base, "acorm", "3m", f"checkpoint_path={path}"), fragment, "results/models/<run>/")
    _no_sacred_run(base)


@pytest.mark.parametrize("algorithm, map_name, fragment", [
    ("r3dm_qmix", "3m", "of --config=acorm (on 3m), not of this run's --config=r3dm_qmix"),
    ("r3dm", "3m", "of --config=acorm (on 3m), not of this run's --config=r3dm"),
    ("acorm", "8m", "of acorm on map 3m, not on this run's map 8m"),
])
def test_a_checkpoint_of_another_algorithm_or_map_is_refused_naming_both(acorm_3m, tmp_path, algorithm,
                                                                         map_name, fragment):
    _refused(_run(tmp_path, algorithm, map_name, f"checkpoint_path={acorm_3m}"), fragment)
    _no_sacred_run(tmp_path)


def test_a_step_folder_resumes_from_that_step(models, tmp_path):
    middle = step_folders(models)[1]  # not the newest: the step named is the step loaded
    newest = step_folders(models)[0]
    # saving beside it would overwrite the run's newer checkpoint: refused, nothing replaced (issue #41)
    before = {p.name: p.stat().st_mtime_ns for p in newest.iterdir()}
    _refused(_run(tmp_path, "acorm", "3m", f"checkpoint_path={middle}", "save_model=True"),
             f"resuming from step {middle.name} with save_model=True would overwrite this run's newer checkpoint(s) "
             f"{newest.name}")
    assert {p.name: p.stat().st_mtime_ns for p in newest.iterdir()} == before
    proc = _run(tmp_path, "acorm", "3m", f"checkpoint_path={middle}", "save_model=False")
    run_ok(proc)
    assert f"resumed exactly from {middle} at t_env {middle.name}" in proc.stderr


def test_a_resume_under_another_config_names_the_keys_and_is_not_exact(models, tmp_path):
    newest = step_folders(models)[0]
    proc = _run(tmp_path, "acorm", "3m", f"checkpoint_path={models}", "batch_size=8", "role_clusters=2", "lr=0.01")
    run_ok(proc)
    line = next(line for line in proc.stderr.splitlines() if "resumed" in line)
    assert "resumed exactly" not in proc.stderr
    assert line.startswith("r3dm-epymarl: resumed (not exactly: the config differs from the checkpoint's: ")
    saved_lr = read_manifest(newest)["config"]["lr"]
    for change in ("batch_size 4 -> 8", f"lr {saved_lr!r} -> 0.01", "role_clusters 3 -> 2"):
        assert change in line, line
    assert line.endswith(f") from {newest} at t_env {newest.name}")


def test_a_resume_with_the_same_config_on_pymarlzooplus_is_exact(zoo_available, tmp_path):
    """The host's per-run keys (results_path, unique_token) are no config change."""
    from tests.helpers import short_run, zoo_train

    first = zoo_train("acorm", tmp_path / "first", "save_model=True", "save_model_interval=150")
    models = first / "models"
    newest = step_folders(models)[0]
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path / "second"), "--config=acorm",
               "--env-config=gymma", "with", *short_run("acorm"), "seed=7", "save_model=True",
               "save_model_interval=150", f"checkpoint_path={models}", "t_max=450")
    run_ok(proc)
    assert f"resumed exactly from {newest} at t_env {newest.name}" in proc.stderr

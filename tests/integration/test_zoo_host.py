"""Every registered algorithm trains through a real PyMARLzoo+ run loop (runner, buffer, Sacred)."""
import math
from pathlib import Path

import pytest

from r3dm_epymarl.registry import ALGORITHMS
from tests.helpers import SHORT_RUN, cli, metrics, run_ok, zoo_train

ALGOS = list(ALGORITHMS)


def _loss_key(m: dict) -> str:
    return "loss_td" if "loss_td" in m else "loss"


@pytest.fixture(scope="module")
def trained(zoo_available, tmp_path_factory):
    """One short run per algorithm, shared by the tests below (runs cost ~20 s each)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = zoo_train(name, tmp_path_factory.mktemp(name), "save_model=True",
                                    "save_model_interval=150")
        return cache[name]

    return get


@pytest.mark.parametrize("algorithm", ALGOS)
def test_trains_and_logs(trained, algorithm):
    run_dir = trained(algorithm)
    m = metrics(run_dir)
    losses = m[_loss_key(m)]["values"]
    assert len(losses) >= 3, "several learner updates should have been logged"
    assert all(math.isfinite(v) for v in losses)
    assert m["test_return_mean"]["values"], "the host's test phase ran"
    assert max(m[_loss_key(m)]["steps"]) <= 350
    saved = sorted(p.name for p in (run_dir / "models").iterdir())
    assert saved, "save_model=True wrote checkpoints"


@pytest.mark.parametrize("algorithm", ALGOS)
def test_same_seed_same_losses(trained, algorithm, tmp_path):
    first = metrics(trained(algorithm))
    second = metrics(zoo_train(algorithm, tmp_path, "save_model=True", "save_model_interval=150"))
    key = _loss_key(first)
    assert first[key]["values"] == second[key]["values"]


@pytest.mark.parametrize("algorithm", ALGOS)
def test_resume_from_checkpoint(trained, algorithm, tmp_path):
    models = trained(algorithm) / "models"
    run_dir = zoo_train(algorithm, tmp_path, f"checkpoint_path={models}", "t_max=450")
    m = metrics(run_dir)
    steps = m[_loss_key(m)]["steps"]
    assert min(steps) > 150, "a resumed run continues from the checkpoint's step"


def test_more_role_clusters_than_agents_stops_before_training(zoo_available, tmp_path):
    # The agent count is known only once the host has built the env: the learner checks it at
    # construction, and the message reaches the user as one line, without a traceback.
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=acorm",
               "--env-config=gymma", "with", *SHORT_RUN, "role_clusters=5")
    assert proc.returncode != 0
    assert "'role_clusters' is 5 but the env has only 3 agents" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Beginning training" not in proc.stdout + proc.stderr


def test_demo_prints_where_the_run_went(zoo_available, tmp_path):
    pytest.importorskip("jaxmarl", reason="the demo's default env is SMAX (pip install jaxmarl==0.2.0)")
    proc = cli("demo", "--t-max", "200", "--base-dir", str(tmp_path))
    run_ok(proc)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("Sacred run: "))
    run_dir = Path(line.removeprefix("Sacred run: "))
    assert run_dir.is_relative_to(tmp_path / "results" / "sacred" / "r3dm" / "3m")
    assert (run_dir / "metrics.json").is_file()
    assert "test_battle_won_mean" in proc.stdout and "test_return_mean" in proc.stdout
    # The summary's last test is at t_max (a final test after the loop; the host's last was at t~20).
    won = next(l for l in proc.stdout.splitlines() if l.startswith("test_battle_won_mean:"))
    assert int(won.rsplit("at t=", 1)[-1]) >= 200, won
    assert "r3dm-epymarl: t_env " in proc.stderr  # the progress line


def test_smax_trains_through_pymarlzooplus_and_logs_win_rate(zoo_available, tmp_path):
    pytest.importorskip("jaxmarl", reason="jaxmarl is not installed (pip install jaxmarl==0.2.0)")
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=acorm",
               "--env-config=smax", "with", "env_args.map_name=3m", "t_max=400", "batch_size=4",
               "buffer_size=32", "test_interval=200", "test_nepisode=2", "log_interval=200",
               "runner_log_interval=200", "learner_log_interval=0", "use_cuda=False",
               "pretrain_encoder_steps=1", "pretrain_contrastive_steps=1")
    run_ok(proc)
    (run_dir,) = [p.parent for p in tmp_path.glob("results/sacred/acorm/3m/*/metrics.json")]
    m = metrics(run_dir)
    assert m["test_battle_won_mean"]["values"], "SMAX reports battle_won under SMAC's name"
    assert len(m["loss_td"]["values"]) >= 3 and all(math.isfinite(v) for v in m["loss_td"]["values"])

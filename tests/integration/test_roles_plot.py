"""`r3dm-epymarl roles`: a role plot from a tiny checkpoint, rolled out through the real host."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from r3dm_epymarl.registry import ALGORITHMS
from tests.helpers import LBF_KEY, assert_real_png, cli, run_ok, short_run, zoo_train

# 3 LBF agents, 2 roles: the clustering has a real choice to make at every step.
CHECKPOINTED = ("save_model=True", "save_model_interval=150", "role_clusters=2")


def _outputs(proc) -> tuple[Path, Path]:
    lines = proc.stdout.splitlines()
    png = Path(next(l for l in lines if l.startswith("role plot: ")).removeprefix("role plot: "))
    npz = Path(next(l for l in lines if l.startswith("role data: ")).removeprefix("role data: ").split(" (")[0])
    return png, npz


def _check_plot(png: Path) -> None:
    assert_real_png(png, min_height=400, min_width=1000, min_std=0.05)


def _check_arrays(npz: Path, algorithm: str, t_env: int, n_agents: int = 3, k: int = 2) -> dict:
    data = dict(np.load(npz))
    z, e, labels, tracked = data["z"], data["e"], data["labels"], data["labels_tracked"]
    T = z.shape[0]
    assert 2 <= T <= 26, "one episode of at most time_limit=25 steps, plus the terminal observation"
    assert z.shape == (T, n_agents, 64) and e.shape == (T, n_agents, 128)  # role_embed_dim, traj_embed_dim
    assert np.isfinite(z).all() and ((z > 0) & (z < 1)).all(), "z = sigmoid(...)"
    assert labels.shape == tracked.shape == (T, n_agents)
    assert labels.min() >= 0 and labels.max() < k and tracked.min() >= 0 and tracked.max() < k
    # Tracking renumbers clusters, never regroups agents: same partition at every step.
    same = lambda x: x[:, :, None] == x[:, None, :]  # noqa: E731  [T, N, N]
    assert (same(labels) == same(tracked)).all()
    assert data["pca"].shape == (T, n_agents, 2) and np.isfinite(data["pca"]).all()
    assert str(data["algorithm"]) == algorithm and int(data["t_env"]) == t_env
    assert int(data["role_clusters"]) == k
    return data


@pytest.fixture(scope="module")
def acorm_run(zoo_available, tmp_path_factory):
    return zoo_train("acorm", tmp_path_factory.mktemp("acorm"), *CHECKPOINTED)


def test_role_plot_from_a_tiny_acorm_checkpoint(acorm_run, tmp_path):
    saved = sorted(int(p.name) for p in (acorm_run / "models").iterdir())
    proc = cli("roles", str(acorm_run), "--out", str(tmp_path / "plots"))
    run_ok(proc)
    assert "Loading model from" in proc.stdout + proc.stderr, "the host loaded the checkpoint"
    png, npz = _outputs(proc)
    assert png.parent == npz.parent == tmp_path / "plots"
    _check_plot(png)
    _check_arrays(npz, "acorm", t_env=saved[-1])  # no --step: the latest checkpoint
    # The evaluation's own Sacred run is dropped: the training results are unchanged.
    assert [p.name for p in acorm_run.parent.iterdir() if p.name.isdigit()] == [acorm_run.name]


def test_a_half_written_newest_checkpoint_falls_back_to_the_one_before(acorm_run, tmp_path):
    """A kill while the newest checkpoint was saved (its agent.th cut short): the plot is of the one
    before, through the real host, instead of the host's unpickling traceback."""
    run = tmp_path / "results" / "sacred" / "acorm" / LBF_KEY / acorm_run.name
    shutil.copytree(acorm_run, run)
    saved = sorted(int(p.name) for p in (run / "models").iterdir())
    assert len(saved) >= 2, saved
    agent = run / "models" / str(saved[-1]) / "agent.th"
    agent.write_bytes(agent.read_bytes()[: agent.stat().st_size // 2])
    proc = cli("roles", str(run), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    run_ok(proc)
    assert f"skipping checkpoint {run / 'models' / str(saved[-1])}: agent.th does not match" in proc.stderr
    _, npz = _outputs(proc)
    _check_arrays(npz, "acorm", t_env=saved[-2])


@pytest.mark.skipif(not os.environ.get("EPYMARL_PATH"),
                    reason="EPYMARL_PATH is not set (point it at a clone of github.com/uoe-agents/epymarl)")
def test_role_plots_of_r3dm_through_epymarl(tmp_path):
    # EPyMARL keeps models in results/models/<token>/, apart from the Sacred run: found both ways.
    # (R3DM through PyMARLzoo+ would cost 45 s more, mostly the host's fixed pauses; its role controller
    # is ACORM's, which the test above rolls out through PyMARLzoo+.)
    checkout = tmp_path / "epymarl"
    shutil.copytree(os.environ["EPYMARL_PATH"], checkout, ignore=shutil.ignore_patterns("results", "__pycache__"))
    base = tmp_path / "base"
    run_ok(cli("run", "--epymarl", str(checkout), "--base-dir", str(base), "--config=r3dm", "--env-config=gymma",
               "with", *short_run("r3dm"), "seed=3", *CHECKPOINTED))
    (run_dir,) = [p.parent for p in base.glob("results/sacred/r3dm/*/*/config.json")]
    (token,) = (base / "results" / "models").iterdir()
    saved = sorted(int(p.name) for p in token.iterdir())

    proc = cli("roles", str(run_dir), "--step", "150", "--out", str(tmp_path / "plots"))  # run -> its token
    run_ok(proc)
    png, npz = _outputs(proc)
    _check_plot(png)
    _check_arrays(npz, "r3dm", t_env=min(saved, key=lambda t: (abs(t - 150), t)))

    proc = cli("roles", str(token), "--out", str(tmp_path / "r3dm.png"), cwd=tmp_path)  # token -> its run
    run_ok(proc)
    png, npz = _outputs(proc)
    assert (png, npz) == (tmp_path / "r3dm.png", tmp_path / "r3dm.npz")
    _check_arrays(npz, "r3dm", t_env=saved[-1])
    assert not (checkout / "results").exists(), "the evaluation runs were not left in the checkout"


# --- which run, which checkpoint: resolved before any host starts ---------------------------------
ACORM = {"name": "acorm", "mac": "role_mac", "learner": "acorm_learner", "role_clusters": 2}


def _fake_run(root: Path, config: dict, checkpoint: bool = True) -> Path:
    """A Sacred run folder as the hosts write it, with what `roles` reads before any host starts
    (PyMARLzoo+ layout: checkpoints at <run>/models/<t_env>/, here empty files)."""
    run_dir = root / "results" / "sacred" / config["name"] / LBF_KEY / "1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(
        {"env": "gymma", "env_args": {"key": LBF_KEY}, "seed": 1, "local_results_path": "results", **config}))
    for t_env in (100, 300) if checkpoint else ():
        (run_dir / "models" / str(t_env)).mkdir(parents=True)
        for name in ("agent.th", "roles.th"):
            (run_dir / "models" / str(t_env) / name).write_bytes(b"")
    return run_dir


def test_a_checkpoint_folder_leads_to_its_run(tmp_path, monkeypatch):
    from r3dm_epymarl.experiments.roles import find_source

    monkeypatch.chdir(tmp_path)
    # PyMARLzoo+: <run>/models/<t_env>/ inside the Sacred run folder.
    zoo_run = _fake_run(tmp_path / "zoo", ACORM)
    for path, t_env in [(zoo_run, 300), (zoo_run / "models", 300), (zoo_run / "models" / "100", 100)]:
        source = find_source(path)
        assert (source.run_dir, source.t_env) == (zoo_run, t_env)
    assert find_source(zoo_run, step=180).t_env == 100, "the nearest saved step"

    # EPyMARL: results/models/<token>/<t_env>/ beside results/sacred/; the run's log names the token
    # (which holds a space; PyMARLzoo+'s rich log wraps long lines).
    ep_run = _fake_run(tmp_path / "ep", {**ACORM, "seed": 3}, checkpoint=False)
    token = tmp_path / "ep" / "results" / "models" / f"acorm_seed3_{LBF_KEY}_2026-01-02 03:04:05.678901"
    for t in (25, 175):
        (token / str(t)).mkdir(parents=True)
        for name in ("agent.th", "roles.th"):
            (token / str(t) / name).write_bytes(b"")
    (ep_run / "cout.txt").write_text(f"[INFO] my_main Saving models to results/models/acorm_seed3_\n"
                                     f"    {LBF_KEY}_2026-01-02 03:04:05.678901/25\n")
    assert find_source(ep_run).step_dir == token / "175"
    assert find_source(token).run_dir == ep_run
    assert find_source(token / "25").run_dir == ep_run


def test_a_compare_cell_folder_leads_to_its_run(tmp_path, monkeypatch):
    """What the README shows: `roles OUT/<map>/<alg>/seed<k>` (and `probe`), a compare cell holding
    results/sacred/...; with a resumed chain, the first run (whose folder the later ones save into)."""
    from r3dm_epymarl.experiments.roles import find_source

    monkeypatch.chdir(tmp_path)
    cell = tmp_path / "grid" / "3m" / "acorm" / "seed1"
    run = _fake_run(cell, ACORM)
    (run / "run.json").write_text(json.dumps({"start_time": "2026-01-01T00:00:00"}))
    later = run.parent / "2"  # a resumed run: no checkpoints of its own
    later.mkdir()
    (later / "config.json").write_text((run / "config.json").read_text())
    (later / "run.json").write_text(json.dumps({"start_time": "2026-01-02T00:00:00"}))
    source = find_source(cell)
    assert (source.run_dir, source.t_env) == (run, 300)
    assert find_source(cell, step=120).t_env == 100
    # A later run of the chain that saved checkpoints of its own (a cell continued after a stop): its
    # steps are the cell's too, not only the first run's (a probe at 50k once got the stop's 5k).
    for t_env in (400, 500):
        (later / "models" / str(t_env)).mkdir(parents=True)
        for name in ("agent.th", "roles.th"):
            (later / "models" / str(t_env) / name).write_bytes(b"")
    assert find_source(cell).t_env == 500
    assert find_source(cell, step=420).step_dir == later / "models" / "400"
    assert find_source(cell, step=120).t_env == 100
    assert find_source(run).t_env == 300, "a Sacred run folder given as PATH: its own checkpoints"


def test_a_checkpoint_manifest_names_its_run_without_guessing(tmp_path, monkeypatch):
    """A checkpoint saved through the plug-in's run loop names its Sacred run in checkpoint.json: found
    with no log line naming the folder and no start time near the folder's timestamp."""
    from r3dm_epymarl.experiments.roles import find_source

    monkeypatch.chdir(tmp_path)
    run = _fake_run(tmp_path / "ep", {**ACORM, "seed": 3}, checkpoint=False)
    token = tmp_path / "ep" / "results" / "models" / "renamed by hand"
    for t in (25, 175):
        (token / str(t)).mkdir(parents=True)
        for name in ("agent.th", "roles.th"):
            (token / str(t) / name).write_bytes(b"")
        (token / str(t) / "checkpoint.json").write_text(json.dumps({"sacred": {"run_dir": str(run)}}))
    assert not (run / "cout.txt").exists()
    assert find_source(token).run_dir == run and find_source(token).t_env == 175
    assert find_source(run).step_dir == token / "175"
    assert find_source(run, step=30).step_dir == token / "25"


def _checkpointed_run(root: Path, steps=(100, 200, 300)) -> Path:
    """A fake run whose checkpoints were saved through the plug-in's loop: each with its manifest."""
    from r3dm_epymarl.runs.checkpoints import write_manifest

    run = _fake_run(root, ACORM, checkpoint=False)
    for t_env in steps:
        folder = run / "models" / str(t_env)
        folder.mkdir(parents=True)
        for name in ("agent.th", "roles.th"):
            (folder / name).write_bytes(f"{name} at {t_env}".encode())
        write_manifest(folder, {"t_env": t_env, "sacred": {"run_dir": str(run)}})
    return run


def test_a_half_written_checkpoint_is_skipped_for_the_newest_intact_one(tmp_path, monkeypatch, capsys):
    """As `run` resumes: a checkpoint whose files do not match its manifest (a kill mid-save), or with no
    manifest beside ones that have it (the manifest is written last), is skipped in one line."""
    from r3dm_epymarl.experiments.roles import find_source

    monkeypatch.chdir(tmp_path)
    run = _checkpointed_run(tmp_path)
    (run / "models" / "300" / "agent.th").write_bytes(b"agent.th at")  # truncated
    source = find_source(run)
    assert (source.t_env, source.step_dir) == (200, run / "models" / "200")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"r3dm-epymarl roles: skipping checkpoint {run / 'models' / '300'}: agent.th does not match "
                   "its manifest (corrupt or half-written)"]
    assert find_source(run / "models").t_env == 200, "the checkpoint root: the same rule"
    assert find_source(run, step=290).t_env == 200, "--step: the nearest intact one"
    assert "no intact checkpoint at t_env=290; using the nearest, t_env=200" in capsys.readouterr().err
    (run / "models" / "200" / "checkpoint.json").unlink()  # killed before its manifest
    assert find_source(run).t_env == 100
    assert "models/200: no checkpoint.json (a save that did not finish)" in capsys.readouterr().err


def test_no_intact_checkpoint_is_one_line(tmp_path):
    run = _checkpointed_run(tmp_path, steps=(100, 300))
    for t_env in (100, 300):
        (run / "models" / str(t_env) / "roles.th").write_bytes(b"")
    proc = cli("roles", str(run), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["r3dm-epymarl roles"] * 2  # the two skipped, newest first
    assert lines[-1].startswith("r3dm-epymarl: error: no intact checkpoint to plot (2 half-written or corrupt; "
                                f"the newest: {run / 'models' / '300'}: roles.th does not match its manifest")
    step = cli("roles", str(run / "models" / "100"), cwd=tmp_path)  # the one folder given: the same line
    assert step.returncode == 2 and "no intact checkpoint to plot (1 half-written" in step.stderr.splitlines()[-1]


# --- refusals: one line, exit code 2, before any host starts ---------------------------------------
def _refused(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r3dm-epymarl: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


ROLELESS = {name: {"name": name, "mac": algo.mac, "learner": algo.learner}
            for name, algo in ALGORITHMS.items() if algo.mac != "role_mac"}
ROLELESS["qmix"] = {"name": "qmix", "mac": "basic_mac", "learner": "q_learner"}  # the host's own QMIX


@pytest.mark.parametrize("algorithm", sorted(ROLELESS))
def test_runs_without_roles_are_refused(algorithm, tmp_path):
    run_dir = _fake_run(tmp_path, ROLELESS[algorithm])
    _refused(cli("roles", str(run_dir), cwd=tmp_path), f"--config={algorithm}", "has no roles",
             "--config=acorm or r3dm")


def test_a_run_without_checkpoints_is_refused(tmp_path):
    run_dir = _fake_run(tmp_path, ACORM, checkpoint=False)
    _refused(cli("roles", str(run_dir), cwd=tmp_path), "no saved checkpoint", "save_model=True")


def test_a_checkpoint_without_its_run_is_refused(tmp_path):
    step = tmp_path / "elsewhere" / "models" / "100"
    step.mkdir(parents=True)
    for name in ("agent.th", "roles.th"):
        (step / name).write_bytes(b"")
    _refused(cli("roles", str(step), cwd=tmp_path), "no Sacred run found", "--run")


def test_not_a_run_or_checkpoint_is_refused(tmp_path):
    _refused(cli("roles", str(tmp_path), cwd=tmp_path), "neither a Sacred run folder", "config.json")
    _refused(cli("roles", str(tmp_path / "missing"), cwd=tmp_path), "does not exist")


# --- the cluster numbering and the projection -----------------------------------------------------
def test_tracking_keeps_a_clusters_number_while_it_keeps_its_agents():
    from r3dm_epymarl.experiments.roles import track_clusters

    # Per-step canonical labels (agent 0 is always in cluster 0). At t = 1 agent 0 joins agents 2 and 3:
    # that group keeps its number 1 and agent 1, left alone, keeps 0; t = 2 is t = 1 again.
    labels = np.array([[0, 0, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0]])
    assert track_clusters(labels, 2).tolist() == [[0, 0, 1, 1], [1, 0, 1, 1], [1, 0, 1, 1]]
    # An empty cluster (k = 3 with two groups) is numbered too, without regrouping anyone.
    assert track_clusters(labels, 3).tolist() == [[0, 0, 1, 1], [1, 0, 1, 1], [1, 0, 1, 1]]


def test_pca_recovers_the_main_directions():
    from r3dm_epymarl.experiments.roles import pca_2d

    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 2)) * [5.0, 1.0] @ np.linalg.qr(rng.normal(size=(2, 2)))[0]
    points = np.concatenate([points, 1e-3 * rng.normal(size=(60, 6))], axis=1)  # [M, R=8]
    out = pca_2d(points, (20, 3))
    assert out["pca"].shape == (20, 3, 2)
    assert out["pca_explained"].sum() > 0.999 and out["pca_explained"][0] > out["pca_explained"][1]
    single = pca_2d(np.ones((6, 1)), (2, 3))  # degenerate: no variance, one dimension
    assert np.allclose(single["pca"], 0) and np.allclose(single["pca_explained"], 0)

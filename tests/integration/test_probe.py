"""`r3dm-epymarl probe`: two checkpoints of a short SMAX run, rolled out through the real EPyMARL host
with the same episodes, then the role's gains per checkpoint."""
import csv
import json
import math
import os
import shutil

import numpy as np
import pytest

from tests.helpers import cli, run_ok

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = [
    pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)"),
    pytest.mark.filterwarnings("ignore"),
]
pytest.importorskip("jaxmarl", reason="SMAX needs jaxmarl (pip install 'r3dm-epymarl[smax]')")

RUN = ["env_args.map_name=3m", "seed=4", "t_max=400", "batch_size=4", "buffer_size=32", "test_interval=400",
       "test_nepisode=1", "log_interval=400", "runner_log_interval=400", "learner_log_interval=0",
       "save_model=True", "save_model_interval=200", "use_cuda=False", "role_clusters=2",
       "pretrain_encoder_steps=2", "pretrain_contrastive_steps=2"]
PROBE = ["--episodes", "6", "--horizons", "1", "2", "--reps", "200", "--hidden", "16"]


def test_probe_two_checkpoints_of_a_smax_run_on_the_same_episodes(tmp_path):
    checkout = tmp_path / "epymarl"
    shutil.copytree(EPYMARL_PATH, checkout, ignore=shutil.ignore_patterns("results", "__pycache__"))
    base = tmp_path / "base"
    trained = cli("run", "--epymarl", str(checkout), "--base-dir", str(base), "--config=acorm",
                  "--env-config=smax", "with", *RUN, env={"R3DM_EPYMARL_TEST_SEED": "77"})
    run_ok(trained)
    (run_dir,) = [p.parent for p in base.glob("results/sacred/acorm/3m/*/config.json")]
    # Static tests through the real host loop (issue #36 item 6): said, and logged for `report`.
    assert "static tests: the j-th test episode of every test phase starts from env seed 77 + j" in trained.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["test_env_seed"]["values"] == [77]
    (token,) = (base / "results" / "models").iterdir()
    saved = sorted(int(p.name) for p in token.iterdir())
    early, late = saved[0], saved[-1]  # after the first episode, and at ~200 steps
    assert early < late, saved
    steps = ["--steps", str(early), str(late)]

    out = tmp_path / "probe"
    proc = cli("probe", str(run_dir), *steps, "--out", str(out), *PROBE)
    run_ok(proc)
    assert proc.stderr.count("Loading model from") >= 2 or proc.stdout.count("Loading model from") >= 2
    assert proc.stderr.count("probe: rolling out 6 episodes") == 2

    rollouts = [dict(np.load(f)) for f in sorted((out / "rollouts").glob("*.npz"))]
    assert sorted(int(r["t_env"]) for r in rollouts) == [early, late]
    for r in rollouts:
        offsets = r["offsets"]
        assert len(offsets) == 7 and (np.diff(offsets) >= 2).all()  # 6 episodes, >= 1 step + terminal row
        rows = offsets[-1]
        assert r["z"].shape[:2] == r["e"].shape[:2] == r["obs"].shape[:2] == r["actions"].shape == (rows, 3)
        assert r["z"].shape[2] == 64 and r["e"].shape[2] == 128  # role_embed_dim, traj_embed_dim
        chosen = np.take_along_axis(r["avail"], r["actions"][..., None], -1)[..., 0]
        assert (chosen == 1).all(), "the recorded actions are the executed (available) ones"
    # The same episodes for both checkpoints: episode m starts from env seed --seed + m, whatever the
    # policy did in the episodes before (SMAX's key chain would otherwise have run on through them).
    first = [r["obs"][r["offsets"][:-1]] for r in rollouts]  # [6, N, O] first observations
    np.testing.assert_array_equal(first[0], first[1])
    from r3dm_epymarl.envs.smax import SMAXEnv

    env = SMAXEnv(map_name="3m", seed=0)
    for m in range(6):
        obs, _ = env.reset(seed=100000 + m)  # --seed's default + m
        np.testing.assert_allclose(first[0][m], np.stack(obs), rtol=0, atol=1e-6)
    assert not np.array_equal(first[0][0], first[0][1]), "different episodes start differently"

    with open(out / "probe.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3 * 2  # checkpoints x horizons x measures x (z, e)
    for row in rows:
        value, lo, hi = float(row["value"]), float(row["lo"]), float(row["hi"])
        assert math.isfinite(value) and lo <= value <= hi, row
        if row["measure"].startswith("mse_ratio"):
            assert value > 0
    text = (out / "probe.txt").read_text()
    assert f"acorm 3m seed 4 t={early}" in text and f"acorm 3m seed 4 t={late}" in text
    assert "alike starts" in text
    assert (out / "probe.png").read_bytes()[:4] == b"\x89PNG"

    # Again: the roll-outs are reused, the numbers are the same.
    again = cli("probe", str(run_dir), *steps, "--out", str(out), *PROBE)
    run_ok(again)
    assert "rolling out" not in again.stderr
    assert (out / "probe.txt").read_text() == text
    assert len(list((out / "analyses").glob("*.pkl"))) == 2, "each checkpoint's analysis kept for the next call"


def test_probe_refuses_bad_input_in_one_line(tmp_path):
    proc = cli("probe", str(tmp_path / "nothing"))
    assert proc.returncode != 0 and "does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = cli("probe", str(tmp_path), "--episodes", "2")
    assert proc.returncode != 0 and "--episodes 2" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

"""Shared test helpers: a short host run in a subprocess and its Sacred output, a real PNG, a free port.
(Fixtures and hooks stay in conftest.py.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LBF_KEY = "lbforaging:Foraging-8x8-3p-3f-v3"  # 3 agents: room for |M| = 3 roles

# A few hundred env steps: enough for several learner updates, a test phase, a checkpoint.
SHORT_RUN = [
    f"env_args.key={LBF_KEY}", "env_args.time_limit=25", "t_max=300", "batch_size=4",
    "buffer_size=32", "test_interval=150", "test_nepisode=2", "log_interval=150",
    "runner_log_interval=150", "learner_log_interval=0", "use_cuda=False",
]


def short_run(algorithm: str) -> list[str]:
    """SHORT_RUN for `algorithm`: algorithms that pre-train their roles get 2 + 2 pre-training steps (the
    published 120 + 100 take one collected episode each and would leave a 300-step run no TD update)."""
    from r3dm_epymarl.paths import config_dir

    yaml_file = config_dir() / "algs" / f"{algorithm}.yaml"
    pretrains = yaml_file.exists() and "pretrain_encoder_steps:" in yaml_file.read_text()
    return SHORT_RUN + (["pretrain_encoder_steps=2", "pretrain_contrastive_steps=2"] if pretrains else [])


def cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m r3dm_epymarl ARGS` in a fresh process (the way users run it)."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "r3dm_epymarl", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def sacred_runs(results: Path) -> list[Path]:
    return sorted(p.parent for p in Path(results).glob("results/sacred/*/*/*/metrics.json"))


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def run_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def zoo_train(algorithm: str, results: Path, *extra: str, seed: int = 7, env: dict | None = None) -> Path:
    """Train `algorithm` briefly through PyMARLzoo+ and return its Sacred run folder."""
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(results), f"--config={algorithm}",
               "--env-config=gymma", "with", *short_run(algorithm), f"seed={seed}", *extra, env=env)
    run_ok(proc)
    (run_dir,) = sacred_runs(results)
    return run_dir


def assert_real_png(path: Path, min_height: int = 1, min_width: int = 1, min_std: float = 0.0) -> None:
    """A PNG file that decodes to an RGB(A) image of at least this size, with content (pixel spread)."""
    import matplotlib.image

    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = matplotlib.image.imread(path)  # [H, W, 3 or 4] floats in [0, 1]
    assert image.ndim == 3 and image.shape[2] in (3, 4), image.shape
    assert image.shape[0] >= min_height and image.shape[1] >= min_width, image.shape
    assert image[..., :3].std() > min_std, "the figure has content, not a blank canvas"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

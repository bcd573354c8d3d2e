"""The main job on an embedded default: one algorithm trained through PyMARLzoo+ on LBF (no StarCraft II),
then where its Sacred run went and its last test return."""
from __future__ import annotations

import json
from pathlib import Path

DEMO_ENV = "lbforaging:Foraging-8x8-3p-3f-v3"  # 3 agents, so the default |M| = 3 roles fit


def demo_args(algorithm: str, t_max: int, seed: int) -> list[str]:
    return [f"--config={algorithm}", "--env-config=gymma", "with", f"env_args.key={DEMO_ENV}",
            "env_args.time_limit=50", f"t_max={t_max}", "test_interval=10000", "test_nepisode=20",
            "log_interval=10000", "runner_log_interval=10000", "learner_log_interval=10000",
            "epsilon_anneal_time=20000", f"seed={seed}"]


def latest_run(base_dir: Path, algorithm: str) -> Path:
    runs = [p for p in (base_dir / "results" / "sacred" / algorithm).glob("*/*") if p.name.isdigit()]
    return max(runs, key=lambda p: p.stat().st_mtime)


def summary(run_dir: Path) -> str:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics.get("test_return_mean", {"steps": [], "values": []})
    lines = [f"Sacred run: {run_dir}"]
    if test["values"]:
        lines.append(f"test_return_mean: {test['values'][0]:.3f} at t={test['steps'][0]} -> "
                     f"{test['values'][-1]:.3f} at t={test['steps'][-1]}")
    return "\n".join(lines)


def run_demo(algorithm: str = "acorm", t_max: int = 50000, seed: int = 1, base_dir: str | None = None) -> str:
    from r3dm_epymarl.launcher import launch

    base = Path(base_dir or ".").resolve()
    launch(demo_args(algorithm, t_max, seed), host_name="pymarlzooplus", base_dir=str(base))
    return summary(latest_run(base, algorithm))

"""The main job on an embedded default: R3DM trained through PyMARLzoo+ on the SMAX map 3m (SMAC-style
battles, no StarCraft II), then where its Sacred run went, its test win rate and return."""
from __future__ import annotations

import json
from pathlib import Path

ENVS = {
    # --env: (--env-config, the `with` keys that pick the scenario)
    "smax": ("smax", lambda map_name: [f"env_args.map_name={map_name or '3m'}"]),
    "lbf": ("gymma", lambda map_name: [f"env_args.key=lbforaging:{map_name or 'Foraging-8x8-3p-3f-v3'}",
                                       "env_args.time_limit=50"]),
}


def demo_args(algorithm: str, env: str, map_name: str | None, t_max: int, seed: int) -> list[str]:
    env_config, scenario = ENVS[env]
    return [f"--config={algorithm}", f"--env-config={env_config}", "with", *scenario(map_name),
            f"t_max={t_max}", "test_interval=10000", "test_nepisode=32", "log_interval=10000",
            "runner_log_interval=10000", "learner_log_interval=10000", f"seed={seed}"]


def latest_run(base_dir: Path, algorithm: str) -> Path:
    runs = [p for p in (base_dir / "results" / "sacred" / algorithm).glob("*/*") if p.name.isdigit()]
    return max(runs, key=lambda p: p.stat().st_mtime)


def summary(run_dir: Path) -> str:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    lines = [f"Sacred run: {run_dir}"]
    for key in ("test_battle_won_mean", "test_return_mean"):
        series = metrics.get(key)
        if series and series["values"]:
            lines.append(f"{key}: {series['values'][0]:.3f} at t={series['steps'][0]} -> "
                         f"{series['values'][-1]:.3f} at t={series['steps'][-1]}")
    return "\n".join(lines)


def run_demo(algorithm: str = "r3dm", env: str = "smax", map_name: str | None = None, t_max: int = 50000,
             seed: int = 1, base_dir: str | None = None) -> str:
    import os

    from r3dm_epymarl.launcher import launch
    from r3dm_epymarl.runs.loop import TEST_AT_END

    if t_max < 1:
        from r3dm_epymarl.errors import UserError

        raise UserError(f"--t-max {t_max}: the number of env steps to train must be at least 1")
    os.environ[TEST_AT_END] = "1"  # the summary's last win rate is measured at t_max, not up to 10k before
    base = Path(base_dir or ".").resolve()
    launch(demo_args(algorithm, env, map_name, t_max, seed), host_name="pymarlzooplus", base_dir=str(base))
    return summary(latest_run(base, algorithm))

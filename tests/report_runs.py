"""Synthetic Sacred runs with known answers, for the `report` tests (unit and integration)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from r3dm_epymarl.experiments import report

T_MAX = 1000
STEPS = list(range(0, T_MAX + 1, 100))  # 11 evaluations


def write_run(root: Path, algorithm: str, map_name: str, seed: int, curves: dict, steps=STEPS, t_max=T_MAX,
              status="COMPLETED", config: dict | None = None, folder_name: str | None = None) -> None:
    """A Sacred FileStorage run folder (run.json, config.json, metrics.json); `curves`: metric -> values;
    `config`: more config keys; `folder_name`: the run's folder (default: the seed)."""
    folder = root / algorithm / map_name / (folder_name or str(seed))
    folder.mkdir(parents=True)
    lbf = report.RETURN in curves and report.WIN_RATE not in curves
    env_args = {"key": f"lbforaging:{map_name}"} if lbf else {"map_name": map_name}
    (folder / "run.json").write_text(json.dumps({"status": status}))
    (folder / "config.json").write_text(json.dumps({"name": algorithm, "seed": seed, "t_max": t_max,
                                                    "env": "gymma" if lbf else "smax", "env_args": env_args,
                                                    **(config or {})}))
    (folder / "metrics.json").write_text(json.dumps(
        {m: {"steps": list(steps[: len(v)]), "values": list(v)} for m, v in curves.items()}))


def flat(value: float, steps=STEPS) -> list[float]:
    return [value] * len(steps)


def ramp(top: float, steps=STEPS) -> list[float]:
    return [top * s / T_MAX for s in steps]


def load(root: Path):
    return [r for r in report.load_file_runs(root) if r.status == "COMPLETED"]


def step_at_300():
    return [0.0 if s < 300 else 1.0 for s in STEPS]


# Runs through real Sacred experiments (test_report.py's known answers): (algorithm, map, seed, metric,
# values, fails).
SACRED_RUNS = [
    *[("qmix", "5m_vs_6m", seed, report.WIN_RATE, ramp(top), False) for seed, top in ((1, 0.2), (2, 0.4), (3, 0.6))],
    *[("r3dm", "5m_vs_6m", seed, report.WIN_RATE, step_at_300(), False) for seed in (1, 2, 3)],
    ("r3dm", "5m_vs_6m", 4, report.WIN_RATE, ramp(0.0), True),  # a failed run: left out
    *[("acorm", "Foraging-8x8-3p-3f-v3", seed, report.RETURN, ramp(0.1 * seed), False) for seed in range(1, 6)],
]


def write_sacred_runs(file_root, observer=None):
    """The synthetic runs through real Sacred experiments (file storage, and Mongo if given)."""
    from sacred import Experiment
    from sacred.observers import FileStorageObserver

    for algorithm, map_name, seed, metric, values, fails in SACRED_RUNS:
        env_args = {"key": f"lbforaging:{map_name}"} if metric == report.RETURN else {"map_name": map_name}
        ex = Experiment("synthetic", save_git_info=False)
        ex.add_config({"name": algorithm, "seed": seed, "t_max": T_MAX, "env_args": env_args})
        ex.observers.append(FileStorageObserver(str(file_root / algorithm / map_name)))
        if observer is not None:
            ex.observers.append(observer())

        def body(_run, metric=metric, values=values, fails=fails):
            for step, value in zip(STEPS, values):
                _run.log_scalar(metric, value, step)
            _run.log_scalar("loss_td", 1.0, 0)
            if fails:
                raise RuntimeError("diverged")

        ex.main(body)
        if fails:
            with pytest.raises(RuntimeError):
                ex.run()
        else:
            ex.run()


def r3dm_curves(seed: int) -> dict:
    """Agnostic recon falls 10 -> 2 (+ seed), the role model's is exactly half; r_obs ramps to 0.1 * seed."""
    agnostic = [10 - 8 * s / T_MAX + seed for s in STEPS]
    return {report.WIN_RATE: flat(0.5), "r_int_obs_mean": ramp(0.1 * seed), "r_int_obs_std": flat(9.0),
            "r_int_policy_mean": flat(1e-4), "loss_wm_recon": agnostic,
            "loss_wm_role_recon": [a / 2 for a in agnostic], "loss_wm_dyn": flat(1.0), "loss_wm_role_dyn": [],
            "role_cluster_size_0": flat(2.5), "role_cluster_size_1": flat(1.5), "role_cluster_size_2": flat(1.0)}

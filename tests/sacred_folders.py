"""Sacred FileStorage run folders written by hand (run.json, config.json, metrics.json), damaged ones
included, for the tests of `report`."""
from __future__ import annotations

import json
from pathlib import Path

from r3dm_epymarl.experiments.report import WIN_RATE as WON  # noqa: F401 (for the tests)


def write_run(folder: Path, status="COMPLETED", curves=None, name="qmix", seed=1, map_name="3m", t_max=1000,
              metrics=None, resumed=None) -> Path:
    """A Sacred FileStorage run folder; `curves`: metric -> (steps, values); `metrics`: metrics.json as
    given (damaged ones); `resumed`: (folder, t_env) of the run it continues (resumed_from.json)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status}))
    (folder / "config.json").write_text(json.dumps({"name": name, "seed": seed, "t_max": t_max, "env": "smax",
                                                    "env_args": {"map_name": map_name}}))
    if metrics is None:
        metrics = {m: {"steps": s, "values": v} for m, (s, v) in (curves or {}).items()}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if resumed:
        (folder / "resumed_from.json").write_text(json.dumps({"run_dir": str(resumed[0]), "t_env": resumed[1]}))
    return folder


def table_row(text: str, algorithm: str) -> list[str]:
    """The per-map table's row of `algorithm` (before rliable's blocks, whose rows start alike), split."""
    (row,) = [line.split() for line in text.split("== rliable:")[0].splitlines() if line.startswith(algorithm + " ")]
    return row


def two_good_runs(root: Path) -> None:
    for seed, top in ((1, 0.2), (2, 0.6)):
        write_run(root / f"good{seed}", seed=seed, curves={WON: ([0, 500, 1000], [0.0, top / 2, top])})

"""Keep the Sacred records of a study's finished cells in the repository, without their checkpoints, so that
`report` can read them in a later session after the runs folder is gone.

    python docs/study/keep_runs.py <runs>/ablation_wm_published docs/study/runs/ablation_wm_published
    python -m r3dm_epymarl report docs/study/runs/ablation_wm_published ...

Copied: the run.json, config.json, info.json, metrics.json and resumed_from.json of every Sacred run of a
cell (a continued cell has several; `report` joins them into one curve) whose newest run is COMPLETED, with
the folder layout kept. Not copied: checkpoints (models/), console logs, cells still running or stopped.
About 0.1-0.2 MB per 150k-step cell.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install, as finals_stats.py

from r3dm_epymarl.runs.loop import RESUMED_FROM  # noqa: E402  (a continued run writes it; report stitches with it)

KEPT = ("run.json", "config.json", "info.json", "metrics.json", RESUMED_FROM)


def sacred_runs(cell: Path) -> list[Path]:
    """The Sacred run folders of one cell (those holding a run.json), oldest first by start time."""
    runs = [p.parent for p in (cell / "results" / "sacred").rglob("run.json")]
    return sorted(runs, key=lambda p: json.loads((p / "run.json").read_text()).get("start_time", ""))


def keep(source: Path, dest: Path) -> list[Path]:
    """Copy the finished cells under `source` (folders with results/sacred) to the same paths under `dest`;
    returns the cells copied."""
    kept = []
    for sacred in sorted(source.rglob("results/sacred")):
        cell = sacred.parent.parent
        runs = sacred_runs(cell)
        if not runs or json.loads((runs[-1] / "run.json").read_text()).get("status") != "COMPLETED":
            continue
        for run in runs:
            target = dest / run.relative_to(source)
            target.mkdir(parents=True, exist_ok=True)
            for name in KEPT:
                if (run / name).is_file():
                    shutil.copy2(run / name, target / name)
        kept.append(cell)
    return kept


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or not Path(argv[0]).is_dir():
        raise SystemExit("usage: keep_runs.py <a compare --out folder> <destination folder>")
    source, dest = map(Path, argv)
    kept = keep(source, dest)
    print(f"kept {len(kept)} finished cell(s) of {source} in {dest}" +
          "".join(f"\n  {c.relative_to(source)}" for c in kept))


if __name__ == "__main__":
    main()

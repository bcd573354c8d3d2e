"""`report`'s per-cell view: one row per (map, algorithm, seed), so that a table quoting "final per seed"
or "wall time per cell" reads it from the runs rather than from logs.

- final and AUC: the same per-seed numbers report.aggregate averages (final = the last 5% of steps);
- steps: the last step the test metric was logged at;
- wall_s: the Sacred run's start to stop (a killed run: to its last heartbeat), summed over the runs a
  resumed cell continues; `segments` counts those runs. Steps a killed run made past its last
  checkpoint were redone by its continuation, so wall_s is what the cell cost, and steps / wall_s is
  a lower bound on its speed.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from r3dm_epymarl.experiments.report_runs import Run

CELLS_COLUMNS = ["map", "algorithm", "seed", "status", "metric", "final", "auc", "steps", "wall_s", "segments"]


def cell_rows(runs: list[Run], metrics: dict[str, str]) -> list[list]:
    """Rows of cells.csv for `runs` (already chosen by status, continued runs dropped); `metrics`: the
    map -> test metric that report.aggregate picked. Runs without that metric are left out."""
    from r3dm_epymarl.experiments.report import area_under_curve, final_value

    rows = []
    for run in sorted(runs, key=lambda r: (r.map, r.algorithm, r.seed)):
        metric = metrics.get(run.map)
        steps, values = run.series.get(metric, ([], [])) if metric else ([], [])
        if not steps:
            continue
        rows.append([run.map, run.algorithm, run.seed, run.status, metric,
                     final_value(steps, values, run.t_max), area_under_curve(steps, values), steps[-1],
                     "" if run.wall_s is None else round(run.wall_s, 1), run.segments])
    return rows


def write_cells_csv(rows: list[list], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CELLS_COLUMNS)
        writer.writerows(rows)


def duration(seconds: float | str) -> str:
    """12 s, 14 min, 2.5 h."""
    if seconds == "" or seconds is None or math.isnan(float(seconds)):
        return "-"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def cells_block(rows: list[list]) -> str:
    """Per map, one line per algorithm: each seed's final, and its wall time and runs when resumed."""
    lines = []
    for map_name in sorted({r[0] for r in rows}):
        resumed = any(r[9] > 1 for r in rows if r[0] == map_name)
        lines.append(f"\n-- {map_name}, per seed: final (wall time{', runs' if resumed else ''})")
        for algorithm in sorted({r[1] for r in rows if r[0] == map_name}):
            seeds = [r for r in rows if r[0] == map_name and r[1] == algorithm]
            parts = [f"{r[2]}: {r[5]:.3f} ({duration(r[8])}{f', {r[9]} runs' if r[9] > 1 else ''})" for r in seeds]
            lines.append(f"  {algorithm}  " + "; ".join(parts))  # indented: not a row of the table above
    return "\n".join(lines).lstrip("\n")

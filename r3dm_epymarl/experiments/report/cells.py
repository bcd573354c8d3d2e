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
from typing import NamedTuple

from r3dm_epymarl.experiments.report.runs import Run

class Cell(NamedTuple):
    """One row of cells.csv; the fields are its columns."""

    map: str
    algorithm: str
    seed: int
    status: str
    metric: str
    final: float
    auc: float
    steps: float
    wall_s: float | None  # None (an empty cell in the CSV) where a run's times could not be read
    segments: int


def cell_rows(runs: list[Run], metrics: dict[str, str]) -> list[Cell]:
    """The cells of `runs` (already chosen by status, continued runs dropped); `metrics`: the map -> test
    metric that report.aggregate picked. Runs without that metric are left out."""
    from r3dm_epymarl.experiments.report.metrics import area_under_curve, final_value

    cells = []
    for run in sorted(runs, key=lambda r: (r.map, r.algorithm, r.seed)):
        metric = metrics.get(run.map)
        steps, values = run.series.get(metric, ([], [])) if metric else ([], [])
        if not steps:
            continue
        cells.append(Cell(run.map, run.algorithm, run.seed, run.status, metric, final_value(steps, values, run.t_max),
                          area_under_curve(steps, values), steps[-1],
                          None if run.wall_s is None else round(run.wall_s, 1), run.segments))
    return cells


def write_cells_csv(cells: list[Cell], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(Cell._fields)
        writer.writerows(cells)  # csv writes None as an empty field


def duration(seconds: float | None) -> str:
    """12 s, 14 min, 2.5 h."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def cells_block(cells: list[Cell]) -> str:
    """Per map, one line per algorithm: each seed's final, and its wall time and runs when resumed."""
    lines = []
    for map_name in sorted({c.map for c in cells}):
        on_map = [c for c in cells if c.map == map_name]
        resumed = any(c.segments > 1 for c in on_map)
        lines.append(f"\n-- {map_name}, per seed: final (wall time{', runs' if resumed else ''})")
        for algorithm in sorted({c.algorithm for c in on_map}):
            parts = [f"{c.seed}: {c.final:.3f} ({duration(c.wall_s)}{f', {c.segments} runs' if c.segments > 1 else ''}"
                     + (f", {c.status} at {c.steps:g}: partial)" if c.status != "COMPLETED" else ")")
                     for c in on_map if c.algorithm == algorithm]
            lines.append(f"  {algorithm}  " + "; ".join(parts))  # indented: not a row of the table above
    return "\n".join(lines).lstrip("\n")

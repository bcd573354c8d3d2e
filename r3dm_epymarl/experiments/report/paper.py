"""`report --paper`: the published StarCraft II results beside the runs. Both package data files are
SMAC/SMACv2 on StarCraft II (the R3DM repository's exports), a reference, not the SMAX benchmark:

- data/paper_results.csv: each (map, algorithm)'s final test win rate (ALGORITHMS.md section 4), the
  table's "paper (StarCraft II)" column; `--paper CSV` replaces it (columns map, algorithm,
  final_test_win_rate);
- data/published_curves.csv: the published test win-rate curves of the algorithms the plug-in and
  its hosts run (r3dm, acorm, cds, qmix), one row per 20k-step window (step = the window's centre):
  columns map, algorithm, step, mean, min, max, seeds. Where the export holds a group mean with its
  min/max band over the seeds (R3DM, ACORM, QMIX on most maps), those three; where it holds only
  per-seed curves, `mean` is their mean at the steps every seed covers, min/max are empty and
  `seeds` says how many. Regenerate it from the shared long table (README beside it) with
      python -m r3dm_epymarl.experiments.report.paper PATH/TO/published/curves.csv

Maps match by name, case-insensitively (SMAX's maps mirror SMAC's: 5m_vs_6m, 3s5z_vs_3s6z, ...).
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ALGORITHMS = ("r3dm", "acorm", "cds", "qmix")  # the published curves kept: what can be run here
COLUMNS = ["map", "algorithm", "step", "mean", "min", "max", "seeds"]
FINAL_COLUMNS = ("map", "algorithm", "final_test_win_rate")
HOW = "linear between the published 20k-step window means"
# What the published curve of an algorithm is, where it is not the plug-in's algorithm of that name: the
# R3DM authors' CDS baseline ran the QPLEX-based CDS (RMSprop, epsilon annealed over 50k steps on every
# map); the plug-in's `cds` is CDS on a QMIX mixer with Adam (docs/FIDELITY.md).
PUBLISHED_AS = {"cds": "CDS on QPLEX"}


@dataclass
class Curve:
    """One published (map, algorithm) test win-rate curve on StarCraft II."""

    steps: list[float]  # window centres, ascending
    mean: list[float]
    low: list[float] | None  # the export's min/max band over its seeds; None where it has per-seed curves
    high: list[float] | None
    seeds: int | None  # per-seed export: how many seeds `mean` averages; None: the export's group mean

    def at(self, step: float) -> float | None:
        """The win rate at `step`, linear between window centres; None past the published range."""
        import numpy as np

        if not self.steps or step < self.steps[0] or step > self.steps[-1]:
            return None
        return float(np.interp(step, self.steps, self.mean))

    @property
    def has_band(self) -> bool:
        """A band of nonzero width somewhere (some exports' min = max = mean throughout)."""
        return self.low is not None and any(h - l > 1e-9 for l, h in zip(self.low, self.high))

    def label(self, algorithm: str) -> str:
        name = PUBLISHED_AS.get(algorithm.lower(), algorithm)
        if self.low is None:
            what = f"mean of {self.seeds} seeds"
        elif self.has_band:
            what = "group curve; band: the export's min-max, not a spread over seeds"
        else:
            what = "group curve"
        return f"{name}, StarCraft II (published, {what})"


# --- the package data, from the shared long table -----------------------------------------------------

def build_curves(shared: Path, out: Path) -> int:
    """published_curves.csv from the shared long table (source,map,algorithm,series,metric,step,value):
    the `wm` win-rate curves of ALGORITHMS. Returns the rows written."""
    series: dict[tuple[str, str], dict[str, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(shared, newline="") as f:
        for r in csv.DictReader(f):
            if r["source"] == "wm" and r["metric"] == "win_rate" and r["algorithm"] in ALGORITHMS:
                series[r["map"], r["algorithm"]][r["series"]][float(r["step"])] = float(r["value"])
    rows = []
    for (map_name, algorithm), by_series in sorted(series.items()):
        if "group_mean" in by_series:
            low, high = by_series.get("group_min", {}), by_series.get("group_max", {})
            rows += [[map_name, algorithm, int(s), f"{v:.4f}", _opt(low.get(s)), _opt(high.get(s)), ""]
                     for s, v in sorted(by_series["group_mean"].items())]
            continue
        seeds = [v for k, v in sorted(by_series.items()) if k.startswith("seed")]
        shared_steps = sorted(set.intersection(*(set(s) for s in seeds)))  # the steps every seed covers
        rows += [[map_name, algorithm, int(s), f"{sum(v[s] for v in seeds) / len(seeds):.4f}", "", "", len(seeds)]
                 for s in shared_steps]
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return len(rows)


def _opt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def load_curves(path: Path | None = None) -> dict[tuple[str, str], Curve]:
    """(map, algorithm), both lower-case -> the published curve (the package data unless `path`)."""
    from r3dm_epymarl.paths import published_curves

    points: dict[tuple[str, str], list[dict]] = defaultdict(list)
    with open(path or published_curves(), newline="") as f:
        for r in csv.DictReader(f):
            points[r["map"].lower(), r["algorithm"].lower()].append(r)
    curves = {}
    for key, rows in points.items():
        rows.sort(key=lambda r: float(r["step"]))
        band = all(r["min"] and r["max"] for r in rows)
        curves[key] = Curve(steps=[float(r["step"]) for r in rows], mean=[float(r["mean"]) for r in rows],
                            low=[float(r["min"]) for r in rows] if band else None,
                            high=[float(r["max"]) for r in rows] if band else None,
                            seeds=None if band else int(rows[0]["seeds"] or 0))
    return curves


def load_finals(path: str | None) -> dict[tuple[str, str], float]:
    """(map, algorithm), both lower-case -> published final test win rate: the built-in table for
    "builtin", else the CSV at `path`. A missing or malformed CSV is one UserError naming --paper."""
    from r3dm_epymarl.errors import UserError
    from r3dm_epymarl.paths import paper_results

    if not path:
        return {}
    csv_path = paper_results() if path == "builtin" else Path(path)
    fix = f"give a CSV with columns {', '.join(FINAL_COLUMNS)}, or --paper alone for the built-in table"
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in FINAL_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"--paper {path}: no column {', '.join(missing)}: {fix}")
            finals = {}
            for line, r in enumerate(reader, start=2):
                try:
                    finals[r["map"].lower(), r["algorithm"].lower()] = float(r["final_test_win_rate"])
                except (AttributeError, TypeError, ValueError):
                    raise UserError(f"--paper {path}: line {line}: final_test_win_rate "
                                    f"{r['final_test_win_rate']!r} is not a number: {fix}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"--paper {path}: cannot read it ({getattr(exc, 'strerror', None) or exc}): {fix}") from None
    return finals


# --- the text and the plot ----------------------------------------------------------------------------

def steps_label(step: float) -> str:
    """300k, 1.5M."""
    return f"{step / 1e6:g}M" if step >= 1e6 else f"{step / 1e3:g}k" if step >= 1e3 else f"{step:g}"


def budget_lines(budgets: dict[str, float], algorithms: dict[str, list[str]],
                 curves: dict[tuple[str, str], Curve]) -> list[str]:
    """Per map with a published curve for one of its algorithms: each one's published value at the
    runs' budget (`budgets`: map -> steps; `algorithms`: map -> its algorithms, in table order)."""
    lines = []
    for map_name, budget in sorted(budgets.items()):
        parts = []
        for algorithm in algorithms[map_name]:
            curve = curves.get((map_name.lower(), algorithm.lower()))
            if curve is None:
                continue
            value = curve.at(budget)
            name = PUBLISHED_AS.get(algorithm.lower(), algorithm.upper())
            parts.append(f"{name} " + (f"{value:.3f}" if value is not None
                                                   else f"- (published up to {steps_label(curve.steps[-1])})"))
        if parts:
            lines.append(f"{map_name}: published at {steps_label(budget)}, StarCraft II: " + ", ".join(parts))
    if lines:
        lines.append(f"(SMAC/SMACv2 test win rates on StarCraft II, not SMAX; {HOW})")
    return lines


def draw(ax, curve: Curve, colour, algorithm: str, end: float) -> None:
    """The published curve up to step `end` (the runs' axis), dashed, over its min/max band if published."""
    keep = [i for i, s in enumerate(curve.steps) if s <= end]
    steps = [curve.steps[i] for i in keep]
    mean = [curve.mean[i] for i in keep]
    if curve.at(end) is not None and (not steps or steps[-1] < end):
        steps.append(end)
        mean.append(curve.at(end))
    if not steps:
        return
    ax.plot(steps, mean, color=colour, linestyle="--", linewidth=1.2, label=curve.label(algorithm))
    if curve.has_band:
        import numpy as np

        low, high = np.interp(steps, curve.steps, curve.low), np.interp(steps, curve.steps, curve.high)
        ax.fill_between(steps, low, high, color=colour, alpha=0.12, linewidth=0)


def main(argv: list[str] | None = None) -> int:
    from r3dm_epymarl.paths import published_curves

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m r3dm_epymarl.experiments.report.paper SHARED/published/curves.csv", file=sys.stderr)
        return 2
    count = build_curves(Path(args[0]), published_curves())
    print(f"wrote {published_curves()} ({count} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

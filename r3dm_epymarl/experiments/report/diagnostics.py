"""What the role-based learners logged beside their win rates, per map and algorithm, for `report`:

- intrinsic reward per term (`r_int_<term>_mean`: R3DM's r_int_policy, r_int_world_model and its parts
  r_int_obs / r_int_lat; CDS's r_int_cds and its parts);
- role cluster sizes (`role_cluster_size_<k>`: the mean number of agents in the k-th largest k-means
  cluster, ACORM and R3DM);
- both world models' losses (R3DM: `loss_wm_<part>` of the role-agnostic model, `loss_wm_role_<part>`
  of the role-conditioned one), and their ratio role / agnostic per part: below 1 where the role
  model predicts better, which it should only where roles carry information about the future.

Each quantity per seed: early (mean over the first 20% of the run's steps), late (the last 20%) and over
training (the curve's average height), then mean [min, max] over seeds. Written to diagnostics.csv,
printed as one block, and drawn per map to diagnostics_<map>.png.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

WINDOW = 0.2  # early = first 20% of the steps a run covers, late = last 20%
INTRINSIC = re.compile(r"^r_int_(?P<term>.+)_mean$")
CLUSTER = re.compile(r"^role_cluster_size_(?P<k>\d+)$")
WORLD_MODEL = re.compile(r"^loss_wm_(?P<role>role_)?(?P<part>[a-z]+)$")
HEADER = ["map", "algorithm", "quantity", "seeds", "early", "late", "over_training",
          "late_min_over_seeds", "late_max_over_seeds"]


def is_diagnostic(name: str) -> bool:
    return bool(INTRINSIC.match(name) or CLUSTER.match(name) or WORLD_MODEL.match(name))


def summarise(steps: list[float], values: list[float]) -> tuple[float, float, float]:
    """(early, late, over training) of one logged curve. A window that holds no logged point takes the
    point nearest to it (the first, or the last)."""
    from r3dm_epymarl.experiments.report.metrics import area_under_curve

    start, end = steps[0], steps[-1]
    span = end - start
    early = [v for s, v in zip(steps, values) if s <= start + WINDOW * span] or values[:1]
    late = [v for s, v in zip(steps, values) if s >= end - WINDOW * span] or values[-1:]
    return sum(early) / len(early), sum(late) / len(late), area_under_curve(steps, values)


@dataclass
class Diagnostic:
    map: str
    algorithm: str
    quantity: str
    per_seed: list[tuple[float, float, float]]  # (early, late, over training), one per seed

    def mean(self, i: int) -> float:
        return sum(p[i] for p in self.per_seed) / len(self.per_seed)

    def row(self) -> list:
        late = [p[1] for p in self.per_seed if not math.isnan(p[1])] or [math.nan]
        return [self.map, self.algorithm, self.quantity, len(self.per_seed), self.mean(0), self.mean(1),
                self.mean(2), min(late), max(late)]


def _ratios(runs_series: list[dict]) -> dict[str, list[tuple[float, float, float]]]:
    """role / agnostic world-model loss per part, per seed, on each of early, late, over training."""
    ratios: dict[str, list] = {}
    for series in runs_series:
        for name in sorted(series):
            match = WORLD_MODEL.match(name)
            agnostic = f"loss_wm_{match['part']}" if match and match["role"] else None
            if agnostic in series and series[agnostic][0] and series[name][0]:
                role, base = summarise(*series[name]), summarise(*series[agnostic])
                ratios.setdefault(f"loss_wm_{match['part']} role/agnostic", []).append(
                    tuple(r / b if b else float("nan") for r, b in zip(role, base)))
    return ratios


def diagnostics(runs) -> list[Diagnostic]:
    """One Diagnostic per (map, algorithm, logged quantity), over the seeds that logged it."""
    groups: dict[tuple[str, str], list] = {}
    for run in runs:
        groups.setdefault((run.map, run.algorithm), []).append(run)
    found = []
    for (map_name, algorithm), group in sorted(groups.items()):
        names = sorted({n for r in group for n, (steps, _) in r.series.items() if steps and is_diagnostic(n)})
        for name in names:
            per_seed = [summarise(*r.series[name]) for r in group if r.series.get(name, ([],))[0]]
            found.append(Diagnostic(map_name, algorithm, name, per_seed))
        for name, per_seed in _ratios([r.series for r in group]).items():
            found.append(Diagnostic(map_name, algorithm, name, per_seed))
    return found


def text_block(found: list[Diagnostic]) -> str:
    if not found:
        return ""
    lines = [f"== diagnostics: early = first {WINDOW:.0%} of steps, late = last {WINDOW:.0%}, over training = "
             "the curve's average; mean over seeds, [min, max] of late over seeds"]
    for map_name in sorted({d.map for d in found}):
        lines.append(f"-- {map_name}")
        lines.append(f"{'algorithm':<10} {'quantity':<34} {'seeds':>5} {'early':>9} {'late':>9} "
                     f"{'training':>9}  late [min, max]")
        for d in (d for d in found if d.map == map_name):
            _, algorithm, quantity, seeds, early, late, overall, low, high = d.row()
            lines.append(f"{algorithm:<10} {quantity:<34} {seeds:>5} {early:>9.4g} {late:>9.4g} {overall:>9.4g}"
                         f"  [{low:.4g}, {high:.4g}]")
    return "\n".join(lines)


def write_csv(found: list[Diagnostic], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(d.row() for d in found)


PANELS = (("intrinsic reward per term (mean)", INTRINSIC), ("world-model losses (solid: agnostic, dashed: "
          "role)", WORLD_MODEL), ("role cluster sizes (agents, k-th largest)", CLUSTER))


def plot(runs, out: Path) -> list[Path]:
    """diagnostics_<map>.png per map with any diagnostic: one panel per kind, seed-mean curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from r3dm_epymarl.experiments.report.metrics import mean_curve, safe_name
    from r3dm_epymarl.experiments.report.plots import save

    files = []
    for map_name in sorted({r.map for r in runs}):
        on_map = [r for r in runs if r.map == map_name]
        panels = []
        for title, pattern in PANELS:
            curves = sorted({(r.algorithm, n) for r in on_map for n in r.series if pattern.match(n) and r.series[n][0]})
            if pattern is INTRINSIC:  # one panel per algorithm: CDS's terms are ~100x R3DM's
                panels += [(f"{a}: {title}", pattern, [c for c in curves if c[0] == a])
                           for a in sorted({a for a, _ in curves})]
            elif curves:
                panels.append((title, pattern, curves))
        if not panels:
            continue
        cols = min(3, len(panels))
        fig, axes = plt.subplots(-(-len(panels) // cols), cols, figsize=(5.5 * cols, 4 * -(-len(panels) // cols)),
                                 squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        for ax, (title, pattern, curves) in zip(axes.flat, panels):
            lowest = float("inf")
            for algorithm, name in curves:
                seeds = [r.series[name] for r in on_map if r.algorithm == algorithm and r.series.get(name, ([],))[0]]
                grid, mean, _ = mean_curve(seeds)
                match = pattern.match(name)
                dashed = pattern is WORLD_MODEL and match["role"]
                label = f"{algorithm} {name.removeprefix('loss_wm_').removeprefix('r_int_').removesuffix('_mean')}"
                ax.plot(grid, mean, "--" if dashed else "-", label=label)
                lowest = min(lowest, float(mean.min()))
            if pattern is WORLD_MODEL and lowest > 0:  # losses span decades; a KL term at 0 keeps it linear
                ax.set_yscale("log")
            ax.set_title(f"{map_name}: {title}", fontsize=9)
            ax.set_xlabel("env steps")
            ax.legend(fontsize=7)
        files.append(out / f"diagnostics_{safe_name(map_name)}.png")
        save(fig, files[-1])
    return files


def diagnostics_report(runs, out: Path) -> tuple[str, list[Path]]:
    """The printed block and the files (diagnostics.csv, PNGs); nothing where no run logged any."""
    found = diagnostics(runs)
    if not found:
        return "", []
    write_csv(found, out / "diagnostics.csv")
    return text_block(found), [out / "diagnostics.csv", *plot(runs, out)]

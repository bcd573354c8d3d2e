"""Tables, a CSV and learning curves from Sacred runs (file storage folders or a MongoDB database).

One table per map, one row per algorithm (the run's `name`), over the seeds found:
- final: the test metric averaged over the last 5% of training steps (the papers' protocol), per seed,
  then mean and 95% confidence interval (Student t) across seeds;
- AUC: the area under the test curve divided by its length in steps (the metric's average over
  training, in the metric's units), mean and 95% CI across seeds;
- steps to threshold: the first step a seed's test metric reaches the threshold, averaged over the
  seeds that reach it, with how many did.
With `--paper`, the published StarCraft II numbers (SMAC/SMACv2, not SMAX) are shown beside them and
drawn as dashed lines on the curves. Then rliable's IQM, CIs, P(X > Y), profiles and curves per map
and over all maps (rliable.py), `--export marl-eval` (marl_eval.py), and what the
role-based learners logged beside the win rate: intrinsic reward per term, role cluster sizes, both
world models' losses (diagnostics.py). cells.csv and a "per seed" block hold each cell's final,
AUC and wall time, resumed runs summed (cells.py).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from r3dm_epymarl.experiments.report.metrics import (
    RETURN, WIN_RATE, area_under_curve, final_value, is_rate, mean_ci, mean_curve, pick_metric, safe_name, steps_to,
)
from r3dm_epymarl.experiments.report.rows import one_run_per_seed, protocol_differences, split_settings
from r3dm_epymarl.experiments.report.runs import Run, drop_continued, load_file_runs, load_mongo_runs

HELP = "tables per map (with rliable's IQM, CIs, P(X > Y)), a CSV and PNGs from Sacred runs (folders or MongoDB)"


def add_arguments(parser) -> None:
    parser.add_argument("sources", nargs="*", metavar="DIR",
                        help="folders searched for Sacred runs (run.json + config.json + metrics.json), "
                             "e.g. a compare --out folder or results/sacred")
    parser.add_argument("--mongo", metavar="URL", help="also read the runs in this MongoDB (mongodb://HOST:PORT/DB)")
    parser.add_argument("--metric", default="auto",
                        help=f"the test metric (default: {WIN_RATE} where runs log it, else {RETURN})")
    parser.add_argument("--threshold", type=float,
                        help="for steps-to-threshold (default: 0.5 for a win rate, none otherwise)")
    parser.add_argument("--status", default="COMPLETED",
                        help="comma-separated run statuses to include, or 'any' (default: COMPLETED)")
    parser.add_argument("--out", metavar="DIR", default="report",
                        help="where report.csv, improvement.csv and the PNGs go (default: ./report)")
    parser.add_argument("--paper", nargs="?", const="builtin", metavar="CSV",
                        help="overlay the published StarCraft II results (the built-in table, or a CSV "
                             "with map,algorithm,final_test_win_rate columns)")
    parser.add_argument("--reps", type=int, metavar="N",
                        help="bootstrap resamples of every rliable CI (default: rliable's, 50000 for IQM/mean/"
                             "median/optimality gap, 2000 for P(X > Y), profiles and curves)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default: 0)")
    parser.add_argument("--per-seed", action="store_true", help="add each run's curve, thin, to efficiency.png")
    parser.add_argument("--export", nargs=2, metavar=("FORMAT", "FILE"),
                        help="also write the runs for another tool: marl-eval FILE.json (id-marl-eval's layout)")
    parser.add_argument("--baseline", metavar="NAME",
                        help="compare every algorithm with this one (default: R3DM, or the first algorithm, "
                             "with every other): the difference with its CI, a test and the seeds a study needs")
    parser.add_argument("--effect", type=float, metavar="DELTA",
                        help="also say how many seeds detect a difference of DELTA in the primary score "
                             "(default: 0.1 for a win rate)")
    parser.add_argument("--json", metavar="FILE", help="write the differences and verdicts as JSON for scripts")


@dataclass
class Row:
    map: str
    algorithm: str
    metric: str
    seeds: list[int]
    final: tuple[float, float]
    auc: tuple[float, float]
    threshold: float | None
    steps_to_threshold: float | None  # mean over the seeds that reached it
    reached: int
    paper: float | None = None
    partial: list[str] = field(default_factory=list)  # the seeds whose run did not complete (--status any)


def aggregate(runs: list[Run], metric: str = "auto", threshold: float | None = None) -> list[Row]:
    """One row per (map, algorithm); the metric is chosen per map when `auto`."""
    rows = []
    for map_name in sorted({r.map for r in runs}):
        on_map = [r for r in runs if r.map == map_name]
        name = pick_metric(on_map, metric)
        limit = threshold if threshold is not None else (0.5 if name == WIN_RATE else None)
        for algorithm in sorted({r.algorithm for r in on_map}):
            seeds = [r for r in on_map if r.algorithm == algorithm and r.series.get(name, ([], []))[0]]
            if not seeds:
                continue
            curves = [r.series[name] for r in seeds]
            hits = [steps_to(s, v, limit) for s, v in curves] if limit is not None else []
            hits = [h for h in hits if h is not None]
            rows.append(Row(
                map=map_name, algorithm=algorithm, metric=name, seeds=sorted(r.seed for r in seeds),
                final=mean_ci([final_value(s, v, r.t_max) for r, (s, v) in zip(seeds, curves)]),
                auc=mean_ci([area_under_curve(s, v) for s, v in curves]),
                threshold=limit, steps_to_threshold=sum(hits) / len(hits) if hits else None,
                reached=len(hits), partial=[_partial(r, s) for r, (s, _) in zip(seeds, curves)
                                            if r.status != "COMPLETED"]))
    return rows


# --- published numbers ---------------------------------------------------------------------------------

def load_paper(path: str | None) -> dict[tuple[str, str], float]:
    """(map, algorithm), both lower-case -> published final test win rate on StarCraft II (paper.py)."""
    from r3dm_epymarl.experiments.report.paper import load_finals

    return load_finals(path)


# --- output --------------------------------------------------------------------------------------------

def _fmt(pair: tuple[float, float]) -> str:
    mean, ci = pair
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" + ("" if math.isnan(ci) else f" ± {ci:.3f}")


def _steps(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def _partial(run: Run, steps: list[float]) -> str:
    return f"seed {run.seed} {run.status} at {_steps(steps[-1])}" + (f" of {_steps(run.t_max)}" if run.t_max else "")


def table(rows: list[Row], show_paper: bool) -> str:
    lines = []
    for map_name in sorted({r.map for r in rows}):
        on_map = [r for r in rows if r.map == map_name]
        head = on_map[0]
        lines.append(f"\n== {map_name}: {head.metric}, final = mean of the last 5% of steps, "
                     f"± = 95% CI over seeds")
        header = ["algorithm", "seeds", "final", "AUC"]
        if head.threshold is not None:
            header.append(f"steps to {head.threshold:g}")
        if show_paper:
            header.append("paper (StarCraft II)")
        cells = [header]
        for r in on_map:
            row = [r.algorithm, str(len(r.seeds)), _fmt(r.final) + (" *" if r.partial else ""), _fmt(r.auc)]
            if head.threshold is not None:
                row.append(f"{_steps(r.steps_to_threshold)} ({r.reached}/{len(r.seeds)})")
            if show_paper:
                row.append("-" if r.paper is None else f"{r.paper:.3f}")
            cells.append(row)
        widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines += [f"* {r.algorithm}: partial, {'; '.join(r.partial)} (its final is from the steps logged so far)"
                  for r in on_map if r.partial]
    return "\n".join(lines).lstrip("\n")


CSV_COLUMNS = ["map", "algorithm", "metric", "seeds", "final_mean", "final_ci95", "auc_mean", "auc_ci95",
               "threshold", "steps_to_threshold", "seeds_reaching", "paper_sc2_final"]


def write_csv(rows: list[Row], path: Path, stats: list | None = None) -> None:
    """report.csv: a row per (map, algorithm), plus rliable's columns and "all maps" rows given `stats`."""
    from r3dm_epymarl.experiments.report import rliable as rl

    by_map = {s.group.name: s for s in stats or []}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS + (rl.csv_columns() if stats else []))
        for r in rows:
            new = rl.csv_cells(by_map[r.map], r.algorithm) if r.map in by_map else []
            writer.writerow([r.map, r.algorithm, r.metric, " ".join(map(str, r.seeds)), *r.final, *r.auc,
                             "" if r.threshold is None else r.threshold,
                             "" if r.steps_to_threshold is None else r.steps_to_threshold, r.reached,
                             "" if r.paper is None else r.paper, *new])
        writer.writerows(rl.all_maps_csv_rows(stats or [], len(CSV_COLUMNS)))


def plot_curves(runs: list[Run], rows: list[Row], out: Path, published: dict | None = None) -> list[Path]:
    """curves_<map>.png: each algorithm's mean and CI band; with `published` ((map, algorithm) ->
    report_paper.Curve), the published StarCraft II curve dashed on the runs' step axis, else the
    published final (Row.paper) as a dashed level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from r3dm_epymarl.experiments.report.paper import draw as draw_published
    from r3dm_epymarl.experiments.report.plots import save

    written = []
    for map_name in sorted({r.map for r in rows}):
        on_map = [r for r in rows if r.map == map_name]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        shown = False
        for i, row in enumerate(on_map):
            colour = f"C{i % 10}"
            curves = [r.series[row.metric] for r in runs
                      if r.map == map_name and r.algorithm == row.algorithm and r.seed in row.seeds
                      and r.series.get(row.metric, ([], []))[0]]
            grid, mean, half = mean_curve(curves)
            low, high = mean - half, mean + half
            if is_rate(row.metric):  # a rate's band past [0, 1] (few seeds, wide t) says nothing
                low, high = low.clip(0, 1), high.clip(0, 1)
            ax.plot(grid, mean, color=colour, label=f"{row.algorithm} (n={len(curves)})")
            ax.fill_between(grid, low, high, color=colour, alpha=0.2, linewidth=0)
            curve = (published or {}).get((map_name.lower(), row.algorithm.lower()))
            if curve is not None:
                draw_published(ax, curve, colour, row.algorithm, end=float(grid[-1]))
                shown = True
            elif row.paper is not None:
                ax.axhline(row.paper, color=colour, linestyle="--", linewidth=1,
                           label=f"{row.algorithm}, StarCraft II (paper)")
        ax.set_title(f"{map_name}: mean and 95% CI over seeds"
                     + ("\ndashed: published curves on StarCraft II (SMAC/SMACv2), not SMAX" if shown else ""))
        ax.set_xlabel("environment steps")
        ax.set_ylabel(on_map[0].metric)
        if is_rate(on_map[0].metric):
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written.append(out / f"curves_{safe_name(map_name)}.png")
        save(fig, written[-1])
    return written


def check_options(reps: int | None, export: tuple[str, str] | None) -> None:
    """One clear UserError for a bad --reps or --export, before any work."""
    from r3dm_epymarl.errors import UserError
    from r3dm_epymarl.experiments.report.marl_eval import FORMATS

    if reps is not None and reps < 1:
        raise UserError(f"--reps {reps}: the number of bootstrap resamples must be a positive integer")
    if export and export[0] not in FORMATS:
        raise UserError(f"--export {export[0]}: unknown format, use one of: {', '.join(FORMATS)}")


def rliable_report(runs: list[Run], metric: str, out, reps: int | None = None, seed: int = 0,
                   per_seed: bool = False, export: tuple[str, str] | None = None,
                   differences: list | None = None) -> tuple[str, list, list]:
    """rliable's estimates, with profiles.png, efficiency.png and improvement.csv written to `out`
    (and the `export` (format, file)); return the printed block, the Stats and the files written."""
    from r3dm_epymarl.experiments.report import marl_eval
    from r3dm_epymarl.experiments.report import plots
    from r3dm_epymarl.experiments.report import rliable as rl

    block, stats = rl.estimate_all(runs, metric, reps, seed)
    if not stats:  # no map could be scored (the block says why): nothing to draw or export
        return block, stats, []
    out = Path(out)
    files = [out / "profiles.png", out / "improvement.csv"]
    plots.plot_profiles(stats, files[0])
    rl.write_improvement_csv(stats, files[1], differences)
    if plots.plot_efficiency(stats, out / "efficiency.png", per_seed):
        files.append(out / "efficiency.png")
    if export:
        path, export_notes = marl_eval.export(*export, [s.group for s in stats if s.group.name != rl.ALL_MAPS])
        files.append(path)
        block += "".join(f"\n{note}" for note in export_notes)
    return block, stats, files


def build_report(sources: list[str], mongo: str | None = None, metric: str = "auto",
                 threshold: float | None = None, status: str = "COMPLETED", out: str = "report",
                 paper: str | None = None, reps: int | None = None, seed: int = 0, per_seed: bool = False,
                 export: tuple[str, str] | None = None, baseline: str | None = None, effect: float | None = None,
                 json_path: str | None = None) -> tuple[str, list[Path]]:
    """Load, aggregate, estimate (rliable), write the CSVs, PNGs and any export; return the printed
    text and the files written. Bad options, paths and --paper CSVs fail first, in one line."""
    from r3dm_epymarl.errors import UserError
    from r3dm_epymarl.experiments.report import paper as report_paper
    from r3dm_epymarl.experiments.report import rliable as rl
    from r3dm_epymarl.experiments.report.cells import cell_rows, cells_block, write_cells_csv
    from r3dm_epymarl.experiments.report.diagnostics import diagnostics_report
    from r3dm_epymarl.paths import check_writable

    check_options(reps, export)
    check_writable(out, "--out")
    if json_path:
        check_writable(json_path, "--json", is_file=True)
    if export:
        check_writable(export[1], f"--export {export[0]}", is_file=True)
    for src in sources:
        if not Path(src).exists():
            raise UserError(f"report: {src} does not exist: give the folders compare wrote (or results/sacred)")
    published = load_paper(paper)
    curves = report_paper.load_curves() if paper else {}

    runs = [run for src in sources for run in load_file_runs(Path(src))]
    if mongo:
        runs += load_mongo_runs(mongo)
    statuses = None if status == "any" else {s.strip().upper() for s in status.split(",")}
    diverged = [r for r in runs if r.diverged]  # NaN or inf: never a seed, whatever --status asks
    chosen = [r for r in runs if (statuses is None or r.status in statuses) and not r.diverged]
    kept = drop_continued(chosen)
    considered = len(kept)  # before a repeated seed is counted once
    kept, row_notes = split_settings(kept)
    kept, seed_notes = one_run_per_seed(kept)
    if not kept:
        where = ", ".join([*sources, *([mongo] if mongo else [])]) or "(nothing given)"
        raise UserError(f"no Sacred runs with status {status} in {where}: give the folders compare wrote "
                        "(or results/sacred), --mongo URL, or --status any")
    rows = aggregate(kept, metric, threshold)
    if not rows:
        what = f"a test metric ({WIN_RATE} or {RETURN})" if metric == "auto" else f"the metric '{metric}'"
        raise UserError(f"none of the {considered} runs logged {what} (a run stopped before its first test "
                        "logs none): pick one they logged with --metric")
    for row in rows:
        row.paper = published.get((row.map.lower(), row.algorithm.lower()))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from r3dm_epymarl.experiments.report import power

    metric_by_map = {r.map: r.metric for r in rows}
    differences = power.all_differences(kept, metric_by_map, baseline, effect, reps or 2000, seed)
    shown = power.primary(differences, metric_by_map, baseline)
    no_baseline = [m for m in metric_by_map if baseline and baseline not in {r.algorithm for r in rows if r.map == m}]
    finals = [d for d in differences if d.score == f"final {metric_by_map[d.map]}"]  # improvement.csv's
    block, stats, rliable_files = rliable_report(kept, metric, out_dir, reps, seed, per_seed, export, finals)
    write_csv(rows, out_dir / "report.csv", stats)
    if differences:  # two algorithms on a map, at least
        power.write_csv(differences, out_dir / "differences.csv")
        rliable_files.append(out_dir / "differences.csv")
    if json_path:
        power.write_json(shown, differences, json_path)
        rliable_files.append(Path(json_path))
    cells = cell_rows(kept, metric_by_map)
    write_cells_csv(cells, out_dir / "cells.csv")
    diagnostics, diagnostic_files = diagnostics_report(kept, out_dir)
    files = [out_dir / "report.csv", out_dir / "cells.csv", *plot_curves(kept, rows, out_dir, curves),
             *rliable_files, *diagnostic_files]
    # the runs a chosen run resumed are in its curve: not "left out", whatever their status
    skipped = (len(runs) - len(chosen) - len(diverged)
               - len(continued_by(chosen, runs) - {r.source for r in chosen} - {r.source for r in diverged}))
    text = power.block(shown, baseline, no_baseline) + "\n\n" + table(rows, show_paper=bool(paper))
    if skipped:
        text += f"\n({skipped} run(s) with another status left out; --status any includes them)"
    if diverged:
        text += (f"\n({len(diverged)} run(s) that diverged (NaN or inf) left out: "
                 + ", ".join(f"{r.algorithm} {r.map} seed {r.seed}" for r in diverged) + ")")
    text += "".join("\n" + note for note in row_notes + seed_notes + protocol_differences(kept))
    if paper:
        lines = report_paper.budget_lines(*_budgets(kept, rows), curves)
        text += "".join("\n" + line for line in ["", *lines] if lines)
    text += "\n\n" + cells_block(cells)
    return text + "\n" + block + ("\n\n" + diagnostics if diagnostics else ""), files


def continued_by(chosen: list[Run], runs: list[Run]) -> set[str]:
    """The sources of the runs whose curves a chosen run holds: those it resumed, and theirs."""
    by_source = {r.source: r for r in runs}
    held: set[str] = set()
    for run in chosen:
        link = run.continues
        while link in by_source and link not in held:
            held.add(link)
            link = by_source[link].continues
    return held


def _budgets(runs: list[Run], rows: list[Row]) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Per map: the runs' budget (the largest t_max, else the last step logged) and its algorithms,
    R3DM first."""
    budgets, algorithms = {}, {}
    for map_name in sorted({r.map for r in rows}):
        on_map = [r for r in rows if r.map == map_name]
        metric = on_map[0].metric
        budgets[map_name] = max(r.t_max or r.series[metric][0][-1] for r in runs
                                if r.map == map_name and r.series.get(metric, ([], []))[0])
        algorithms[map_name] = sorted((r.algorithm for r in on_map), key=lambda a: (a.lower() != "r3dm", a))
    return budgets, algorithms


def main(args) -> int:
    text, files = build_report(args.sources, args.mongo, args.metric, args.threshold, args.status, args.out,
                               args.paper, args.reps, args.seed, args.per_seed, args.export, args.baseline,
                               args.effect, args.json)
    print(text)
    print("\nwrote " + ", ".join(str(f) for f in files))
    return 0

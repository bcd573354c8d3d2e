"""The field's statistics for `report`, all computed by rliable (Agarwal et al., 2021).

Per map and over all maps (rliable's score matrix: runs x tasks), on each run's final score (the
report's "final": the test metric averaged over the last 5% of training), scaled to [0, 1] (win rates
as they are, returns min-max normalised per map over all its runs):
- IQM, mean, median and optimality gap with stratified-bootstrap 95% CIs (`get_interval_estimates`);
- probability of improvement of each algorithm over each other (`metrics.probability_of_improvement`);
- performance profiles, the fraction of runs above each score (`create_performance_profile`);
- sample-efficiency curves, the IQM over runs at each evaluation step with bootstrap bands.
rliable draws its resamples from NumPy's global generator: every call here seeds it with `seed`
and puts the caller's state back, so the same runs give the same intervals.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field

import numpy as np

from r3dm_epymarl.experiments.report.metrics import final_value, is_rate, pick_metric
from r3dm_epymarl.experiments.report.runs import Run

ALL_MAPS = "all maps"
R3DM = "r3dm"  # listed first wherever it is present
AGGREGATES = ("IQM", "mean", "median", "optimality gap")  # the order of `_aggregates`' vector
CSV_KEYS = ("iqm", "mean", "median", "optimality_gap")
TAUS = np.linspace(0.0, 1.0, 101)  # performance-profile thresholds on the [0, 1] score scale
CURVE_POINTS = 20  # IQM bands at up to this many evaluation steps (each costs one IQM per resample)


# --- scores ---------------------------------------------------------------------------------------------

@dataclass
class Group:
    """The runs of one map (or of all maps) as rliable's matrices; raw values in the metric's units."""

    name: str  # the map, or ALL_MAPS
    metric: str
    seeds: dict[str, list[int]]  # algorithm -> the seed of each row
    finals: dict[str, np.ndarray]  # algorithm -> [runs, tasks] final scores
    steps: np.ndarray  # [G] environment steps every curve is compared on
    curves: dict[str, np.ndarray]  # algorithm -> [runs, tasks, G] test metric at `steps`
    scale: tuple[float, float] | None = None  # (min, max) mapped to (0, 1); None: already in [0, 1]
    tasks: list[str] = field(default_factory=list)  # the maps (columns)
    runs: dict[str, list[Run]] = field(default_factory=dict)  # algorithm -> its runs, one per row (a map)
    horizon: float | None = None  # finals over the last 5% of this many steps; None: each run's t_max

    def normalised(self, values: np.ndarray) -> np.ndarray:
        """`values` on the [0, 1] scale rliable's thresholds and optimality gap assume."""
        if self.scale is None:
            return values
        low, high = self.scale
        return (values - low) / ((high - low) or 1.0)

    def scores(self) -> dict[str, np.ndarray]:
        return {a: self.normalised(v) for a, v in self.finals.items()}  # [runs, tasks] each

    def curve_scores(self) -> dict[str, np.ndarray]:
        return {a: self.normalised(v) for a, v in self.curves.items()}  # [runs, tasks, G] each


def ordered(algorithms) -> list[str]:
    """R3DM first, then the baselines alphabetically."""
    return sorted(set(algorithms), key=lambda a: (a.lower() != R3DM, a))


def common_steps(step_lists: list) -> np.ndarray:
    """The evaluation steps every list covers: the sparsest list's steps inside the shared range ([G])."""
    start, end = max(s[0] for s in step_lists), min(s[-1] for s in step_lists)
    inside = [[x for x in s if start <= x <= end] for s in step_lists]
    return np.asarray(min(inside, key=len), dtype=float)


def finals_and_curves(runs: list[Run], name: str, grid: np.ndarray, horizon: float | None):
    """Metric `name` of each run: [n] finals (the mean over the last 5% of its t_max, or of the first
    `horizon` steps when given) and [n, G] values at the `grid` steps (exact where a run logged them)."""
    finals, curves = [], []
    for r in runs:
        steps, values = r.series[name]
        finals.append(final_value(steps, values, r.t_max) if horizon is None
                      else final_value(*_upto(steps, values, horizon), horizon))
        curves.append(np.interp(grid, steps, values))
    return np.array(finals), np.stack(curves)


NOT_SCORED = "no rliable statistics for this map"


def _map_group(map_name: str, runs: list[Run], metric: str) -> tuple[Group | None, list[str]]:
    """One map's runs as a Group (seeds sorted), and what is unequal across its algorithms."""
    name = pick_metric(runs, metric)
    runs = sorted((r for r in runs if r.series.get(name, ([], []))[0]), key=lambda r: (r.algorithm, r.seed))
    if not runs:
        return None, []
    algorithms = ordered(r.algorithm for r in runs)
    by_algorithm = {a: [r for r in runs if r.algorithm == a] for a in algorithms}
    grid = common_steps([r.series[name][0] for r in runs])
    # unequal training lengths: every final over the last 5% of the length all runs reach
    horizon = float(grid[-1]) if len(grid) and len({r.t_max or r.series[name][0][-1] for r in runs}) > 1 else None
    notes = _seed_notes(map_name, runs, algorithms)
    if not len(grid):
        notes.append(f"{map_name}: no evaluation step inside every run's range, no curves")
    elif horizon is not None or any(len(r.series[name][0]) != len(grid) for r in runs):
        ends = ", ".join(f"{a} {min(r.series[name][0][-1] for r in rs):g}" for a, rs in by_algorithm.items())
        what = "finals and curves" if horizon is not None else "curves"
        notes.append(f"{map_name}: {what} on the {len(grid)} steps all runs share, up to {grid[-1]:g} "
                     f"(runs end at {ends})")
    values = np.concatenate([np.asarray(r.series[name][1], dtype=float) for r in runs])
    if not is_rate(name) and len(runs) == 1:
        # min-max over the map's own runs: a single run would be scored against itself
        return None, [f"{map_name}: a single run: its {name} cannot be min-max normalised, {NOT_SCORED} "
                      "(run more seeds or algorithms on it)"]
    group = Group(name=map_name, metric=name, tasks=[map_name], steps=grid, runs=by_algorithm, horizon=horizon,
                  seeds={a: [r.seed for r in rs] for a, rs in by_algorithm.items()}, finals={}, curves={},
                  scale=None if is_rate(name) else (float(values.min()), float(values.max())))
    for a, rs in by_algorithm.items():
        finals, curves = finals_and_curves(rs, name, grid, horizon)
        group.finals[a], group.curves[a] = finals[:, None], curves[:, None, :]  # [runs, 1], [runs, 1, G]
    return group, notes


def _upto(steps, values, end):
    """The part of a curve logged at or before `end`."""
    kept = [(s, v) for s, v in zip(steps, values) if s <= end]
    return [s for s, _ in kept], [v for _, v in kept]


def _seed_notes(map_name: str, runs: list[Run], algorithms: list[str]) -> list[str]:
    everyone = {r.seed for r in runs}
    notes = []
    for a in algorithms:
        missing = everyone - {r.seed for r in runs if r.algorithm == a}
        if missing:
            notes.append(f"{map_name}: {a} lacks seed{'s' if len(missing) > 1 else ''} "
                         + " ".join(map(str, sorted(missing))))
    return notes


def map_groups(runs: list[Run], metric: str = "auto") -> tuple[list[Group], list[str]]:
    """A Group per map (the metric chosen per map when `auto`), and the notes on what is unequal."""
    groups, notes = [], []
    for map_name in sorted({r.map for r in runs}):
        group, map_notes = _map_group(map_name, [r for r in runs if r.map == map_name], metric)
        notes += map_notes
        if group is not None:
            groups.append(group)
    return groups, notes


def all_maps_group(groups: list[Group]) -> tuple[Group | None, list[str]]:
    """The maps that hold every algorithm as one runs x tasks matrix per algorithm (normalised scores);
    None when fewer than two maps do. Each algorithm keeps as many runs per map as its sparsest map."""
    algorithms = ordered(a for g in groups for a in g.finals)
    common = [g for g in groups if set(g.finals) == set(algorithms)]
    lacking = [f"{g.name} lacks " + ", ".join(a for a in algorithms if a not in g.finals)
               for g in groups if g not in common]
    if len(groups) < 2:
        return None, []
    if len(common) < 2:
        return None, [f"{ALL_MAPS}: no aggregate, fewer than two maps hold every algorithm ("
                      + "; ".join(lacking) + ")"]
    notes = [f"{ALL_MAPS}: {text} (map left out)" for text in lacking]
    rows = {a: min(len(g.seeds[a]) for g in common) for a in algorithms}
    for a in algorithms:
        if any(len(g.seeds[a]) > rows[a] for g in common):
            notes.append(f"{ALL_MAPS}: {a} counted with its first {rows[a]} seeds on every map")
    grid = common_steps([g.steps for g in common]) if all(len(g.steps) for g in common) else np.zeros(0)

    def curve(g, a):  # [rows, G] on the shared grid, normalised
        return np.stack([np.interp(grid, g.steps, c) for c in g.curve_scores()[a][: rows[a], 0]])

    return Group(
        name=ALL_MAPS, metric=", ".join(sorted({g.metric for g in common})), tasks=[g.name for g in common],
        seeds={a: list(range(1, rows[a] + 1)) for a in algorithms},  # row numbers: seeds differ per map
        finals={a: np.concatenate([g.scores()[a][: rows[a]] for g in common], axis=1) for a in algorithms},
        curves={a: np.stack([curve(g, a) for g in common], axis=1) for a in algorithms} if len(grid) else {},
        steps=grid), notes


# --- rliable --------------------------------------------------------------------------------------------

@dataclass
class Reps:
    """Bootstrap resamples per estimate; by default rliable's own choices (see `default_reps`)."""

    intervals: int
    improvement: int
    profiles: int
    curves: int


def default_reps(reps: int | None = None) -> Reps:
    """`reps` for everything, or rliable's defaults: `get_interval_estimates`' (50000) for the aggregate
    metrics, `create_performance_profile`'s (2000) for profiles, and the 2000 rliable's README uses for
    probability of improvement; curves use 2000 too (one IQM per step and resample)."""
    from rliable import library as rly

    if reps is not None:
        return Reps(reps, reps, reps, reps)
    profile = inspect.signature(rly.create_performance_profile).parameters["reps"].default
    return Reps(inspect.signature(rly.get_interval_estimates).parameters["reps"].default, profile, profile, profile)


@contextlib.contextmanager
def seeded(seed: int):
    """NumPy's global generator (where rliable's StratifiedBootstrap draws) seeded, then restored."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _aggregates(scores: np.ndarray) -> np.ndarray:
    """[runs, tasks] -> [4]: IQM, mean, median, optimality gap (rliable's metrics)."""
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores),
                     metrics.aggregate_median(scores), metrics.aggregate_optimality_gap(scores)])


def _iqm_per_step(curves: np.ndarray) -> np.ndarray:
    """[runs, tasks, G] -> [G]: rliable's IQM at each evaluation step."""
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(curves[..., t]) for t in range(curves.shape[-1])])


@dataclass
class Stats:
    """rliable's estimates for one Group; every CI is an array [2, ...] (lower row, upper row)."""

    group: Group
    points: dict[str, np.ndarray]  # algorithm -> [4] in AGGREGATES order
    cis: dict[str, np.ndarray]  # algorithm -> [2, 4]
    improvement: dict[tuple[str, str], tuple[float, float, float]]  # (x, y) -> P(x > y), low, high
    profiles: dict[str, np.ndarray]  # algorithm -> [len(TAUS)] fraction of runs above each threshold
    profile_cis: dict[str, np.ndarray]  # algorithm -> [2, len(TAUS)]
    curves: dict[str, np.ndarray]  # algorithm -> [P] IQM over runs at each of `curve_steps`
    curve_cis: dict[str, np.ndarray]  # algorithm -> [2, P]
    curve_steps: np.ndarray  # [P] at most CURVE_POINTS of the group's steps, evenly spread, the last included


def estimate(group: Group, reps: Reps, seed: int = 0) -> Stats:
    """All of rliable's estimates for `group`, each bootstrap seeded with `seed`."""
    from rliable import library as rly
    from rliable import metrics

    scores = group.scores()
    with seeded(seed):
        points, cis = rly.get_interval_estimates(scores, _aggregates, reps=reps.intervals)
    pairs = {(x, y): [scores[x], scores[y]] for x in scores for y in scores if x != y}
    improvement = {}
    if pairs:
        with seeded(seed):
            p, p_cis = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps.improvement)
        improvement = {k: (float(p[k]), *map(float, np.ravel(p_cis[k]))) for k in pairs}  # CI [2, 1]
    with seeded(seed):
        profiles, profile_cis = rly.create_performance_profile(scores, TAUS, reps=reps.profiles)
    curves, curve_cis = {}, {}
    count = len(group.steps)
    points_at = np.unique(np.linspace(0, count - 1, min(count, CURVE_POINTS)).round().astype(int))  # [P]
    if count:
        thinned = {a: c[..., points_at] for a, c in group.curve_scores().items()}  # [runs, tasks, P]
        with seeded(seed):
            curves, curve_cis = rly.get_interval_estimates(thinned, _iqm_per_step, reps=reps.curves)
    return Stats(group, points, cis, improvement, profiles, profile_cis, curves, curve_cis, group.steps[points_at])


# --- output ---------------------------------------------------------------------------------------------

def _cell(point: float, low: float, high: float, digits: int = 3) -> str:
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _columns(cells: list[list[str]]) -> list[str]:
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]


def render(stats: list[Stats], reps: Reps, seed: int, notes: list[str]) -> str:
    """The printed block: a header, the normalisation and unequal-runs lines, then per group the
    aggregate metrics and the probability-of-improvement matrix."""
    lines = [f"\n== rliable: each run's final score, stratified-bootstrap 95% CIs [low, high] (reps "
             f"{reps.intervals} for IQM/mean/median/optimality gap, {reps.improvement} for P(X > Y), "
             f"{reps.profiles} profiles, {reps.curves} curves; seed {seed})"]
    scaled = [s.group for s in stats if s.group.scale is not None]
    if scaled:
        lines.append(f"normalised: {scaled[0].metric} min-max per map over all its runs' logged values before "
                     "aggregating (" + ", ".join(f"{g.name} {g.scale[0]:g}..{g.scale[1]:g} -> 0..1"
                                                 for g in scaled) + "); win rates as they are")
    unequal = [n for n in notes if NOT_SCORED not in n]
    lines += [n for n in notes if NOT_SCORED in n]  # a map left out is not an inequality: its own line
    if unequal:
        lines.append("unequal runs, compared on what is common: " + "; ".join(unequal))
    for s in stats:
        g = s.group
        shape = ", ".join(f"{a} {s.group.finals[a].shape[0]}x{len(g.tasks)}" for a in s.points)
        where = g.name if g.name != ALL_MAPS else f"{ALL_MAPS} ({', '.join(g.tasks)})"
        lines.append(f"\n-- {where}: {g.metric}; runs x tasks: {shape}")
        cells = [["algorithm", *AGGREGATES]]
        cells += [[a, *(_cell(s.points[a][i], *s.cis[a][:, i]) for i in range(len(AGGREGATES)))] for a in s.points]
        lines += _columns(cells)
        if s.improvement:
            names = list(s.points)
            lines.append("probability of improvement P(row > column) [95% CI]:")
            lines += _columns([["", *names]] + [[x, *("-" if x == y else _cell(*s.improvement[x, y], digits=2)
                                                       for y in names)] for x in names])
    return "\n".join(lines)


def csv_columns() -> list[str]:
    return [f"{k}{end}" for k in CSV_KEYS for end in ("", "_lo", "_hi")] + ["score_scale"]


def csv_cells(stats: Stats, algorithm: str) -> list:
    """The new report.csv cells of one (group, algorithm) row, in `csv_columns` order."""
    values = []
    for i in range(len(CSV_KEYS)):
        values += [float(stats.points[algorithm][i]), *map(float, stats.cis[algorithm][:, i])]
    scale = stats.group.scale
    return values + ["[0, 1]" if scale is None else f"min-max {scale[0]:g}..{scale[1]:g}"]


def all_maps_csv_rows(stats: list[Stats], blanks: int) -> list[list]:
    """report.csv rows for the "all maps" group: map, algorithm, metric, runs, blanks up to `blanks`
    columns, then rliable's cells."""
    return [[ALL_MAPS, a, s.group.metric, len(s.group.seeds[a])] + [""] * (blanks - 4) + csv_cells(s, a)
            for s in stats if s.group.name == ALL_MAPS for a in s.points]


def write_improvement_csv(stats: list[Stats], path, differences: list | None = None) -> None:
    """P(x > y) with its CI per pair; with `differences` (report/power.py, one per (map, x, y): the first
    given wins), also the difference of the per-seed finals, its CI, test and the seeds needed."""
    import csv

    from r3dm_epymarl.experiments.report.power import IMPROVEMENT_COLUMNS, improvement_cells

    by_pair = {}
    for d in differences or []:
        by_pair.setdefault((d.map, d.x, d.y), d)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["map", "x", "y", "p_x_better", "p_lo", "p_hi", *IMPROVEMENT_COLUMNS])
        for s in stats:
            for (x, y), (p, low, high) in s.improvement.items():
                writer.writerow([s.group.name, x, y, p, low, high,
                                 *improvement_cells(by_pair.get((s.group.name, x, y)))])


def estimate_all(runs: list[Run], metric: str, reps: int | None = None,
                 seed: int = 0) -> tuple[str, list[Stats]]:
    """Estimate per map and over all maps: the printed block and the Stats (maps, then all maps)."""
    chosen = default_reps(reps)
    groups, notes = map_groups(runs, metric)
    overall, more = all_maps_group(groups)
    stats = [estimate(g, chosen, seed) for g in groups + ([overall] if overall else [])]
    return render(stats, chosen, seed, notes + more), stats

"""Can the seeds answer "does X beat Y"? The difference of two algorithms' per-seed scores, its
uncertainty, and how many seeds a study would need.

Per map and pair of algorithms (x, y), for each per-seed score (final test metric, AUC, final test
return):
- the difference of the means x - y, with a stratified-bootstrap 95% CI (each algorithm's seeds
  resampled on their own);
- a two-sided test: Welch's t-test with at least 5 seeds on each side, else an exact permutation test
  of the difference of means (with 3 vs 3 seeds its smallest possible p is 0.1: it cannot reach 0.05);
- Hedges' g (Cohen's d on the pooled SD, small-sample corrected);
- seeds needed per algorithm for 80% power at alpha 0.05 (two-sided, normal approximation):
  n = 2 (z_0.975 + z_0.8)^2 sigma^2 / delta^2 + 1 = 15.7 sigma^2 / delta^2 + 1, sigma^2 the pooled
  per-seed variance, for delta = the observed difference and a given effect (`--effect`);
- bimodal runs: where the pooled per-seed scores have a gap wider than half their range (runs that
  take off and runs that stay near zero), the share of each algorithm's seeds above the gap and the
  seeds a two-proportion test needs to tell the two shares apart.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

Z_ALPHA = 1.959963984540054  # two-sided alpha = 0.05
Z_POWER = 0.8416212335729143  # power 0.8
FACTOR = 2 * (Z_ALPHA + Z_POWER) ** 2  # 15.68
WELCH_MIN_SEEDS = 5  # fewer on either side: the exact permutation test
MAX_SPLITS = 200_000  # exact permutation test up to this many splits; Monte Carlo beyond


def seeds_for_difference(sd: float, delta: float) -> int | None:
    """Seeds per algorithm for a two-sided test at alpha 0.05 to detect `delta` with 80% power, given the
    per-seed SD; None where delta is 0 (no number of seeds detects no difference)."""
    if not delta or math.isnan(sd) or math.isnan(delta):
        return None
    return max(2, math.ceil(FACTOR * sd * sd / (delta * delta) + 1))


def seeds_for_proportions(p_x: float, p_y: float) -> int | None:
    """Seeds per algorithm for a two-proportion z-test (alpha 0.05 two-sided, power 0.8) to tell p_x from
    p_y (Fleiss' formula without continuity correction); None where they are equal."""
    if p_x == p_y:
        return None
    p_bar = (p_x + p_y) / 2
    root = Z_ALPHA * math.sqrt(2 * p_bar * (1 - p_bar)) + Z_POWER * math.sqrt(p_x * (1 - p_x) + p_y * (1 - p_y))
    return max(2, math.ceil(root * root / (p_x - p_y) ** 2))


def bimodal_split(values: np.ndarray) -> float | None:
    """The midpoint of the widest gap between sorted per-seed scores when it is wider than half their
    range (and leaves at least one seed on each side); None otherwise."""
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) < 3 or v[-1] - v[0] <= 0:
        return None
    gaps = np.diff(v)
    i = int(gaps.argmax())
    if gaps[i] <= (v[-1] - v[0]) / 2:
        return None
    return float((v[i] + v[i + 1]) / 2)


def permutation_p(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, float, str]:
    """Two-sided permutation test of mean(x) - mean(y): (p, the smallest p possible, how it was done)."""
    pooled = np.concatenate([x, y])
    n, k = len(pooled), len(x)
    observed = abs(x.mean() - y.mean()) - 1e-12
    total = pooled.sum()
    splits = math.comb(n, k)
    if splits <= MAX_SPLITS:
        index = np.array(list(itertools.combinations(range(n), k)))  # [splits, k]
        how = f"exact permutation test ({splits} splits)"
    else:
        index = np.argsort(rng.random((MAX_SPLITS, n)), axis=1)[:, :k]
        how = f"permutation test ({MAX_SPLITS} random splits)"
    sums = pooled[index].sum(1)
    diffs = np.abs(sums / k - (total - sums) / (n - k))
    count = int((diffs >= observed).sum())
    return count / len(index), 2 / splits if k == n - k else 1 / splits, how


@dataclass
class Difference:
    map: str
    score: str  # final <metric>, AUC <metric>, final test_return_mean
    x: str
    y: str
    n_x: int
    n_y: int
    difference: float  # mean(x) - mean(y)
    ci_low: float  # stratified bootstrap, 95%
    ci_high: float
    test: str
    p: float | None
    p_min: float | None  # the smallest p the test can give with these seeds (permutation)
    hedges_g: float | None
    sd_pooled: float
    seeds_needed: int | None  # per algorithm, to detect the observed difference
    effect: float | None
    seeds_needed_effect: int | None  # per algorithm, to detect `effect`
    bimodal: bool
    share_x: float | None  # of x's seeds above the bimodal split
    share_y: float | None
    seeds_needed_shares: int | None

    @property
    def ci_excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def decided(self) -> bool:
        return self.ci_excludes_zero and self.p is not None and self.p < 0.05

    def verdict(self) -> str:
        """One line: the difference, its CI and test, and whether these seeds can tell."""
        head = (f"{self.map}, {self.score}: {self.x} - {self.y} = {self.difference:+.3f} "
                f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}]")
        if self.n_x < 2 or self.n_y < 2:
            return (f"{head}; cannot tell: {self.x if self.n_x < 2 else self.y} has one seed, and a spread needs "
                    "at least 2 per algorithm")
        test = f"{self.test} p = {self.p:.3g}" + (f", g = {self.hedges_g:+.2f}" if self.hedges_g is not None else "")
        if self.decided:
            return f"{head} ({test}): the CI excludes 0, {self.x} {'>' if self.difference > 0 else '<'} {self.y}"
        why = f"cannot tell with {self.n_x} vs {self.n_y} seeds"
        if self.ci_excludes_zero and self.p_min is not None and self.p_min >= 0.05:
            why += f" (the CI excludes 0, but {self.n_x} vs {self.n_y} seeds cannot give p < {self.p_min:.2g})"
        needs = []
        if self.seeds_needed is not None:
            needs.append(f"about {self.seeds_needed} per algorithm would detect {self.difference:+.3f}")
        else:
            needs.append("no number of seeds detects a difference of 0")
        if self.seeds_needed_effect is not None:
            needs.append(f"{self.seeds_needed_effect} an effect of {self.effect:g}")
        if self.bimodal:
            shares = (f"runs split into ones that take off and ones that do not ({self.share_x:.2f} of {self.x}'s "
                      f"seeds, {self.share_y:.2f} of {self.y}'s)")
            needs.append(shares + (f": {self.seeds_needed_shares} per algorithm would tell those shares apart"
                                   if self.seeds_needed_shares is not None else ": the same share, nothing to tell"))
        return f"{head} ({test}): {why}; " + "; ".join(needs) + " (80% power, alpha 0.05)"

    def as_dict(self) -> dict:
        return {**asdict(self), "ci_excludes_zero": self.ci_excludes_zero, "decided": self.decided,
                "verdict": self.verdict()}


def compare_scores(map_name: str, score: str, x: str, y: str, xs, ys, effect: float | None = None,
                   reps: int = 2000, seed: int = 0) -> Difference:
    """The Difference of per-seed scores xs (algorithm x) and ys (algorithm y)."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    rng = np.random.default_rng(seed)
    diff = float(xs.mean() - ys.mean())
    boot = (rng.choice(xs, (reps, len(xs))).mean(1) - rng.choice(ys, (reps, len(ys))).mean(1))
    low, high = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    n_x, n_y = len(xs), len(ys)
    p = p_min = g = None
    sd = float("nan")
    test = "no test"
    if n_x >= 2 and n_y >= 2:
        sd = math.sqrt(((n_x - 1) * xs.var(ddof=1) + (n_y - 1) * ys.var(ddof=1)) / (n_x + n_y - 2))
        if min(n_x, n_y) >= WELCH_MIN_SEEDS:
            from scipy import stats

            p = float(stats.ttest_ind(xs, ys, equal_var=False).pvalue) if sd > 0 else (0.0 if diff else 1.0)
            test = "Welch's t-test"
        else:
            p, p_min, test = permutation_p(xs, ys, rng)
        if sd > 0:
            g = diff / sd * (1 - 3 / (4 * (n_x + n_y) - 9))
    split = bimodal_split(np.concatenate([xs, ys]))
    share_x = share_y = None
    if split is not None:
        share_x, share_y = float((xs > split).mean()), float((ys > split).mean())
    return Difference(
        map=map_name, score=score, x=x, y=y, n_x=n_x, n_y=n_y, difference=diff, ci_low=low, ci_high=high,
        test=test, p=p, p_min=p_min, hedges_g=g, sd_pooled=sd,
        seeds_needed=seeds_for_difference(sd, diff) if n_x >= 2 and n_y >= 2 else None, effect=effect,
        seeds_needed_effect=seeds_for_difference(sd, effect) if effect and n_x >= 2 and n_y >= 2 else None,
        bimodal=split is not None, share_x=share_x, share_y=share_y,
        seeds_needed_shares=seeds_for_proportions(share_x, share_y) if split is not None else None)


# --- over a report's runs --------------------------------------------------------------------------

def per_seed_scores(runs, metric_by_map: dict[str, str]) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """(map, score name) -> algorithm -> seed -> value: the final and AUC of the map's test metric, and
    the final test return where the metric is another one."""
    from r3dm_epymarl.experiments.report.metrics import RETURN, area_under_curve, final_value

    out: dict = {}
    for run in runs:
        metric = metric_by_map.get(run.map)
        if not metric:
            continue
        named = [(f"final {metric}", metric, "final"), (f"AUC {metric}", metric, "auc")]
        if metric != RETURN:
            named.append((f"final {RETURN}", RETURN, "final"))
        for score, series, kind in named:
            steps, values = run.series.get(series, ([], []))
            if not steps:
                continue
            value = final_value(steps, values, run.t_max) if kind == "final" else area_under_curve(steps, values)
            out.setdefault((run.map, score), {}).setdefault(run.algorithm, {})[run.seed] = value
    return out


def pairs_for(algorithms: list[str], baseline: str | None) -> list[tuple[str, str]]:
    """(x, y) pairs reported, x - y: every algorithm against `baseline`; without one, R3DM (or else the
    first algorithm) against every other."""
    if baseline is not None:
        return [(a, baseline) for a in algorithms if a != baseline] if baseline in algorithms else []
    focus = "r3dm" if "r3dm" in algorithms else algorithms[0]
    return [(focus, a) for a in algorithms if a != focus]


def all_differences(runs, metric_by_map: dict[str, str], baseline: str | None = None, effect: float | None = None,
                    reps: int = 2000, seed: int = 0) -> list[Difference]:
    """Every ordered pair of algorithms on each map, for each per-seed score (the printed lines are the
    `pairs_for` ones; improvement.csv and --json hold them all)."""
    from r3dm_epymarl.experiments.report.metrics import is_rate

    scores = per_seed_scores(runs, metric_by_map)
    found = []
    for (map_name, score), by_algorithm in sorted(scores.items()):
        names = sorted(by_algorithm)
        rate = is_rate(score.split(" ", 1)[1])
        for x, y in itertools.permutations(names, 2):
            found.append(compare_scores(map_name, score, x, y, list(by_algorithm[x].values()),
                                        list(by_algorithm[y].values()),
                                        effect if effect is not None else (0.1 if rate else None), reps, seed))
    return found


def primary(differences: list[Difference], metric_by_map: dict[str, str], baseline: str | None,
            score: str = "final") -> list[Difference]:
    """The differences printed above the tables: the primary score of each map, for `pairs_for`."""
    chosen = []
    for map_name, metric in sorted(metric_by_map.items()):
        name = f"{score} {metric}"
        on_map = [d for d in differences if d.map == map_name and d.score == name]
        algorithms = sorted({d.x for d in on_map})
        wanted = set(pairs_for(algorithms, baseline)) if algorithms else set()
        chosen += [d for d in on_map if (d.x, d.y) in wanted]
    return chosen


def block(differences: list[Difference], baseline: str | None, missing_baseline: list[str]) -> str:
    lines = ["== can these seeds tell the algorithms apart? difference of per-seed means, 95% stratified-"
             "bootstrap CI, the test, Hedges' g; seeds per algorithm for 80% power at alpha 0.05"]
    lines += [d.verdict() for d in differences]
    lines += [f"(--baseline {baseline}: no runs of it on {m})" for m in missing_baseline]
    if len(lines) == 1:
        lines.append("(one algorithm per map: nothing to compare)")
    return "\n".join(lines)


# --- files -----------------------------------------------------------------------------------------

CSV_FIELDS = ["map", "score", "x", "y", "n_x", "n_y", "difference", "ci_low", "ci_high", "test", "p", "p_min",
              "hedges_g", "sd_pooled", "seeds_needed", "effect", "seeds_needed_effect", "bimodal", "share_x",
              "share_y", "seeds_needed_shares", "ci_excludes_zero", "decided"]
IMPROVEMENT_COLUMNS = ["final_score", "difference", "diff_ci_low", "diff_ci_high", "test", "test_p", "hedges_g",
                       "seeds_needed", "seeds_needed_effect", "bimodal", "seeds_needed_shares"]


def _blank(value):
    return "" if value is None else value


def improvement_cells(d: Difference | None) -> list:
    if d is None:
        return [""] * len(IMPROVEMENT_COLUMNS)
    return [d.score, d.difference, d.ci_low, d.ci_high, d.test, _blank(d.p), _blank(d.hedges_g),
            _blank(d.seeds_needed), _blank(d.seeds_needed_effect), d.bimodal, _blank(d.seeds_needed_shares)]


def write_csv(differences: list[Difference], path) -> None:
    """differences.csv: every ordered pair of algorithms per map and score."""
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for d in differences:
            row = d.as_dict()
            writer.writerow([_blank(row[k]) for k in CSV_FIELDS])


def write_json(shown: list[Difference], differences: list[Difference], path) -> None:
    """{"verdicts": the printed pairs, "differences": every pair and score}; NaN written as null."""
    import json

    def clean(d: Difference) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.as_dict().items()}

    with open(path, "w") as f:
        json.dump({"verdicts": [clean(d) for d in shown], "differences": [clean(d) for d in differences]}, f,
                  indent=1)

"""The report's metric helpers: which metric, final value, AUC, steps to a threshold, CIs.

A leaf: it imports no other report module, so every part of the report (tables, rliable, cells,
diagnostics, export) can use it and only `build.build_report` composes them.
"""
from __future__ import annotations

import math

WIN_RATE = "test_battle_won_mean"
RETURN = "test_return_mean"
LAST_FRACTION = 0.05  # "final" = mean over the last 5% of training steps


def ci_half_width(sd, n: int):
    """Half-width of the 95% Student-t interval of a mean of n >= 2 values with sample std `sd`
    (a float, or an array of them)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (nan for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, ci_half_width(sd, n)


def final_value(steps: list[float], values: list[float], horizon: float | None) -> float:
    """Mean of the values logged in the last 5% of the horizon (t_max, else the last step)."""
    end = horizon if horizon else steps[-1]
    window = [v for s, v in zip(steps, values) if s >= (1 - LAST_FRACTION) * end]
    return sum(window) / len(window) if window else values[-1]


def area_under_curve(steps: list[float], values: list[float]) -> float:
    """Trapezoid area divided by the steps covered: the curve's average height."""
    if len(steps) < 2 or steps[-1] == steps[0]:
        return values[-1]
    area = sum((steps[i + 1] - steps[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(steps) - 1))
    return area / (steps[-1] - steps[0])


def steps_to(steps: list[float], values: list[float], threshold: float) -> float | None:
    return next((s for s, v in zip(steps, values) if v >= threshold), None)


def pick_metric(runs: list[Run], wanted: str) -> str:
    if wanted != "auto":
        return wanted
    return WIN_RATE if any(WIN_RATE in r.series for r in runs) else RETURN


def mean_curve(curves: list[tuple[list[float], list[float]]]):
    """Seeds resampled on the steps they all cover: grid [G], mean [G], 95% CI half-width [G]."""
    import numpy as np

    end = min(s[-1] for s, _ in curves)
    grid = np.unique(np.concatenate([np.asarray(s, dtype=float) for s, _ in curves]))
    grid = grid[grid <= end]
    ys = np.stack([np.interp(grid, s, v) for s, v in curves])  # [seeds, G]
    n = len(curves)
    half = ci_half_width(ys.std(axis=0, ddof=1), n) if n > 1 else np.zeros(len(grid))
    return grid, ys.mean(axis=0), half


def is_rate(metric: str) -> bool:
    return "won" in metric or "win_rate" in metric


def safe_name(name: str) -> str:
    """`name` as one path component (map ids such as lbforaging:Foraging-8x8-3p-3f-v3 hold colons)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

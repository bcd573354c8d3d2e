"""`report --export marl-eval FILE.json`: the runs in the raw-data layout of InstaDeep's marl-eval
(PyPI `id-marl-eval`, Gorsane et al., 2022), which its `data_process_pipeline` and
`create_matrices_for_rliable` read:

    env_name -> task_name -> algorithm -> "seed_<k>" -> {
        "step_0": {"step_count": <env steps>, "<metric>": [value]}, ..., "step_<G-1>": {...},
        "absolute_metrics": {"<metric>": [final]}}

Values are raw: marl-eval normalises the metrics it is told to (metrics_to_normalize=["return"]).
marl-eval needs the same steps and number of runs for every algorithm, so each map's entries hold the
steps all its runs share (the report's curves) and the seeds every algorithm has. A Sacred test metric
is already a mean over test episodes: each list holds one value, and "absolute_metrics" holds the
report's final (the tests of the last 5% of training). That is NOT marl-eval's absolute metric (the
best policy re-evaluated with 10x the test episodes after training): marl-eval's pipeline needs a step
named "absolute...", so the key stays, and every export prints a line saying what it holds. Both `win_rate` and `return` are written where every run
of the map logged them (marl-eval's pipeline looks for a normalised metric in every entry).
"""
from __future__ import annotations

import json
from pathlib import Path

from r3dm_epymarl.experiments.report.metrics import RETURN, WIN_RATE

FORMATS = ("marl-eval",)
METRIC_NAMES = {WIN_RATE: "win_rate", RETURN: "return"}  # marl-eval's usual names; others kept as logged


def run_entry(steps, metrics: dict[str, tuple]) -> dict:
    """One run: "step_<i>" -> {"step_count", name: [value]} per shared step, then "absolute_metrics".
    `metrics`: exported name -> (curve [G], final)."""
    entry = {f"step_{i}": {"step_count": int(step), **{n: [float(c[i])] for n, (c, _) in metrics.items()}}
             for i, step in enumerate(steps)}
    entry["absolute_metrics"] = {n: [float(final)] for n, (_, final) in metrics.items()}
    return entry


def shared_seeds(group) -> tuple[dict[str, list], str | None]:
    """Per algorithm, the runs whose seed every algorithm of the map has (else each one's first k,
    k the fewest runs), and a note when some are left out."""
    common = set.intersection(*(set(s) for s in group.seeds.values()))
    fewest = min(len(s) for s in group.seeds.values())
    kept = {a: ([r for r in rs if r.seed in common] if common else rs[:fewest]) for a, rs in group.runs.items()}
    dropped = {a: len(group.runs[a]) - len(rs) for a, rs in kept.items() if len(rs) < len(group.runs[a])}
    note = None
    if dropped:
        note = (f"{group.name}: marl-eval export keeps {len(next(iter(kept.values())))} run(s) per algorithm ("
                + ", ".join(f"{a} drops {n}" for a, n in dropped.items()) + ")")
    return kept, note


def marl_eval_layout(groups) -> tuple[dict, list[str]]:
    """env -> map -> algorithm -> "seed_<k>" -> run entry from rliable.py's per-map Groups, and notes."""
    from r3dm_epymarl.experiments.report.rliable import finals_and_curves

    layout: dict = {}
    notes = []
    for g in groups:
        kept, note = shared_seeds(g)
        notes += [note] if note else []
        everyone = [r for rs in kept.values() for r in rs]
        names = [g.metric] + [m for m in (WIN_RATE, RETURN)
                              if m != g.metric and all(r.series.get(m, ([], []))[0] for r in everyone)]
        env = next(iter(everyone)).env
        task = layout.setdefault(env, {}).setdefault(g.name, {})
        for algorithm, runs in kept.items():
            values = {METRIC_NAMES.get(m, m): finals_and_curves(runs, m, g.steps, g.horizon) for m in names}
            entries = task.setdefault(algorithm, {})
            for row, r in enumerate(runs):
                key = f"seed_{r.seed}" if f"seed_{r.seed}" not in entries else f"seed_{r.seed}_run{row}"
                entries[key] = run_entry(g.steps, {n: (curves[row], finals[row])
                                                   for n, (finals, curves) in values.items()})
    return layout, notes


def export(fmt: str, path: str, groups) -> tuple[Path, list[str]]:
    """Write the per-map `groups` in format `fmt` (only marl-eval) to `path`; the file and notes."""
    layout, notes = marl_eval_layout(groups)
    notes = [*notes, f"marl-eval export: its absolute_metrics hold each run's final (the mean of its tests in the last "
                     f"5% of steps), not marl-eval's absolute metric (the best policy re-evaluated with 10x the test "
                     f"episodes): label them so where you plot them"]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(layout, indent=1))
    return out, notes

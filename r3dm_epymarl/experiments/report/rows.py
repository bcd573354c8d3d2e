"""Which runs form one row of a report: runs of one config `name` on one map are seeds of one setting
only if they agree on every key that changes learning. Runs that differ (a hand-made variant, EPyMARL's
search.py hypergroups) become separate rows named by the keys that differ, e.g. `r3dm[lr=0.001]`; a
seed repeated within a row (the same cell run twice, a copied results folder) counts once.
"""
from __future__ import annotations

import json

from r3dm_epymarl.experiments.report.runs import Run

# Keys that do not change what is learned: the seed (what a row averages over), where things are
# written or read, checkpoints and resuming, logging, the device, and the Mongo / W&B / TensorBoard
# settings. Every other key that differs between runs of one name and map splits the row.
NOT_LEARNING = {
    "seed", "env_args.seed", "checkpoint_path", "load_step", "save_model", "save_model_interval",
    "local_results_path", "evaluate", "render", "save_replay", "use_cuda", "buffer_cpu_only", "log_interval",
    "runner_log_interval", "learner_log_interval", "use_tensorboard", "use_wandb", "wandb_team",
    "wandb_project", "wandb_mode", "wandb_save_model", "mongo_url", "repeat_id", "label", "unique_token",
}


def _value(config: dict, key: str) -> str:
    return json.dumps(config.get(key, "<unset>"), sort_keys=True, default=str)


def split_settings(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Rename the runs of a (name, map) whose learning keys differ to `name[key=value,...]`; one line
    per such group naming the keys."""
    notes = []
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.algorithm, run.map), []).append(run)
    for (name, map_name), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        # keys every run has: one absent from older runs (a key added in a later version) is not a setting
        keys = sorted(set.intersection(*(set(r.config) for r in members)) - NOT_LEARNING)
        differing = [k for k in keys if len({_value(r.config, k) for r in members}) > 1]
        if not differing:
            continue
        for run in members:
            run.algorithm = f"{name}[" + ",".join(f"{k}={_short(run.config.get(k, '<unset>'))}" for k in differing) + "]"
        rows = sorted({r.algorithm for r in members})
        notes.append(f"report: {map_name} {name}: its runs differ in {', '.join(differing)}, so they are "
                     f"{len(rows)} rows, not seeds of one: {', '.join(rows)}")
    return runs, notes


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 24 else text[:21] + "..."


def one_run_per_seed(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Keep one run per (row, map, seed): the one that got furthest (its last logged step), then the
    first found; one line per repeated seed naming the runs left out."""
    notes = []
    chosen: dict[tuple[str, str, int], Run] = {}
    repeats: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        key = (run.algorithm, run.map, run.seed)
        repeats.setdefault(key, []).append(run)
    for key, members in repeats.items():
        best = max(members, key=_reach)  # max keeps the first of equals
        chosen[key] = best
        if len(members) > 1:
            left = [r.source for r in members if r is not best]
            notes.append(f"report: {key[1]} {key[0]} seed {key[2]}: {len(members)} runs, counted once "
                         f"(kept {best.source}; left out {', '.join(left)})")
    return [r for r in runs if chosen[(r.algorithm, r.map, r.seed)] is r], notes


def _reach(run: Run) -> float:
    return max((steps[-1] for steps, _ in run.series.values() if steps), default=0.0)

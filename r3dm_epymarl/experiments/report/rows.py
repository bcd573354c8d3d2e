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


# What every row of a comparison should share (compare sets them alike): a difference between the rows
# of one map is printed, since it, and not the algorithm, may explain a gap.
PROTOCOL_KEYS = (
    "standardise_rewards", "standardise_returns", "common_reward", "reward_scalarisation", "gamma",
    "epsilon_start", "epsilon_finish", "epsilon_anneal_time", "epsilon_coin", "test_nepisode", "test_interval",
    "test_greedy", "evaluation_epsilon", "t_max", "buffer_size", "batch_size", "runner", "batch_size_run",
)


# Not a config key: a run with static tests (runs/static_tests.py) logs its first test seed once.
STATIC_TESTS = "test_env_seed"


def _static_tests(run: Run) -> str:
    values = run.series.get(STATIC_TESTS, ([], []))[1]
    return json.dumps(int(values[0]) if values else "off")


def protocol_differences(runs: list[Run]) -> list[str]:
    """Per map, one line per protocol key (and env_args key, the seed aside) whose value differs between
    rows: `protocol differences on 2s3z: standardise_rewards qmix=True, others False`."""
    from collections import Counter

    lines = []
    for map_name in sorted({r.map for r in runs}):
        on_map = [r for r in runs if r.map == map_name]
        rows = sorted({r.algorithm for r in on_map})
        if len(rows) < 2:
            continue
        env_keys = {k for r in on_map for k in r.config if k.startswith("env_args.") and k != "env_args.seed"}
        parts = []
        for key in [*PROTOCOL_KEYS, STATIC_TESTS, *sorted(env_keys)]:
            per_row = {}
            for row in rows:
                values = {_static_tests(r) if key == STATIC_TESTS else _value(r.config, key)
                          for r in on_map if r.algorithm == row}
                per_row[row] = values.pop() if len(values) == 1 else "mixed"
            if len(set(per_row.values())) < 2:
                continue
            common, count = Counter(per_row.values()).most_common(1)[0]
            shown = [f"{row}={_plain(v)}" for row, v in per_row.items() if count < 2 or v != common]
            parts.append(f"{key} " + ", ".join(shown) + (f", others {_plain(common)}" if count >= 2 else ""))
        if parts:
            lines.append(f"protocol differences on {map_name}: " + "; ".join(parts))
    return lines


def _plain(value: str) -> str:
    """A _value as printed: JSON without quotes around strings; unset keys say so."""
    text = json.loads(value) if value != "mixed" else "mixed (differs between its seeds)"
    if text == "<unset>":
        return "unset"
    return text if isinstance(text, str) else str(text) if isinstance(text, (bool, int, float)) else json.dumps(text)

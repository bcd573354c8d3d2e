"""Per-map presets: `presets/<algorithm name>.yaml` maps a map name to config keys.

Applied for the map being run (env_args.map_name, else env_args.key); a key the user gives after
`with` always wins. The launcher applies them for both hosts; the EPyMARL patch does the same for
`python src/main.py`.
"""
from __future__ import annotations

import yaml

from r3dm_epymarl.paths import config_dir


def map_name(config: dict) -> str | None:
    env_args = config.get("env_args") or {}
    return env_args.get("map_name") or env_args.get("key")


def preset_for(algorithm: str, map_: str | None) -> dict:
    path = config_dir() / "presets" / f"{algorithm}.yaml"
    if map_ is None or not path.is_file():
        return {}
    return dict((yaml.safe_load(path.read_text()) or {}).get(map_, {}))


def cli_keys(argv: list[str]) -> set[str]:
    """Keys set after `with` on the command line."""
    after = argv[argv.index("with") + 1:] if "with" in argv else []
    return {arg.split("=", 1)[0] for arg in after if "=" in arg}


def with_presets(argv: list[str], config: dict) -> tuple[list[str], dict]:
    """argv plus the preset's keys the user did not set; also returns what was added."""
    given = cli_keys(argv)
    added = {k: v for k, v in preset_for(config.get("name", ""), map_name(config)).items() if k not in given}
    if not added:
        return argv, {}
    extra = [f"{k}={v!r}" for k, v in added.items()]
    return (argv + extra if "with" in argv else argv + ["with", *extra]), added


def renamed_without_preset(config: dict, given: set[str] = frozenset()) -> str | None:
    """One line for a plug-in algorithm run under another `name` (an ablation, e.g. name=r3dm_policy_kl)
    on a map its published preset covers: presets follow `name`, so that run gets none. Lists the
    preset's keys not `given` on the command line; None when there are none."""
    from r3dm_epymarl.registry import algorithm_of

    algo, name, map_ = algorithm_of(config), config.get("name", ""), map_name(config)
    if algo is None or name == algo.name or preset_for(name, map_):
        return None
    missed = {k: v for k, v in preset_for(algo.name, map_).items() if k not in given}
    if not missed:
        return None
    keys = " ".join(f"{k}={v!r}" for k, v in missed.items())
    return (f"r3dm-epymarl: name={name} gets no preset (presets follow `name`); {algo.name}'s preset for "
            f"{map_} is: {keys} (add them after `with` to keep them)")

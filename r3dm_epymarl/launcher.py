"""Launch a host run with the plug-in registered: resolve config names, check them, hand over.

`python -m r3dm_epymarl run [--epymarl PATH | --host NAME] --config=ALG --env-config=ENV with k=v ...`
Everything after the launcher's own options goes to the host untouched, except that a config name
the host does not ship is rewritten to the plug-in's YAML (an absolute path, which both hosts accept).
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import yaml

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.paths import config_dir
from r3dm_epymarl.preflight import preflight
from r3dm_epymarl.presets import cli_keys, map_name, renamed_without_preset, with_presets
from r3dm_epymarl.runs import static_tests, wandb_runs
from r3dm_epymarl.runs.interrupt import STOP, RunInterrupted

_FLAGS = {"--config": "algs", "--env-config": "envs"}


def available(host, subfolder: str) -> list[str]:
    names = {p.stem for d in (host.config_dir, config_dir()) for p in (d / subfolder).glob("*.yaml")}
    return sorted(names)


def find_config(host, subfolder: str, name: str) -> Path | None:
    """The YAML for a config name. The host's own configs win, as in the patch, except for the
    plug-in's algorithms: `--config=cds` means the plug-in's CDS even where PyMARLzoo+ ships one."""
    from r3dm_epymarl.registry import ALGORITHMS

    if os.path.isabs(name):
        path = Path(name + ".yaml")
        return path if path.is_file() else None
    roots = (host.config_dir, config_dir())
    if subfolder == "algs" and name in ALGORITHMS:
        roots = roots[::-1]
    for root in roots:
        path = root / subfolder / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def check_env_host(host, env_config: str) -> None:
    """An env config only one host runs, asked of the other: one line saying which host (run and compare)."""
    if env_config == "sc2v2" and host.name != "epymarl":
        raise UserError(f"--env-config=sc2v2 (SMACv2) runs on the EPyMARL host only: {host.name} ships no "
                        "SMACv2 env. Pass --epymarl PATH to an EPyMARL checkout (or set EPYMARL_PATH); "
                        "without StarCraft II, use --env-config=smax")


def resolve_configs(host, argv: list[str]) -> tuple[list[str], dict[str, Path]]:
    """Rewrite --config/--env-config to files the host can open; fail early on unknown names."""
    out, found = [], {}
    for arg in argv:
        flag, eq, name = arg.partition("=")
        if flag in _FLAGS and eq:
            subfolder = _FLAGS[flag]
            path = find_config(host, subfolder, name)
            if path is None and flag == "--env-config":
                check_env_host(host, name)
            if path is None:
                raise UserError(f"unknown {flag} '{name}': choose one of {', '.join(available(host, subfolder))}")
            found[flag] = path
            arg = f"{flag}={path.with_suffix('')}" if path.parent.parent != host.config_dir else arg
        out.append(arg)
    for flag in _FLAGS:
        if flag not in found:
            raise UserError(f"missing {flag}=NAME (e.g. --config=acorm --env-config=gymma)")
    return out, found


def _load(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def declared_config(host, found: dict[str, Path]) -> dict:
    """default.yaml <- env YAML <- alg YAML, as the hosts merge them: every key a run declares."""
    config = _load(host.config_dir / "default.yaml")
    _merge(config, _load(found["--env-config"]))
    return _merge(config, _load(found["--config"]))


def with_updates(argv: list[str]) -> dict:
    """The `with` key=value updates of `argv`, parsed as Sacred parses them."""
    from sacred.arg_parser import get_config_updates

    updates = argv[argv.index("with") + 1:] if "with" in argv else []
    return get_config_updates([u for u in updates if "=" in u])[0]


def merged_config(host, argv: list[str], found: dict[str, Path]) -> dict:
    """default.yaml <- env YAML <- alg YAML <- `with` updates, as the hosts merge them."""
    return _merge(declared_config(host, found), with_updates(argv))


def check_known_keys(declared: dict, updates, config_name: str) -> None:
    """A `with` key (of `updates`) that no config of the run declares: Sacred would end in ConfigAddedError
    after printing its config; here it is one line naming the key and the nearest known one."""
    import difflib

    for key in updates:
        if key in declared or key in LAUNCHER_KEYS:
            continue
        near = difflib.get_close_matches(key, list(declared), n=1)
        raise UserError(f"unknown config key '{key}': neither {config_name}'s config nor the env's "
                        f"or the host's defaults declare it" + (f"; did you mean '{near[0]}'?" if near else ""))


# Keys the hosts read without declaring them in their YAMLs (Sacred accepts them on the command line).
LAUNCHER_KEYS = frozenset({"seed"})


def check_updates(argv: list[str]) -> None:
    """Every `with` update is key=value: the hosts define no named configs, so Sacred would report a
    bare word (`with lr`) as "Named config not found"."""
    updates = argv[argv.index("with") + 1:] if "with" in argv else []
    bare = [u for u in updates if "=" not in u and not u.startswith("-")]
    if bare:
        raise UserError(f"`with {bare[0]}`: updates after `with` are key=value (e.g. {bare[0]}=VALUE); "
                        "these hosts have no named configs")


def with_term_keys(host_argv: list[str], found: dict[str, Path], declared: dict, config: dict) -> list[str]:
    """The configured intrinsic terms' keys that the algorithm's YAML does not declare (a term of one's
    own, `intrinsic_terms='["pkg.mod:Class"]'`), declared with their defaults: the host then accepts
    `with rnd_hidden=32` as for any key. Done through a copy of the YAML with those keys added, in a
    temporary folder the host reads `--config` from; `declared` and `config` gain them too."""
    import atexit
    import shutil
    import tempfile

    from r3dm_epymarl.intrinsic import term_keys

    entries = config.get("intrinsic_terms")
    if not isinstance(entries, (list, tuple)) or not entries:
        return host_argv
    extra = {name: key.default for name, key in term_keys(entries).items() if name not in declared}
    if not extra:
        return host_argv
    folder = tempfile.mkdtemp(prefix="r3dm-epymarl-config-")
    atexit.register(shutil.rmtree, folder, True)
    alg_yaml = Path(folder) / found["--config"].name  # the same file name: the hosts name runs by `name:`
    alg_yaml.write_text(yaml.safe_dump({**_load(found["--config"]), **extra}, sort_keys=False))
    declared.update(extra)
    for name, default in extra.items():
        config.setdefault(name, default)
    return [f"--config={alg_yaml.with_suffix('')}" if arg.startswith("--config=") else arg for arg in host_argv]


def check_command(argv: list[str], host, base_dir: str | None = None, say=None) -> tuple[list[str], dict, str | None]:
    """Every check of a run's command that needs no training: (the host's argv, with configs resolved and
    term keys and preset added; the merged config; the Mongo URL). Bad input raises UserError, one line.
    `say` gets the lines a run prints about its config (its preset); None: stderr. `compare` calls it for
    its cells before any of them starts (before a Slurm job is queued)."""
    from r3dm_epymarl.hosts import sacred as observers
    from r3dm_epymarl.hosts import EPYMARL

    say = say or (lambda line: print(line, file=sys.stderr))
    argv, mongo_url = observers.pop_mongo_url(argv)
    observers.check_mongo_url(mongo_url)
    check_updates(argv)
    host_argv, found = resolve_configs(host, argv)
    if found["--env-config"].stem == "sc2v2":
        from r3dm_epymarl.envs.sc2v2 import check_sc2v2

        check_sc2v2()  # one clear line when smacv2 or StarCraft II is missing, before anything starts
    declared, updates = declared_config(host, found), with_updates(host_argv)
    config = _merge(copy.deepcopy(declared), updates)
    host_argv = with_term_keys(host_argv, found, declared, config)
    host_argv, preset = with_presets(host_argv, config)
    if preset:
        config.update(preset)
        say(f"r3dm-epymarl: {config['name']} preset for {map_name(config)}: "
            + " ".join(f"{k}={v}" for k, v in preset.items()))
    elif note := renamed_without_preset(config, cli_keys(host_argv)):
        say(note)
    # EPyMARL runs in base_dir (a relative checkpoint_path is read from there), PyMARLzoo+ here.
    preflight(config, host.name, cwd=base_dir if base_dir and host.name == EPYMARL else None)
    static_tests.check(config)
    # after preflight: a key it explains (common_reward) says why
    check_known_keys(declared, [*updates, *preset], found["--config"].stem)
    return host_argv, config, mongo_url


def launch(argv: list[str], host_name: str | None = None, epymarl_path: str | None = None,
           base_dir: str | None = None) -> None:
    from r3dm_epymarl.hosts import sacred as observers
    from r3dm_epymarl.hosts import EPYMARL, get_host
    from r3dm_epymarl.registry import register
    from r3dm_epymarl.preflight import check_host_run
    from r3dm_epymarl.runs.loop import install_host_loop

    user_argv = list(argv)
    host = get_host(host_name, epymarl_path)
    host_argv, config, mongo_url = check_command(argv, host, base_dir)
    # a resumed run logs on into its W&B run (EPyMARL reads a relative checkpoint_path from base_dir)
    wandb_runs.continue_run(config, cwd=base_dir if base_dir and host.name == EPYMARL else None)
    register(host)
    install_host_loop(host, check_host_run)  # exact resume, interrupts and the progress line
    # After every config check (bad input fails before waiting on a server), before the host starts.
    observers.install(mongo_url, file_base=base_dir if host.name == EPYMARL else None)
    previous = STOP.install()
    try:
        host.run(host_argv, base_dir=base_dir)
    except RunInterrupted as stop:
        # The command to resume with: this one, with its host and base folder spelled out.
        stop.argv = ["run", "--host", host.name, *(["--epymarl", str(host.root)] if host.name == EPYMARL else []),
                     *(["--base-dir", str(Path(base_dir).resolve())] if base_dir else []), *user_argv]
        raise
    finally:
        STOP.uninstall(previous)

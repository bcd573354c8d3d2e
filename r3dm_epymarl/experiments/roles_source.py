"""Which Sacred run and which checkpoint folder `roles PATH` means.

A checkpoint written through the plug-in's run loop has a manifest (`checkpoint.json`, see
r3dm_epymarl/runs/checkpoints.py) naming the Sacred run folder that saved it: that answer is used
first. Older checkpoints (saved without the plug-in's hooks) are matched the way they always were: the
run's log names its model folder, else the folder's timestamp lies within TOKEN_WINDOW_S of the run's start.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from r3dm_epymarl.errors import UserError

ROLE_MAC = "role_mac"
RUN_HINT = "results/sacred/<name>/<map>/<id>"
TOKEN_WINDOW_S = 300  # the most seconds between a run's start and the time in its model folder's name


@dataclass
class Source:
    run_dir: Path
    config: dict  # the run's config.json (the merged config the host ran)
    run_info: dict  # the run's run.json ({} when absent)
    step_dir: Path  # the checkpoint folder <t_env>/ holding agent.th, roles.th, learner.th
    t_env: int

    @property
    def map_name(self) -> str:
        from r3dm_epymarl.presets import map_name

        return str(map_name(self.config) or "?")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}): the Sacred run folder is damaged") from None


def _is_run(path: Path) -> bool:
    return (path / "config.json").is_file()


def _is_step_dir(path: Path) -> bool:
    return path.name.isdigit() and path.is_dir() and any(path.glob("*.th"))


def _step_dirs(root: Path) -> dict[int, Path]:
    """t_env -> checkpoint folder, for the numbered folders under a checkpoint root."""
    if not root.is_dir():
        return {}
    return {int(p.name): p for p in root.iterdir() if _is_step_dir(p)}


def _squeeze(text: str) -> str:
    # Rich (PyMARLzoo+) wraps long log lines, and EPyMARL tokens hold a space: compare without whitespace.
    return "".join(text.split())


def _local_start(run_info: dict) -> datetime | None:
    """The run's start as local naive time (Sacred stores UTC; the hosts name tokens in local time)."""
    try:
        start = datetime.fromisoformat(run_info["start_time"])
    except (KeyError, TypeError, ValueError):
        return None
    return start.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


def _token_time(token: Path, prefix: str) -> datetime | None:
    try:
        return datetime.fromisoformat(token.name[len(prefix):])
    except ValueError:
        return None


def _token_prefix(config: dict) -> str:
    # Both hosts name a run's model folder f"{name}_seed{seed}_{map}_{datetime.now()}".
    from r3dm_epymarl.presets import map_name

    return f"{config.get('name')}_seed{config.get('seed')}_{map_name(config)}_"


def _token_gap(token: Path, config: dict, run_info: dict) -> float | None:
    """Seconds between the run's start and the time in the model folder's name (None: either unknown).
    A run names its folder when it starts, so a gap under TOKEN_WINDOW_S ties the two together."""
    prefix = _token_prefix(config)
    start = _local_start(run_info)
    saved = _token_time(token, prefix) if token.name.startswith(prefix) else None
    return None if start is None or saved is None else abs((saved - start).total_seconds())


def _model_roots(run_dir: Path, config: dict, run_info: dict) -> list[Path]:
    """Where a run's `results/models/<token>/` folders can be (EPyMARL's `local_results_path` is relative
    to the working directory of the training process, which Sacred does not record)."""
    local = Path(str(config.get("local_results_path") or "results"))
    roots = []
    if len(run_dir.parents) > 3:
        roots.append(run_dir.parents[3] / "models")  # <base>/results/sacred/<name>/<map>/<id>
    if local.is_absolute():
        roots.append(local / "models")
    else:
        roots.append(Path.cwd() / local / "models")
        base_dir = (run_info.get("experiment") or {}).get("base_dir")
        if base_dir:  # EPyMARL: <checkout>/src; the checkout root is a common working directory
            roots.append(Path(base_dir).parent / local / "models")
    seen, unique = set(), []
    for root in roots:
        key = os.path.abspath(root)
        if key not in seen:
            seen.add(key)
            unique.append(root)
    return unique


def _token_of_run(run_dir: Path, config: dict, run_info: dict) -> Path | None:
    """The EPyMARL-style model folder this run saved into: named in its log, else the one whose
    timestamp is closest to the run's start (within TOKEN_WINDOW_S)."""
    prefix = _token_prefix(config)
    tokens = [p for root in _model_roots(run_dir, config, run_info) if root.is_dir()
              for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix) and _step_dirs(p)]
    if not tokens:
        return None
    log = (run_dir / "cout.txt")
    if log.is_file():
        squeezed = _squeeze(log.read_text(errors="replace"))
        named = [p for p in tokens if _squeeze(p.name) in squeezed]
        if named:
            return named[0]
    gaps = [(gap, p) for p in tokens if (gap := _token_gap(p, config, run_info)) is not None and gap < TOKEN_WINDOW_S]
    return min(gaps)[1] if gaps else None


def _manifest_run(step_dir: Path) -> Path | None:
    """The Sacred run folder a checkpoint's manifest names, if it has one and the folder exists."""
    from r3dm_epymarl.runs.checkpoints import MANIFEST

    try:
        run_dir = (json.loads((step_dir / MANIFEST).read_text()).get("sacred") or {}).get("run_dir")
    except (OSError, ValueError):
        return None
    return Path(run_dir) if run_dir and _is_run(Path(run_dir)) else None


def _checkpoints_of_run(run_dir: Path, config: dict, run_info: dict) -> dict[int, Path]:
    found = _step_dirs(run_dir / "models")  # PyMARLzoo+: inside the Sacred run folder
    if found:
        return found
    # The manifests of the run's model folders name it (the folders of a resumed run too).
    manifest_steps = {t: d for root in _model_roots(run_dir, config, run_info) if root.is_dir()
                      for token in root.iterdir() if token.is_dir()
                      for t, d in _step_dirs(token).items() if _manifest_run(d) == run_dir.resolve()}
    if manifest_steps:
        return manifest_steps
    token = _token_of_run(run_dir, config, run_info)  # EPyMARL: results/models/<token>/
    return _step_dirs(token) if token is not None else {}


def _run_of_checkpoint(root: Path) -> Path | None:
    """The Sacred run that saved the checkpoint root `root` (a folder of <t_env>/ folders)."""
    if root.name == "models" and _is_run(root.parent):
        return root.parent  # PyMARLzoo+
    steps = _step_dirs(root)
    for t_env in sorted(steps, reverse=True):  # the newest manifest names its run (a half-written one has none)
        named = _manifest_run(steps[t_env])
        if named is not None:
            return named
    # EPyMARL: results/models/<token> beside results/sacred/<name>/<map>/<id>; the run's log names it.
    squeezed_token = _squeeze(root.name)
    for sacred in (root.parent.parent / "sacred", Path.cwd() / "results" / "sacred"):
        for config in sorted(sacred.glob("*/*/*/config.json")):
            run_dir = config.parent
            log = run_dir / "cout.txt"
            if log.is_file() and squeezed_token in _squeeze(log.read_text(errors="replace")):
                return run_dir
            gap = _token_gap(root, _read_json(config), _read_json(run_dir / "run.json"))
            if gap is not None and gap < TOKEN_WINDOW_S:
                return run_dir
    return None


def _saved_by_the_loop(steps: dict[int, Path]) -> bool:
    """The checkpoints beside these were saved through the plug-in's run loop (one has a manifest): a
    folder without one, or whose files do not match it, is then half-written or corrupt."""
    from r3dm_epymarl.runs.checkpoints import MANIFEST

    return any((d / MANIFEST).is_file() for root in {d.parent for d in steps.values()}
               for d in _step_dirs(root).values())


def _pick_step(steps: dict[int, Path], step: int | None) -> tuple[int, Path]:
    """The newest checkpoint (with `step`: the nearest) that is intact, as `run` resumes (runs/loop.py):
    each better-placed one that is half-written or corrupt is skipped in one line; none intact is a
    UserError. Checkpoints saved without the plug-in's hooks have no manifest to check and are used as found."""
    from r3dm_epymarl.runs.checkpoints import read_manifest

    order = sorted(steps, reverse=True) if step is None else sorted(steps, key=lambda t: (abs(t - step), t))
    verify = _saved_by_the_loop(steps)
    broken = []
    for t_env in order:
        if verify:
            try:
                read_manifest(steps[t_env])
            except ValueError as exc:
                broken.append(str(exc))
                print(f"r3dm-epymarl roles: skipping checkpoint {exc}", file=sys.stderr)
                continue
        if step is not None and t_env != step:
            print(f"r3dm-epymarl roles: no {'intact ' if broken else ''}checkpoint at t_env={step}; using the "
                  f"nearest, t_env={t_env} (saved: {', '.join(map(str, sorted(steps)))})", file=sys.stderr)
        return t_env, steps[t_env]
    raise UserError(f"no intact checkpoint to plot ({len(broken)} half-written or corrupt; the newest: {broken[0]}): "
                    "pass a run or checkpoint folder holding an intact one, or train again with save_model=True")


def check_has_roles(run_dir: Path, config: dict) -> None:
    if config.get("mac") != ROLE_MAC:
        raise UserError(f"run {run_dir} is --config={config.get('name', '?')} (mac: {config.get('mac', '?')}), "
                        "which has no roles: role plots need an ACORM or R3DM run (--config=acorm or r3dm)")
    if not config.get("role_clusters"):
        raise UserError(f"run {run_dir} has no 'role_clusters' in its config.json: not an ACORM/R3DM run")


def _run_in_folder(folder: Path) -> tuple[Path | None, dict[int, Path]]:
    """The Sacred run of a folder holding results/sacred/<name>/<map>/<id>/ (a compare cell, a run's
    --base-dir), and the checkpoints of its whole chain: a cell stopped and continued has one run per
    attempt, each naming in its manifests only the checkpoints it saved, so they are gathered run by run
    (a later run's checkpoint of a step wins). The run is the oldest role run with checkpoints (the
    runs of a chain share their config); (first run or None, {}) when none has any."""
    runs = [(p.parent, _read_json(p.parent / "run.json")) for p in folder.glob("results/sacred/*/*/*/config.json")]
    runs.sort(key=lambda entry: (str(entry[1].get("start_time", "")), entry[0].name))
    first, steps = None, {}
    for run, run_info in runs:
        config = _read_json(run / "config.json")
        found = _checkpoints_of_run(run, config, run_info) if config.get("mac") == ROLE_MAC else {}
        if found:
            first = first or run
            steps.update(found)
    return (first, steps) if first else (runs[0][0] if runs else None, {})


def find_source(path: Path, run: Path | None = None, step: int | None = None) -> Source:
    """Resolve PATH (+ --run, --step) to a Sacred run, its config and one checkpoint folder."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise UserError(f"{path} does not exist: pass a Sacred run folder ({RUN_HINT}) or a checkpoint folder")
    run_dir = run.expanduser().resolve() if run is not None else None
    if run_dir is not None and not _is_run(run_dir):
        raise UserError(f"--run {run_dir} is not a Sacred run folder (no config.json): pass {RUN_HINT}")

    chain = {}
    if not _is_run(path) and not _is_step_dir(path) and not _step_dirs(path):
        inside, chain = _run_in_folder(path)  # a compare cell (or a --base-dir): the Sacred run(s) inside
        path = inside or path
    if _is_run(path):
        if run_dir is not None and run_dir != path:
            raise UserError(f"{path} is a Sacred run itself; drop --run, or pass the checkpoint folder as PATH")
        run_dir, steps = path, chain or None
    elif _is_step_dir(path):
        steps = {int(path.name): path}
        if step is not None and step != int(path.name):
            raise UserError(f"{path} is the checkpoint at t_env={path.name}, not {step}: drop --step or pass "
                            "the folder above it")
        run_dir = run_dir or _run_of_checkpoint(path.parent)
    elif _step_dirs(path):
        steps = _step_dirs(path)
        run_dir = run_dir or _run_of_checkpoint(path)
    else:
        raise UserError(f"{path} is neither a Sacred run folder (no config.json) nor a checkpoint folder "
                        f"(no <t_env>/ folders with .th files): pass {RUN_HINT} or its checkpoint")
    if run_dir is None:
        raise UserError(f"no Sacred run found for checkpoint {path}: pass --run {RUN_HINT} (the run that "
                        "saved it; its config.json is launched again)")

    config = _read_json(run_dir / "config.json")
    run_info = _read_json(run_dir / "run.json")
    check_has_roles(run_dir, config)
    if steps is None:
        steps = _checkpoints_of_run(run_dir, config, run_info)
        if not steps:
            raise UserError(f"run {run_dir} has no saved checkpoint (looked in {run_dir / 'models'} and "
                            "results/models/<token>/): train with save_model=True save_model_interval=N, or "
                            "pass the checkpoint folder as PATH")
    t_env, step_dir = _pick_step(steps, step)
    missing = [name for name in ("agent.th", "roles.th") if not (step_dir / name).is_file()]
    if missing:
        raise UserError(f"checkpoint {step_dir} has no {' or '.join(missing)}: not a checkpoint of an ACORM/R3DM "
                        "role controller")
    return Source(run_dir, config, run_info, step_dir, t_env)

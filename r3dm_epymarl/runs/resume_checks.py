"""`checkpoint_path`, checked before the host loads anything from it.

The hosts expect the folder a run saved its models to, holding one `<t_env>/` folder per checkpoint.
Given anything else they end badly: a path that does not exist, or a file, is "Checkpoint directiory
... doesn't exist" and a COMPLETED run that trained nothing; a folder without step folders is
`max() arg is an empty sequence`; junk in a step folder is an unpickler traceback; another algorithm's
or map's checkpoint is a `size mismatch` traceback. Here each is one line, except the step-folder
form (`.../models/436`, what `roles` accepts), which resumes from that step.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from r3dm_epymarl.config import flatten
from r3dm_epymarl.errors import UserError
from r3dm_epymarl.runs.checkpoints import MANIFEST, step_folders

EXPECTED = ("the folder of <t_env>/ checkpoints a run saved with save_model=True (EPyMARL: results/models/<run>/, "
            "PyMARLzoo+: results/sacred/<alg>/<map>/<id>/models/), or one <t_env>/ folder in it")

# Keys that may change on resume without changing what is trained: where and how long the run goes on,
# what it logs and saves (unique_token, results_path: set by the hosts per run). Any other key that differs from the checkpoint's makes the resume inexact.
NOT_TRAINING = frozenset({
    "checkpoint_path", "load_step", "t_max", "unique_token", "results_path", "evaluate", "save_replay", "render",
    "save_model", "save_model_interval", "local_results_path", "log_interval", "runner_log_interval",
    "learner_log_interval", "use_tensorboard", "use_wandb", "wandb", "wandb_team", "wandb_project",
    "wandb_mode", "wandb_save_model", "label", "hypergroup", "repeat_id",
})


@dataclass(frozen=True)
class ResumeTarget:
    models: Path  # the folder of <t_env>/ checkpoints, as the hosts expect it
    load_step: int | None  # the step, when checkpoint_path named one step folder
    manifest: dict | None  # checkpoint.json of the checkpoint the host will load (not yet verified)


def _is_torch_file(path: Path) -> bool:
    """torch.save's zip archive (or its legacy pickle format): not text, not a truncated archive."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_checkpoint_path(config: dict, cwd: str | None = None) -> ResumeTarget | None:
    """Where the host will load from, or UserError in one line. `cwd` is the folder a relative
    checkpoint_path is read from (the host's working directory; default: this process's)."""
    from r3dm_epymarl.presets import map_name

    path = config.get("checkpoint_path")
    if not path or not isinstance(path, str):
        return None
    where = Path(path).expanduser()
    where = where if where.is_absolute() else Path(cwd or os.getcwd()) / where
    looked = "" if Path(path).is_absolute() else f" (looked in {where})"
    if not where.exists():
        raise UserError(f"checkpoint_path {path}: no such folder{looked}; give {EXPECTED}")
    if not where.is_dir():
        raise UserError(f"checkpoint_path {path} is a file; give {EXPECTED}")
    models, load_step = where, None
    folders = step_folders(where)
    if not folders:
        if not (where.name.isdigit() and any(p.is_file() for p in where.iterdir())):
            raise UserError(f"checkpoint_path {path} holds no <t_env>/ checkpoint folders; give {EXPECTED}")
        # One step folder: resume (or evaluate) from that step of the run that holds it.
        models, load_step = where.parent, int(where.name)
        given = config.get("load_step") or 0
        if given and int(given) != load_step:
            raise UserError(f"checkpoint_path {path} is the checkpoint at step {load_step} but load_step={given}: "
                            f"give checkpoint_path={models} load_step={given}, or drop load_step")
        folders = [where]
    near = load_step or int(config.get("load_step") or 0)
    if near:
        folders = sorted(folders, key=lambda f: abs(int(f.name) - near))  # the hosts' rule for load_step
    manifests = [(f, m) for f in folders if (m := _read_json(f / MANIFEST)) is not None]
    if manifests:
        # The plug-in's hooks load the best-placed intact one of these (runs/loop.py); they are one run's.
        folder, manifest = manifests[0]
        _check_same_run(config, manifest, folder, map_name(config))
        _check_no_newer(config, models, int(folder.name), path)
        return ResumeTarget(models, load_step, manifest)
    # Saved without the plug-in's hooks: the host loads the best-placed folder as it is.
    folder = folders[0]
    models_files = sorted(folder.glob("*.th"))
    if not models_files:
        raise UserError(f"checkpoint_path {path}: {folder} holds no saved models (*.th); give {EXPECTED}")
    for file in models_files:
        if not _is_torch_file(file):
            raise UserError(f"checkpoint_path {path}: {file} is not a saved torch model (damaged, or not a "
                            f"checkpoint); give {EXPECTED}")
    return ResumeTarget(models, load_step, None)


def _check_no_newer(config: dict, models: Path, step: int, path: str) -> None:
    """A resumed run saves its checkpoints beside the one it resumed (runs/loop.py `save_path`): resuming
    an older step with save_model=True would overwrite the same run's newer intact checkpoints."""
    from r3dm_epymarl.runs.checkpoints import read_manifest

    if not config.get("save_model") or config.get("evaluate") or config.get("save_replay"):
        return
    newer = []
    for folder in step_folders(models):
        if int(folder.name) <= step:
            break
        try:
            read_manifest(folder)
        except ValueError:  # half-written or corrupt: nothing to keep (the resume would skip it too)
            continue
        newer.append(folder.name)
    if newer:
        raise UserError(f"checkpoint_path {path}: resuming from step {step} with save_model=True would overwrite "
                        f"this run's newer checkpoint(s) {', '.join(sorted(newer, key=int))} in {models}: resume "
                        f"from the newest (drop load_step), copy {models / str(step)} into a folder of its own and "
                        "give that, or set save_model=False")


def _check_same_run(config: dict, manifest: dict, folder: Path, map_: str | None) -> None:
    """The algorithm and map recorded in the checkpoint are the run's (else the host's load fails on
    the first layer whose size differs, or loads a policy for another scenario)."""
    saved_alg, saved_map = manifest.get("algorithm"), manifest.get("map")
    alg = config.get("name")
    if saved_alg and alg and saved_alg != alg:
        raise UserError(f"checkpoint_path: {folder} is a checkpoint of --config={saved_alg} (on {saved_map}), "
                        f"not of this run's --config={alg}: give a {alg} checkpoint, or run --config={saved_alg}")
    if saved_map and map_ and saved_map != map_:
        raise UserError(f"checkpoint_path: {folder} is a checkpoint of {saved_alg or alg} on map {saved_map}, "
                        f"not on this run's map {map_}: give a checkpoint of {map_}, or run on {saved_map}")


def config_changes(saved: dict, current: dict) -> dict[str, tuple]:
    """{key: (checkpoint's value, this run's value)} for each training key set in both that differs."""
    # JSON's view of both (tuples are lists, numbers compare by value), as the manifest stored it.
    saved = flatten(json.loads(json.dumps(saved, default=str)))
    current = flatten(json.loads(json.dumps(current, default=str)))
    return {k: (saved[k], v) for k, v in current.items()
            if k in saved and saved[k] != v and k.split(".")[0] not in NOT_TRAINING}


def describe_changes(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())

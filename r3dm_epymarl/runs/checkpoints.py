"""Checkpoint folders: the manifest beside the model files, atomic writes, the newest usable one.

A checkpoint is the host's folder `<models>/<t_env>/` (the learner's files) plus the plug-in's
`run_state.pt.gz` and, written last, `checkpoint.json`. A folder without a readable manifest, or whose
files no longer match the sizes and hashes the manifest recorded, is partial (a kill during the save)
or corrupt, and resume skips it for the one before.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import torch as th

MANIFEST = "checkpoint.json"
RUN_STATE = "run_state.pt.gz"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: a kill leaves the old file or the new."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(path: Path, state: dict) -> dict:
    """torch.save, gzip level 1 (buffers are mostly zeros and repeats), atomically; returns the file's
    manifest entry (bytes, sha256), hashed from memory rather than read back."""
    raw = io.BytesIO()
    th.save(state, raw)
    data = gzip.compress(raw.getvalue(), compresslevel=1)
    atomic_write_bytes(path, data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def load_state(path: Path) -> dict:
    with open(path, "rb") as f:
        raw = gzip.decompress(f.read())
    return th.load(io.BytesIO(raw), map_location="cpu", weights_only=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: dict, known: dict | None = None) -> None:
    """Record every file of the checkpoint (size, sha256; `known` entries, by file name, are not hashed
    again), then write the manifest itself, last."""
    folder = Path(folder)
    known = known or {}
    files = {p.name: known.get(p.name) or {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    atomic_write_bytes(folder / MANIFEST, json.dumps({**manifest, "files": files}, indent=1, default=str).encode())


def read_manifest(folder: Path) -> dict:
    """The manifest of a complete, intact checkpoint; ValueError (one line) otherwise."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"{folder}: no {MANIFEST} (a save that did not finish)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    for name, expected in manifest.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise ValueError(f"{folder}: {name} is missing")
        if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
            raise ValueError(f"{folder}: {name} does not match its manifest (corrupt or half-written)")
    return manifest


def step_folders(models: Path) -> list[Path]:
    """The host's checkpoint folders under `models` (named by t_env), newest first."""
    models = Path(models)
    if not models.is_dir():
        return []
    return sorted((p for p in models.iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name), reverse=True)


def newest_usable(models: Path, report=print, near: int | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint under `models` that is complete and intact (with `near`: the intact one
    whose t_env is closest to it, the host's rule for load_step); each better-placed one that is not
    intact is reported in one line ("skipping checkpoint ...") and skipped."""
    folders = step_folders(models)
    if near:
        folders.sort(key=lambda f: abs(int(f.name) - near))
    for folder in folders:
        try:
            return folder, read_manifest(folder)
        except ValueError as exc:
            report(f"skipping checkpoint {exc}")
    return None


def prune_run_states(models: Path, keep: int) -> None:
    """Delete the run state of all but the newest `keep` intact checkpoints under `models`; their
    manifests are rewritten to say they hold models only (a resume from them is not exact)."""
    kept = 0
    for folder in step_folders(models):
        if not (folder / RUN_STATE).is_file() or not (folder / MANIFEST).is_file():
            continue
        kept += 1
        if kept <= max(keep, 1):
            continue
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / RUN_STATE).unlink()
        manifest.pop("files", None)
        manifest["exact"] = False
        manifest.setdefault("notes", {})["run_state"] = f"pruned: only the newest {keep} checkpoints keep one"
        write_manifest(folder, manifest)

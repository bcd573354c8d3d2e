"""A full disk, met before it costs anything: a checkpoint is not started without room for it (and
Sacred's JSON files are replaced whole, hosts/sacred.py, so a failed write leaves the last
good copy).

Without this, a run whose disk filled up died in a torch.save `iostream error` with six tracebacks, a
run.json cut mid-way (no status), an empty metrics.json and a half-written checkpoint.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.runs.divergence import controller_and_mixer_parameters

MARGIN = 1.25  # room for a checkpoint: its estimated size times this ...
RESERVE = 1 << 20  # ... plus 1 MiB for Sacred's run.json, metrics.json and the console log


class DiskFull(UserError, OSError):
    """Not enough free space to write what the run must write next."""


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def episodes_stored(buffer) -> int:
    return int(getattr(buffer, "episodes_in_buffer", 0) or 0)


def estimate_checkpoint_bytes(learner, buffer) -> int:
    """A first checkpoint's size, from above: the controller's and mixer's parameters four times
    (weights, a target copy, Adam's two moments) and the filled part of the replay buffer uncompressed."""
    params = controller_and_mixer_parameters(learner)
    data = getattr(buffer, "data", None)
    tensors = [*(getattr(data, "transition_data", None) or {}).values(), *(getattr(data, "episode_data", None) or {}).values()]
    size = max(1, int(getattr(buffer, "buffer_size", 1) or 1))
    return 4 * _nbytes(params) + _nbytes(tensors) * min(episodes_stored(buffer), size) // size


def next_checkpoint_bytes(last_bytes: int, last_episodes: int, episodes_now: int) -> int:
    """The next checkpoint's size from the last one's: the buffer it holds grows with the episodes stored."""
    return last_bytes * max(1.0, episodes_now / max(1, last_episodes))


def check_room(path: Path, needed: int, t_env: int, last: int | None) -> None:
    """DiskFull (one line) if the file system of `path` has less than needed * MARGIN + RESERVE free."""
    free = free_bytes(path)
    want = int(needed * MARGIN) + RESERVE
    if free >= want:
        return
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    size = f"the last checkpoint took {mib(last)}" if last else f"estimated {mib(needed)}"
    raise DiskFull(f"no space left for the checkpoint at t_env={t_env}: {mib(free)} free at {path} ({size}); "
                   "the run stopped before writing it (metrics so far are kept). Free space, or put the results "
                   "on another disk (--base-dir, local_results_path)")

"""A grid's cell: its folder and command, whether it finished, where it continues from, and the
process that runs it (`run_cell`: the same for the local pool, a Ray task and a Slurm job), guarded by a
lock so that no cell is trained twice at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    algorithm: str
    map: str
    seed: int
    folder: Path
    argv: list[str] = field(default_factory=list)  # for `python -m r3dm_epymarl`

    @property
    def label(self) -> str:
        return f"{self.algorithm} {self.map} seed {self.seed}"


def finished(cell: Cell) -> bool:
    """A Sacred run of this cell completed (a failed or killed one does not count)."""
    for run_json in cell.folder.glob("results/sacred/*/*/*/run.json"):
        try:
            if json.loads(run_json.read_text()).get("status") == "COMPLETED":
                return True
        except (OSError, ValueError):  # a run killed while writing run.json
            continue
    return False


def resume_point(cell: Cell, report=print) -> tuple[Path, int] | None:
    """The cell's newest intact checkpoint (folder of step folders, t_env), if it has one. Newer
    checkpoints that are half-written or corrupt are reported in one line each and skipped."""
    from r3dm_epymarl.runs.checkpoints import MANIFEST, newest_usable

    best = None
    # A checkpoint is <checkpoint_path>/<t_env>/: EPyMARL's results/models/<run>/, PyMARLzoo+'s .../models/.
    for models in sorted({m.parent.parent for m in cell.folder.rglob(MANIFEST)}):
        found = newest_usable(models, report=lambda line: report(f"compare: {cell.label}: {line}"))
        if found and (best is None or found[1]["t_env"] > best[1]):
            best = (models, int(found[1]["t_env"]))
    return best


def with_resume(cell: Cell, report=print) -> list[str]:
    """The cell's command, continued from its newest intact checkpoint where it has one."""
    point = resume_point(cell, report)
    if point is None:
        return cell.argv
    models, t_env = point
    report(f"compare: {cell.label}: continuing from its checkpoint at t_env {t_env:,}")
    return [*cell.argv, f"checkpoint_path={models}", f"load_step={t_env}"]


def cell_env(threads: int, protocol: dict) -> dict:
    """What a cell's process adds to its node's environment: cells share a machine, so each gets a
    share of the cores instead of every one starting a thread per core; and the grid's protocol."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore", **protocol}


def run_cell(argv: list[str], folder: str, env_updates: dict, stop_path: str | None = None,
             ignore_signals: tuple = ()) -> tuple[int, float, str]:
    """One cell as its own process (also the body of a Ray task, so it reads the environment of the
    node it runs on): exit code, seconds, last error line. The cell writes its progress to
    FOLDER/progress.json for the grid's status line. A cell another process is running (a second
    compare over the same folder, or a cell left running by a killed compare) is not started twice.
    Once `stop_path` exists (the grid was stopped: compare_stop.py) the cell is stopped, or not started.
    `ignore_signals`: signals the cell's process ignores (a Slurm job's early warning, meant for its parent)."""
    from r3dm_epymarl.experiments.compare_stop import NOT_STARTED, stop_requested, wait_cell
    from r3dm_epymarl.runs.progress import PROGRESS_FILE

    os.makedirs(folder, exist_ok=True)
    with CellLock(folder) as lock:
        if not lock.held:
            return BUSY, 0.0, f"another process is running this cell ({lock.holder}); wait for it or stop it"
        if stop_requested(stop_path):
            return NOT_STARTED, 0.0, "not started: the grid was stopped"
        env = {**os.environ, **env_updates, PROGRESS_FILE: os.path.join(folder, "progress.json")}
        if os.path.exists(env[PROGRESS_FILE]):  # a previous attempt's figures
            os.remove(env[PROGRESS_FILE])
        start = time.time()
        log_path = os.path.join(folder, "cell.log")
        with open(log_path, "a") as log:
            log.write(f"\n$ python -m r3dm_epymarl {' '.join(argv)}\n")
            log.flush()
            # The cell inherits the lock: should this process be killed, the cell still holds it.
            proc = subprocess.Popen([sys.executable, "-m", "r3dm_epymarl", *argv], cwd=folder, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    pass_fds=lock.fds, preexec_fn=_ignoring(ignore_signals))
            lock.note(f"pid {proc.pid}")
            code = wait_cell(proc, stop_path)
    return code, time.time() - start, _last_error(log_path) if code else ""


BUSY = 75  # EX_TEMPFAIL: the cell is running elsewhere


def _ignoring(signals: tuple):
    """A preexec_fn setting `signals` to SIG_IGN in the child (an ignored signal stays ignored across exec)."""
    if not signals:
        return None

    def ignore() -> None:
        import signal

        for signum in signals:
            signal.signal(signum, signal.SIG_IGN)
    return ignore


class CellLock:
    """An exclusive `flock` on FOLDER/cell.lock, taken without waiting; `holder` names who has it."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, "cell.lock")
        self.file = None
        self.held = False
        self.holder = ""

    @property
    def fds(self) -> tuple:
        return (self.file.fileno(),) if self.held and self.file is not None else ()

    def __enter__(self) -> CellLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unguarded
            self.held = True
            return self
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.held = True
        except BlockingIOError:  # another process holds it
            self.file.seek(0)
            self.holder = self.file.read().strip() or "pid unknown"
        except OSError:  # a file system without flock (some network mounts): run unguarded
            self.held = True
        return self

    def note(self, text: str) -> None:
        if self.file is not None and self.held:
            self.file.seek(0)
            self.file.truncate()
            self.file.write(f"{text} on {os.uname().nodename}")
            self.file.flush()

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # releases the lock (the cell's inherited copy closed when it exited)


def _last_error(log_path: str) -> str:
    with open(log_path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower():
            return line[:200]
    return lines[-1][:200] if lines else ""

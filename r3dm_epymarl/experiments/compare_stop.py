"""Stopping a `compare` grid on SIGTERM (Slurm preemption, `kill`) or Ctrl-C without orphaning its cells.

Each cell is its own `r3dm-epymarl run` process (a child of compare, or of a Ray worker on another
node). On a signal, compare writes a stop file into every cell folder of the grid, named after this
compare (host and pid, so a concurrent compare's cells are not touched); the code that waits on a cell
(`wait_cell`, on whichever node runs it) sees it within a second and sends the cell SIGTERM, and a cell
not started yet is not started. Each running cell then stops as a run does on SIGTERM (a checkpoint of
its current step, metrics flushed, Sacred run INTERRUPTED); compare waits for all of them, prints one
line, and exits 128 + the signal number. The same command again continues every stopped cell.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading

from r3dm_epymarl.runs.interrupt import SIGNALS, signal_name

POLL_SECONDS = 1.0
NOT_STARTED = 79  # run_cell's code for a cell it did not start because the grid was stopped


class GridStop:
    def __init__(self, folders: list[str]):
        self.folders = [str(f) for f in folders]
        self.token = f"{os.uname().nodename}-{os.getpid()}"
        self.signum: int | None = None

    def path(self, folder: str) -> str:
        return os.path.join(str(folder), f".stop-{self.token}")

    def install(self) -> dict:
        """Take over SIGTERM and SIGINT (again after `ray.init`, which sets its own SIGTERM handler);
        the handlers before, for `uninstall`."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self._handle) for signum in SIGNALS}

    def uninstall(self, previous: dict) -> None:
        """Put the handlers before back and remove this compare's stop files."""
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        self.cleanup()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            return  # already stopping: the cells are saving their checkpoints
        self.signum = signum
        for folder in self.folders:
            try:
                os.makedirs(folder, exist_ok=True)  # a cell not started yet: its run_cell checks first
                with open(self.path(folder), "w") as f:
                    f.write(f"{signal_name(signum)} to compare pid {os.getpid()}\n")
            except OSError:
                pass

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    def cleanup(self) -> None:
        for folder in self.folders:
            try:
                os.remove(self.path(folder))
            except OSError:
                pass


def stop_requested(stop_path: str | None) -> bool:
    return bool(stop_path) and os.path.exists(stop_path)


def wait_cell(proc: subprocess.Popen, stop_path: str | None) -> int:
    """The cell's exit code; it is sent SIGTERM once its grid's stop file appears, or when this process
    is itself being stopped (a Ray worker's SIGTERM, a cancelled task), and waited for either way."""
    asked = False
    while True:
        try:
            return proc.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if not asked and stop_requested(stop_path):
                proc.send_signal(signal.SIGTERM)
                asked = True
        except BaseException:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait()  # it saves a checkpoint and exits: it must not train on unseen
            raise

"""Stopping a run cleanly on SIGTERM (what Slurm sends on preemption, and plain `kill`) or SIGINT (Ctrl-C).

The handler only notes the signal: an exception raised from a signal handler lands wherever the main
thread is, e.g. inside a C extension's import (jaxlib segfaults) or a gc callback (where it is dropped).
The hooked run loop acts on it at safe points: before the host builds anything, just before the loop,
and at the end of every iteration, where it saves a checkpoint of that step (when save_model is on: never
a half-written one) and raises `RunInterrupted`. Sacred treats it as a KeyboardInterrupt: its last
heartbeat writes every metric logged so far to metrics.json and the run is marked INTERRUPTED. The CLI
prints it as one line with the command that resumes the run, and exits 128 + the signal number (143 for
SIGTERM, 130 for Ctrl-C). A second Ctrl-C stops at once; a signal after the loop's end lets the run complete.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C (SIGINT)"}


def signal_name(signum: int) -> str:
    return _NAMES.get(signum) or signal.Signals(signum).name


def command_prefix() -> list[str]:
    """How this process was started: `python -m r3dm_epymarl` or the `r3dm-epymarl` console script."""
    return ["python", "-m", "r3dm_epymarl"] if sys.argv[0].endswith("__main__.py") else ["r3dm-epymarl"]


def resume_argv(argv: list[str], checkpoint: str) -> list[str]:
    """`argv` (a host command line) continued from the checkpoint folder `checkpoint`."""
    kept = [a for a in argv if not a.startswith(("checkpoint_path=", "load_step="))]
    return [*kept, *([] if "with" in kept else ["with"]), f"checkpoint_path={checkpoint}"]


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal. Sacred catches KeyboardInterrupts and marks the run with STATUS."""

    STATUS = "INTERRUPTED"

    def __init__(self, signum: int, t_env: int | None = None, checkpoint: str | None = None,
                 saved_now: bool = False, save_model: bool | None = None, at_once: bool = False):
        super().__init__(signal_name(signum))
        self.signum, self.t_env, self.checkpoint = signum, t_env, checkpoint
        self.saved_now, self.save_model, self.at_once = saved_now, save_model, at_once
        self.argv: list[str] | None = None  # the command that started the run (set by the launcher)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def line(self, command: list[str] | None = None) -> str:
        """One line: where the run stopped, what was kept, and the command that resumes it."""
        command = command if command is not None else (
            [*command_prefix(), *self.argv] if self.argv else None)
        where = f" at t_env {self.t_env:,}" if self.t_env is not None else " before its first training iteration ended"
        head = f"stopped by {signal_name(self.signum)}{where}" + (
            " (a second Ctrl-C: at once)" if self.at_once else "")
        if self.checkpoint:
            kept = "checkpoint saved at this step" if self.saved_now else "no checkpoint at this step (an earlier one)"
            resume = (f"resume with: {shlex.join(resume_argv(command, self.checkpoint))}" if command else
                      f"resume with the same command plus checkpoint_path={self.checkpoint}")
            return f"{head}; {kept}, metrics saved, Sacred run INTERRUPTED; {resume}"
        if self.t_env is None:
            return f"{head}; nothing to resume: run the same command again"
        why = "save_model is off" if self.save_model is False else "no checkpoint was written"
        return (f"{head}; metrics saved, Sacred run INTERRUPTED; not resumable ({why}): run the same command "
                "again to start over, with save_model=True to make it resumable")


class StopRequest:
    """The process's SIGTERM/SIGINT handlers: a signal is noted (`signum`) for the run loop's hooks to act
    on (`stop_if_asked`); only a second Ctrl-C raises at once."""

    def __init__(self):
        self.pid: int | None = None
        self.signum: int | None = None
        self.new_run()

    def new_run(self) -> None:
        """Forget the last run's figures (not a signal that is waiting to be acted on)."""
        self.t_env: int | None = None
        self.checkpoint: str | None = None  # the run's newest checkpoint folder (models/<run>/)
        self.save_model: bool | None = None

    def install(self) -> dict | None:
        """Take over SIGTERM and SIGINT (main thread only); the previous handlers, for `uninstall`."""
        if threading.current_thread() is not threading.main_thread():
            return None
        self.pid, self.signum = os.getpid(), None
        return {s: signal.signal(s, self._handle) for s in SIGNALS}

    @staticmethod
    def uninstall(previous: dict | None) -> None:
        for signum, handler in (previous or {}).items():
            signal.signal(signum, handler)

    def stop_if_asked(self) -> None:
        """At a safe point with nothing to save: raise if a signal is waiting."""
        if self.signum is not None:
            raise self.interrupted(self.signum)

    @property
    def installed(self) -> bool:
        return self.pid == os.getpid() and signal.getsignal(signal.SIGTERM) == self._handle

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self.pid:
            # A forked child (the parallel runner's env workers): Ctrl-C reaches the whole process group,
            # the parent stops it; SIGTERM (multiprocessing's terminate at exit) ends it as by default.
            if signum == signal.SIGTERM:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if self.signum is None or signum != signal.SIGINT:
            self.signum = self.signum or signum  # repeated SIGTERMs (Slurm, compare) change nothing
            return
        raise self.interrupted(signum, at_once=True)  # a second Ctrl-C: the user will not wait

    def interrupted(self, signum: int, t_env: int | None = None, checkpoint: Path | None = None,
                    at_once: bool = False) -> RunInterrupted:
        """The exception to raise; quiets Sacred's own "Aborted after ..." line (ours replaces it)."""
        _quiet_sacred_abort()
        saved_now = checkpoint is not None
        folder = str(Path(checkpoint).parent.resolve()) if saved_now else self.checkpoint
        return RunInterrupted(signum, t_env if t_env is not None else self.t_env, folder, saved_now=saved_now,
                              save_model=self.save_model, at_once=at_once)


STOP = StopRequest()


class _DropSacredAbort(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Aborted after")


def _quiet_sacred_abort() -> None:
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    for handler in {h for logger in loggers for h in logger.handlers}:
        if not any(isinstance(f, _DropSacredAbort) for f in handler.filters):
            handler.addFilter(_DropSacredAbort())


def print_uncaught_as_one_line() -> None:
    """For runs started without the CLI (a patched `python src/main.py`): an uncaught RunInterrupted
    prints its one line instead of a traceback."""
    previous = sys.excepthook
    if getattr(previous, "_r3dm_epymarl", False):
        return
    from r3dm_epymarl.hosts.interventions import require

    require("excepthook")  # the hook it chains to takes (type, value, traceback)

    def hook(kind, value, trace):
        if isinstance(value, RunInterrupted):
            print(f"r3dm-epymarl: {value.line(['python', *sys.argv])}", file=sys.stderr, flush=True)
        else:
            previous(kind, value, trace)

    hook._r3dm_epymarl = True
    sys.excepthook = hook

"""The live progress of a run: t_env / t_max, env steps/s, ETA, the last test win rate (or return).

On a terminal, a rich progress bar; otherwise (CI, log files, Sacred's captured output) a plain line
at most every `R3DM_EPYMARL_PROGRESS_SECONDS` (default 30). With `R3DM_EPYMARL_PROGRESS_FILE` set (compare
does, per cell) the same figures also go to that JSON file, for a grid view.
"""
from __future__ import annotations

import json
import os
import sys
import time

from r3dm_epymarl.runs.checkpoints import atomic_write_bytes

PROGRESS_FILE = "R3DM_EPYMARL_PROGRESS_FILE"
PROGRESS_SECONDS = "R3DM_EPYMARL_PROGRESS_SECONDS"
TEST_KEYS = (("test_battle_won_mean", "test win rate"), ("test_return_mean", "test return"))


def format_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def last_test(logger) -> tuple[str, float] | None:
    stats = getattr(logger, "stats", {}) or {}
    for key, label in TEST_KEYS:
        if stats.get(key):
            return label, float(stats[key][-1][1])
    return None


class Progress:
    def __init__(self, t_max: int, every: float, file: str | None, tty: bool):
        self.t_max, self.every, self.file = t_max, every, file
        self.start_time = time.time()
        self.start_t = 0
        self.last_print = self.last_file = 0.0
        self.bar = None
        if tty:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self.bar = RichProgress(TextColumn("t_env {task.completed:,.0f}/{task.total:,.0f}"), BarColumn(),
                                    TextColumn("{task.fields[rate]} steps/s {task.fields[test]}"),
                                    TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task("train", total=t_max, rate="-", test="")
            self.bar.start()

    @classmethod
    def for_run(cls, args) -> "Progress":
        every = float(os.environ.get(PROGRESS_SECONDS, "30"))
        return cls(int(args.t_max), every, os.environ.get(PROGRESS_FILE), tty=sys.stderr.isatty())

    def resumed(self, t_env: int) -> None:
        self.start_t = t_env
        self.start_time = time.time()

    def figures(self, t_env: int, logger=None) -> dict:
        elapsed = max(time.time() - self.start_time, 1e-9)
        rate = (t_env - self.start_t) / elapsed
        test = last_test(logger) if logger is not None else None
        return {"t_env": t_env, "t_max": self.t_max, "steps_per_s": rate,
                "eta_s": (self.t_max - t_env) / rate if rate > 0 else None,
                "test": {"label": test[0], "value": test[1]} if test else None, "time": time.time()}

    @staticmethod
    def line(f: dict) -> str:
        eta = format_seconds(f["eta_s"]) if f.get("eta_s") is not None else "?"
        test = f" | last {f['test']['label']} {f['test']['value']:.3g}" if f.get("test") else ""
        return (f"t_env {f['t_env']:,}/{f['t_max']:,} ({100 * f['t_env'] / max(f['t_max'], 1):.0f}%) | "
                f"{f['steps_per_s']:.0f} steps/s | ETA {eta}{test}")

    def update(self, t_env: int, logger=None, force: bool = False) -> None:
        now = time.time()
        file_due = bool(self.file) and (force or now - self.last_file >= min(self.every, 5.0))
        print_due = self.bar is None and (force or now - self.last_print >= self.every)
        if not (file_due or print_due or self.bar is not None):
            return
        f = self.figures(t_env, logger)
        if file_due:
            atomic_write_bytes(self.file, json.dumps(f).encode())
            self.last_file = now
        if self.bar is not None:
            test = f"| last {f['test']['label']} {f['test']['value']:.3g}" if f["test"] else ""
            self.bar.update(self.task, completed=min(t_env, self.t_max), rate=f"{f['steps_per_s']:.0f}", test=test)
        elif print_due:
            print("r3dm-epymarl: " + self.line(f), file=sys.stderr, flush=True)
            self.last_print = now

    def close(self, t_env: int, logger=None) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        self.update(t_env, logger, force=True)

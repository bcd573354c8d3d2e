"""Test helpers: the CLI in the background, a wait for a line it writes, then a real signal to it (as
Slurm sends SIGTERM on preemption, or a terminal sends Ctrl-C to its foreground process group)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Background:
    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    def wait(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout=timeout)

    def text(self) -> tuple[str, str]:
        return self.stdout.read_text(errors="replace"), self.stderr.read_text(errors="replace")


def start_cli(*args, folder: Path, env: dict | None = None, new_session: bool = False) -> Background:
    """`python -m r3dm_epymarl ARGS` in the background, its output in FOLDER/cli.out and FOLDER/cli.err;
    `new_session`: in a process group of its own, as a terminal's foreground job."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "cli.out", folder / "cli.err"
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "r3dm_epymarl", *args], stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, env=full_env, start_new_session=new_session)
    return Background(proc, out, err)


def wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 600) -> re.Match:
    """The first match of `pattern` in the file at `path`, once it appears; fails if `proc` ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file():
            found = re.search(pattern, path.read_text(errors="replace"))
            if found:
                return found
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {pattern!r} in {path}")
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} in {path} after {timeout} s")


def command_in(line: str, marker: str) -> list[str]:
    """The command a one-line message gives after `marker`, runnable here (`python` is this interpreter)."""
    argv = shlex.split(line.split(marker, 1)[1])
    return [sys.executable, *argv[1:]] if argv[0] == "python" else argv


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

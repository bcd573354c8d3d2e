"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd started from a config
generated in a temporary folder (state, spool, logs, sockets and PID files all there), and stopped by
their PIDs at the end. It installs nothing: `.ci/setup` installs Debian's `slurm-wlm` and `munge` where
it runs as root; elsewhere `missing()` names what is absent and the tests skip with that line.

The daemons run as root (slurmd must, to start jobs as the submitting user), so the cluster needs root.
Clients (sbatch, squeue, scontrol, and submitit, which calls them) find it through SLURM_CONF in `env`.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")


def missing() -> str:
    """Why no cluster can start here ("" when one can)."""
    absent = [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if absent:
        return (f"no real Slurm here ({', '.join(absent)} not found): install Debian's slurm-wlm and munge "
                "(apt-get install slurm-wlm munge; .ci/setup does it as root)")
    if os.geteuid() != 0:
        return "the Slurm daemons must run as root (slurmd starts jobs as their user): run the tests as root"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """`with SlurmCluster(folder) as cluster:` a cluster with one partition, `debug` (the default), on
    this machine's CPUs; `cluster.env` is what a client process needs in its environment."""

    PARTITION = "debug"

    def __init__(self, folder: Path, cpus: int | None = None, memory_mb: int = 4000):
        self.folder = Path(folder)
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.node = socket.gethostname().split(".")[0]
        self.pids: list[int] = []
        self.conf = self.folder / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "log", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        lines = [
            "ClusterName=r3dmtest", f"SlurmctldHost={self.node}", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={f / 'munge' / 'munge.socket'}",
            f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}", f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
            "SchedulerType=sched/backfill", "ReturnToService=2", "SlurmctldTimeout=30", "SlurmdTimeout=30",
            "KillWait=30", "MinJobAge=300", "SlurmctldParameters=enable_configless",
            f"NodeName={self.node} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName={self.PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def _start_munge(self) -> None:
        m = self.folder / "munge"
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        subprocess.run([_program("munged"), "--force", f"--key-file={key}", f"--socket={m / 'munge.socket'}",
                        f"--pid-file={m / 'munged.pid'}", f"--log-file={m / 'munged.log'}",
                        f"--seed-file={m / 'munged.seed'}"], check=True, capture_output=True, timeout=30)
        self.pids.append(int(self._wait_for_file(m / "munged.pid").read_text().split()[0]))

    def _wait_for_file(self, path: Path, timeout: float = 30) -> Path:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if path.is_file() and path.read_text().strip():
                return path
            time.sleep(0.1)
        raise RuntimeError(f"{path} did not appear in {timeout:g} s: see {self.folder / 'log'}")

    def start(self) -> SlurmCluster:
        self._write_config()
        self._start_munge()
        env = {**os.environ, **self.env}
        for daemon, pid_file in (("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
            subprocess.run([_program(daemon), "-f", str(self.conf)], check=True, capture_output=True, env=env,
                           timeout=60)
            self.pids.append(int(self._wait_for_file(self.folder / pid_file).read_text().split()[0]))
        self._wait_until_idle()
        return self

    def _wait_until_idle(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.client_env())
            state = out.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.3)
        raise RuntimeError(f"the node is '{state}' after {timeout:g} s, not idle: see {self.folder / 'log'}")

    def client_env(self) -> dict:
        return {**os.environ, **self.env}

    def scontrol(self, *args: str) -> str:
        return subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True,
                              env=self.client_env()).stdout

    def stop(self) -> None:
        # Jobs first (their processes belong to slurmd's steps), then the daemons, newest first.
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.client_env())
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pids.clear()

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

"""`compare --backend slurm`: each cell of the grid a Slurm job, submitted through submitit (one job
array per submission), requeueable, continuing from its newest checkpoint whenever it starts.

- Submitting prints the job ids and returns (or, with --wait, follows the jobs with each cell's progress
  and prints the report once they have left the queue). Each cell folder keeps its job id in
  `slurm_job.json`; submitit's sbatch files and job logs go to OUT/slurm/.
- The same command again reports every cell's state (finished, running, pending, preempted, failed) and
  submits only the cells that are neither finished nor queued.
- Preemption and requeue (`scontrol requeue`, PreemptMode=REQUEUE): Slurm sends the job's processes
  SIGTERM, the run saves a checkpoint of its step and ends INTERRUPTED (as any run does on SIGTERM), and
  the requeued job continues from that checkpoint, exactly.
- Time limit: submitit asks Slurm for a signal --signal-delay seconds before it (USR2); the cell's job
  passes it to the run as SIGTERM (the run itself ignores USR2), waits for its checkpoint, and requeues
  itself, so a cell longer than one job's time limit continues over several jobs (up to --max-requeues).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

JOB_FILE = "slurm_job.json"  # in a cell's folder: the job that runs (or ran) it
QUEUED = ("pending", "running", "preempted (requeued)")

# Slurm's time formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEMORY = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


# The numeric options' defaults: declared once, and a value other than these given to another backend is refused.
DEFAULTS = {"cpus_per_cell": 1, "gpus": 0, "signal_delay": 120, "max_requeues": 20}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("Slurm (--backend slurm; pip install 'r3dm-epymarl[slurm]')")
    group.add_argument("--partition", help="the partition to submit to (default: the cluster's default)")
    group.add_argument("--time", dest="time_limit", metavar="TIME",
                       help="each job's time limit, as sbatch takes it (MINUTES, H:M:S, D-H:M; default 4:00:00); "
                            "a cell that needs longer continues in a requeued job from its checkpoint")
    group.add_argument("--cpus-per-cell", type=int, default=DEFAULTS["cpus_per_cell"], metavar="N",
                       help="CPUs per job; also the cell's torch threads (default 1)")
    group.add_argument("--mem", metavar="SIZE", help="memory per job, as sbatch takes it (e.g. 8G)")
    group.add_argument("--gpus", type=int, default=DEFAULTS["gpus"], metavar="N",
                       help="GPUs per job (default 0); N >= 1 also runs the cells with use_cuda=True")
    group.add_argument("--account", help="sbatch --account")
    group.add_argument("--qos", help="sbatch --qos")
    group.add_argument("--array-parallelism", type=int, metavar="N",
                       help="at most N of the grid's jobs running at once (default: no limit)")
    group.add_argument("--sbatch", nargs="*", default=[], metavar="KEY=VALUE",
                       help="more sbatch options, e.g. constraint=a100 exclude=node7 (KEY alone for a flag)")
    group.add_argument("--signal-delay", type=int, default=DEFAULTS["signal_delay"], metavar="SECONDS",
                       help="how long before the time limit a cell is told to save and requeue (default 120)")
    group.add_argument("--max-requeues", type=int, default=DEFAULTS["max_requeues"], metavar="N",
                       help="time-limit requeues per cell before it is left failed (default 20; preemptions "
                            "do not count)")
    group.add_argument("--wait", action="store_true",
                       help="follow the jobs until they leave the queue, then print the report")


SLURM_OPTIONS = ("partition", "time_limit", "mem", "account", "qos", "array_parallelism", "sbatch", "wait")
DEFAULT_TIME = "4:00:00"


def parse_time(text: str) -> int:
    """Minutes (rounded up) of a Slurm time limit; ValueError if it is not one."""
    found = _TIME.match(text.strip())
    if not found:
        raise ValueError(text)
    days, first, second, third = found.groups()
    fields = [int(v) for v in (first, second, third) if v is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = (fields + [0, 0])[:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(fields) == 1:  # M
        total = fields[0] * 60
    elif len(fields) == 2:  # M:S
        total = fields[0] * 60 + fields[1]
    else:  # H:M:S
        total = (fields[0] * 60 + fields[1]) * 60 + fields[2]
    if total <= 0:
        raise ValueError(text)
    return -(-total // 60)


def extra_sbatch(items: list[str]) -> dict:
    """--sbatch KEY=VALUE ... as submitit's additional parameters (KEY alone: a flag)."""
    from r3dm_epymarl.errors import UserError

    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
            raise UserError(f"--sbatch {item}: give sbatch options as KEY=VALUE (e.g. constraint=a100) or KEY")
        extra[key] = value if sep else True
    return extra


def check_options(args) -> None:
    """Slurm options with another backend, and bad Slurm input, fail here in one line: before any cell
    is submitted (and before a Sacred run exists)."""
    from r3dm_epymarl.errors import UserError

    if args.backend != "slurm":
        given = [name for name in SLURM_OPTIONS if getattr(args, name, None) not in (None, False, [])]
        given += [name for name, default in DEFAULTS.items() if getattr(args, name) != default]
        if given:
            option = "--" + given[0].replace("time_limit", "time").replace("_", "-")
            raise UserError(f"{option} is for --backend slurm (the {args.backend} backend runs every cell "
                            f"{'on this machine' if args.backend == 'local' else 'on Ray'}): add --backend slurm, "
                            f"or drop {option}")
        return
    try:
        args.time_minutes = parse_time(args.time_limit or DEFAULT_TIME)
    except ValueError:
        raise UserError(f"--time {args.time_limit}: not a Slurm time limit: give MINUTES, H:M:S or D-H:M:S "
                        "(e.g. 90, 4:00:00, 1-12:00)") from None
    if args.mem is not None and not _MEMORY.match(args.mem):
        raise UserError(f"--mem {args.mem}: give a size as sbatch takes it, e.g. 8G or 16000M")
    for name, least in (("cpus_per_cell", 1), ("gpus", 0), ("array_parallelism", 1), ("signal_delay", 1),
                        ("max_requeues", 0)):
        value = getattr(args, name)
        if value is not None and value < least:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be at least {least}")
    if args.signal_delay >= args.time_minutes * 60:
        raise UserError(f"--signal-delay {args.signal_delay}: must be shorter than --time "
                        f"({args.time_minutes} min), or a job is told to stop as it starts")
    args.sbatch_extra = extra_sbatch(args.sbatch)
    if args.dry_run:
        return
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError("--backend slurm needs submitit: pip install 'r3dm-epymarl[slurm]'") from None
    for program in ("sbatch", "squeue", "scontrol", "sinfo"):
        if shutil.which(program) is None:
            raise UserError(f"--backend slurm: no `{program}` on PATH: run compare on a machine of the cluster "
                            "(a login node), or load Slurm's module (e.g. module load slurm)")
    partitions = _partitions()
    if args.partition is not None and args.partition not in partitions:
        raise UserError(f"--partition {args.partition}: the cluster has no such partition: choose from "
                        f"{', '.join(partitions) or '(none listed by sinfo)'}")


def _partitions() -> list[str]:
    from r3dm_epymarl.errors import UserError

    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"--backend slurm: sinfo did not answer ({exc}): is the cluster up?") from None
    if out.returncode != 0:
        raise UserError(f"--backend slurm: sinfo failed: {(out.stderr or out.stdout).strip()[:200]}")
    return [p.strip().rstrip("*") for p in out.stdout.split() if p.strip()]


def sbatch_parameters(args, name: str) -> dict:
    """submitit's SlurmExecutor parameters for the grid's jobs (sbatch options by another name)."""
    parameters = {"time": args.time_minutes, "cpus_per_task": args.cpus_per_cell, "nodes": 1,
                  "ntasks_per_node": 1, "job_name": name, "signal_delay_s": args.signal_delay,
                  "additional_parameters": {"requeue": True, **args.sbatch_extra}}
    for key, value in (("partition", args.partition), ("mem", args.mem), ("account", args.account),
                       ("qos", args.qos), ("array_parallelism", args.array_parallelism)):
        if value is not None:
            parameters[key] = value
    if args.gpus:
        parameters["gpus_per_node"] = args.gpus
    return parameters


def cell_argv(cell, args) -> list[str]:
    """A cell's run command on a node with GPUs when --gpus asks for them."""
    return [*cell.argv, "use_cuda=True"] if args.gpus else cell.argv


class CellJob:
    """What one Slurm job runs: the cell, continued from its newest checkpoint. submitit pickles it at
    submission and calls it in the job (and again in every requeued job)."""

    def __init__(self, cell, env: dict):
        self.cell = cell
        self.env = env

    def __call__(self) -> int:
        import submitit

        from r3dm_epymarl.experiments.cells import run_cell, with_resume

        usr = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        job_id = submitit.JobEnvironment().job_id
        folder = str(self.cell.folder)
        stop = os.path.join(folder, f".stop-slurm-{job_id}")
        if os.path.exists(stop):  # a previous attempt of this job was told to stop
            os.remove(stop)
        requeue = signal.getsignal(usr)  # submitit's: checkpoint() below, `scontrol requeue`, exit

        def stop_cell(signum, frame):  # time limit near (or a preemption warning): the run gets SIGTERM
            with open(stop, "w") as f:
                f.write(f"signal {signum} to job {job_id}\n")

        signal.signal(usr, stop_cell)
        argv = with_resume(self.cell)
        code, seconds, error = run_cell(argv, folder, self.env, stop_path=stop, ignore_signals=(usr,))
        if os.path.exists(stop):  # the run saved its checkpoint and stopped: requeue this job
            os.remove(stop)
            print(f"compare: {self.cell.label}: stopped on Slurm's warning signal after {seconds:.0f} s (time "
                  "limit near); requeueing", flush=True)
            requeue(usr, None)
        if code == 128 + signal.SIGTERM:  # Slurm's SIGTERM (preemption, requeue, scancel): checkpoint saved
            print(f"compare: {self.cell.label}: stopped by SIGTERM; a requeued job continues from its checkpoint",
                  flush=True)
            return code
        if code != 0:
            raise RuntimeError(f"{self.cell.label}: exit {code}: {error} (log: {folder}/cell.log)")
        return 0

    def checkpoint(self):
        """For submitit's requeue: the same job again (it finds the run's newest checkpoint itself)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _queue() -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} for every job in the queue, array tasks one by one."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True, timeout=120)
    jobs = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            jobs[parts[0]] = (parts[1], parts[2])
    return jobs


def _newest_status(cell) -> str | None:
    runs = []
    for run_json in cell.folder.glob("results/sacred/*/*/*/run.json"):
        try:
            info = json.loads(run_json.read_text())
        except (OSError, ValueError):
            continue
        runs.append((info.get("start_time") or "", info.get("status")))
    return max(runs)[1] if runs else None


def cell_state(cell, queue: dict) -> tuple[str, str]:
    """(state, the cell's job id or ''): finished, running, pending, preempted (requeued), preempted
    (stopped, not queued), failed, or new (never submitted)."""
    from r3dm_epymarl.experiments.cells import finished

    try:
        job_id = json.loads((cell.folder / JOB_FILE).read_text())["job_id"]
    except (OSError, ValueError, KeyError):
        job_id = ""
    if finished(cell):
        return "finished", job_id
    if job_id in queue:
        state, _ = queue[job_id]
        if state in ("RUNNING", "COMPLETING", "CONFIGURING"):
            return "running", job_id
        if state in ("SUSPENDED", "PREEMPTED", "STOPPED"):
            return "preempted (requeued)", job_id
        return ("preempted (requeued)" if _newest_status(cell) == "INTERRUPTED" else "pending"), job_id
    if not job_id:
        return "new", ""
    return ("preempted" if _newest_status(cell) == "INTERRUPTED" else "failed"), job_id


def submit(cells: list, args, env: dict) -> list[str]:
    """Submit `cells` as one job array; their job ids, each also written to its cell's JOB_FILE."""
    import submitit

    executor = submitit.SlurmExecutor(folder=Path(args.out).resolve() / "slurm" / "%j",
                                      max_num_timeout=args.max_requeues)
    executor.update_parameters(**sbatch_parameters(args, f"r3dm-{Path(args.out).resolve().name}"))
    with executor.batch():
        jobs = [executor.submit(CellJob(cell, env)) for cell in cells]
    for cell, job in zip(cells, jobs):
        cell.folder.mkdir(parents=True, exist_ok=True)
        (cell.folder / JOB_FILE).write_text(json.dumps({"job_id": job.job_id, "submitted": time.time(),
                                                        "log": str(job.paths.stdout)}) + "\n")
    return [job.job_id for job in jobs]


def dry_run(cells: list, args, env_protocol: dict) -> None:
    parameters = sbatch_parameters(args, f"r3dm-{Path(args.out).resolve().name}")
    options = " ".join(f"{k}={v}" for k, v in parameters.items() if k != "additional_parameters")
    extra = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}")
                     for k, v in parameters["additional_parameters"].items())
    print(f"compare: would submit {len(cells)} job(s) as one array through submitit: {options} {extra}",
          file=sys.stderr, flush=True)
    settings = " ".join(f"{k}={v}" for k, v in env_protocol.items())
    for cell in cells:
        print(f"cd {cell.folder} && {settings} python -m r3dm_epymarl {' '.join(cell_argv(cell, args))}")


def main(args, cells: list, env_protocol: dict) -> int:
    """Report the grid's states, submit what is neither finished nor queued, and (--wait) follow it."""
    from r3dm_epymarl.experiments.cells import cell_env

    queue = _queue()
    states = {id(c): cell_state(c, queue) for c in cells}
    counts: dict[str, int] = {}
    for state, _ in states.values():
        counts[state] = counts.get(state, 0) + 1
    print(f"compare: {len(cells)} cells in {Path(args.out).resolve()}: "
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), flush=True)
    for cell in cells:
        state, job_id = states[id(cell)]
        if state not in ("finished", "new"):
            print(f"  {cell.label}: {state}" + (f" (job {job_id})" if job_id else "")
                  + (f"; log: {cell.folder / 'cell.log'}" if state == "failed" else ""), flush=True)
    todo = [c for c in cells if states[id(c)][0] not in ("finished", *QUEUED)]
    if todo:
        env = cell_env(args.cpus_per_cell, env_protocol)
        for cell in todo:
            cell.argv = cell_argv(cell, args)
        ids = submit(todo, args, env)
        print(f"compare: submitted {len(todo)} cell(s) to Slurm: "
              + ", ".join(f"{c.label} = job {j}" for c, j in zip(todo, ids)), flush=True)
        print(f"compare: job logs in {Path(args.out).resolve() / 'slurm'}; run the same command again to see "
              "each cell's state (and to resubmit what failed)", flush=True)
    elif not args.wait:
        print("compare: nothing to submit", flush=True)
    if not args.wait:
        return 0
    return follow(cells, args)


def follow(cells: list, args) -> int:
    """--wait: a status line every R3DM_EPYMARL_PROGRESS_SECONDS until no cell is queued; then each
    cell's outcome and the report. Ctrl-C or SIGTERM stops the waiting, not the jobs."""
    from r3dm_epymarl.runs.progress import PROGRESS_SECONDS, Progress

    every = float(os.environ.get(PROGRESS_SECONDS, "30"))

    def stop_waiting(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_waiting)
    try:
        while True:
            queue = _queue()
            states = [(c, *cell_state(c, queue)) for c in cells]
            queued = [(c, s) for c, s, _ in states if s in QUEUED]
            if not queued:
                break
            parts = []
            for cell, state in queued:
                try:
                    figures = json.loads((cell.folder / "progress.json").read_text())
                    parts.append(f"{cell.label}: {state} | {Progress.line(figures)}" if state == "running"
                                 else f"{cell.label}: {state}")
                except (OSError, ValueError):
                    parts.append(f"{cell.label}: {state}")
            done = sum(s == "finished" for _, s, _ in states)
            print(f"compare: {done}/{len(cells)} finished, {len(queued)} queued"
                  + "".join(f"\n  {p}" for p in parts), flush=True)
            time.sleep(every)
    except KeyboardInterrupt:
        print("compare: stopped waiting; the jobs go on in Slurm: run the same command to see their states",
              flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    failures = [(c, s, j) for c, s, j in states if s != "finished"]
    for cell, state, job_id in failures:
        print(f"compare: {cell.label}: {state.upper()} (job {job_id}); log: {cell.folder / 'cell.log'}", flush=True)
    if failures:
        print(f"compare: {len(failures)} of {len(cells)} cells did not finish. Run the same command again: "
              "finished cells are kept, the rest are resubmitted and continue from their checkpoints.", flush=True)
    if not args.no_report and len(failures) < len(cells):
        from r3dm_epymarl.experiments.report import build_report

        text, files = build_report([args.out], out=str(Path(args.out) / "report"),
                                   paper="builtin" if args.paper else None)
        print("\n" + text + "\n\nwrote " + ", ".join(str(f) for f in files))
    return 1 if failures else 0

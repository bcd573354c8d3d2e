"""Train a grid of algorithms x maps x seeds, each cell an ordinary host run with Sacred logging, then
print the report (tables, CSV, curves) for the grid.

Cells run as separate `r3dm-epymarl run` processes, a few at a time (`--jobs`, default: one per core)
or as tasks on a Ray cluster (`--backend ray`). Cell `OUT/<map>/<algorithm>/seed<k>/` holds the
cell's Sacred run (results/sacred/...), models and `cell.log`. Running the same command again keeps
the cells whose Sacred run COMPLETED and runs the rest (failed or unfinished) again.

Example: r3dm-epymarl compare --algorithms qmix cds acorm r3dm --maps 3m 2s3z --seeds 1 2 3 \\
    --env-config smax --t-max 1000000 --out runs/smax
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HELP = "train algorithms x maps x seeds (process pool or Ray), then report them side by side"

# The `with` key that picks the scenario, by env config; anything else uses env_args.map_name.
MAP_KEYS = {"gymma": "env_args.key"}


def add_arguments(parser) -> None:
    parser.add_argument("--algorithms", nargs="+", required=True, metavar="ALG",
                        help="--config names: host ones (qmix, vdn, ...) and the plug-in's (r3dm, acorm, cds, ...)")
    parser.add_argument("--maps", nargs="+", required=True, metavar="MAP",
                        help="env_args.map_name values (smax, sc2v2) or env_args.key values (gymma)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], metavar="SEED",
                        help="(default: 1 2 3)")
    parser.add_argument("--env-config", default="smax", help="the --env-config of every cell (default: smax)")
    parser.add_argument("--t-max", type=int, help="env steps per cell (default: the configs' t_max)")
    parser.add_argument("--with", dest="updates", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more `with` keys for every cell, e.g. test_interval=10000 test_nepisode=32")
    parser.add_argument("--out", default="compare_runs", metavar="DIR",
                        help="the grid's folder; the report goes to DIR/report (default: ./compare_runs)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="cells at once with --backend local (default: one per core)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local process pool, or tasks on a Ray cluster (pip install r3dm-epymarl[ray])")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="an existing Ray cluster (default: start a local one); OUT must be on a file "
                             "system every node sees")
    parser.add_argument("--host", choices=["epymarl", "pymarlzooplus"], help="force a host (see `run --help`)")
    parser.add_argument("--epymarl", metavar="PATH", help="an EPyMARL checkout (default: $EPYMARL_PATH)")
    parser.add_argument("--mongo", metavar="URL", help="also log every cell to MongoDB (else $MONGO_URL if set)")
    parser.add_argument("--checkpoint-interval", type=int, default=10000, metavar="STEPS",
                        help="env steps between a cell's checkpoints (models, buffer, RNG: an exact resume "
                             "after a kill; 0 = none, a killed cell restarts at step 0; default: 10000)")
    parser.add_argument("--test-seed", type=int, default=DEFAULT_TEST_SEED, metavar="N",
                        help="static evaluation: the j-th test episode of every test phase of every cell starts "
                             "from env seed N+j, so every algorithm and seed is tested on the same battles "
                             f"(SMAX, episode runner; default: {DEFAULT_TEST_SEED})")
    parser.add_argument("--no-static-tests", action="store_true",
                        help="test each run on its env's own stream of episodes, as the hosts do")
    parser.add_argument("--dry-run", action="store_true", help="print the cells' commands, run nothing")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--paper", action="store_true",
                        help="overlay the published StarCraft II results in the report (see report --help)")


DEFAULT_TEST_SEED = 1000000  # far from the run seeds, so no test episode replays a seed's first training one


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


# What every row of a grid of two or more algorithms shares, unless --with sets it (then as given) or a
# published per-map preset of that algorithm does (then the preset's, for that row): reward handling
# and exploration. The values are the role algorithms' published ones (ACORM / R3DM: no reward
# standardisation, which their learners refuse; epsilon 1 -> 0.02 over 80k steps, one coin per env).
# Budget, test episodes and interval, buffer, batch and runner come from --t-max / --with for every
# cell, and are the same in every shipped YAML otherwise.
SHARED_PROTOCOL = {"standardise_rewards": False, "epsilon_start": 1.0, "epsilon_finish": 0.02,
                   "epsilon_anneal_time": 80000, "epsilon_coin": "joint"}


def _declared_keys(args, algorithm: str) -> set[str]:
    """The keys a run of `algorithm` can be given: the host's default.yaml and the algorithm's YAML (a
    key neither declares is refused, e.g. epsilon_coin for the host's qmix, epsilon_* for a policy-gradient
    algorithm)."""
    import yaml

    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.launcher import find_config

    host = get_host(args.host, args.epymarl)
    keys: set[str] = set()
    for path in (host.config_dir / "default.yaml", find_config(host, "algs", algorithm)):
        if path is not None and Path(path).is_file():
            keys |= set(yaml.safe_load(Path(path).read_text()) or {})
    return keys


def shared_protocol(args) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """({(algorithm, map): its extra `with` updates}, lines to print): SHARED_PROTOCOL for every row of a
    grid of two or more algorithms (a single algorithm keeps its own config)."""
    from r3dm_epymarl.presets import preset_for

    given = {u.split("=", 1)[0] for u in args.updates if "=" in u}
    if len(set(args.algorithms)) < 2:
        return {}, []
    updates, kept_by_preset, without_coin, undeclared = {}, [], [], {}
    for algorithm in dict.fromkeys(args.algorithms):
        declared = _declared_keys(args, algorithm)
        for map_name in dict.fromkeys(args.maps):
            preset = preset_for(algorithm, map_name)
            extra = []
            for key, value in SHARED_PROTOCOL.items():
                if key in given:
                    continue
                if key in preset:
                    kept_by_preset.append(f"{algorithm} {map_name} {key}={preset[key]}")
                    continue
                if key not in declared:
                    if key == "epsilon_coin" and "epsilon_start" in declared:  # epsilon-greedy, the host's coin
                        without_coin.append(algorithm)
                    elif key != "epsilon_coin":
                        undeclared.setdefault(algorithm, []).append(key)
                    continue
                extra.append(f"{key}={value}")
            updates[(algorithm, map_name)] = extra
    set_keys = [f"{k}={v}" for k, v in SHARED_PROTOCOL.items() if k not in given]
    lines = []
    if set_keys:
        lines.append(f"compare: every row uses {' '.join(set_keys)} (the role algorithms' published protocol; "
                     "a key given in --with is used as given)")
    if given & set(SHARED_PROTOCOL):
        lines.append("compare: as given in --with for every row: "
                     + " ".join(u for u in args.updates if u.split("=", 1)[0] in SHARED_PROTOCOL))
    if kept_by_preset:
        lines.append("compare: published per-map presets keep their own " + "; ".join(kept_by_preset))
    for algorithm, keys in undeclared.items():
        keys = list(dict.fromkeys(keys))  # once, whatever the number of maps
        lines.append(f"compare: {algorithm}'s config has no {', '.join(keys)}: it keeps its own (e.g. no epsilon-greedy)")
    if without_coin:
        names = list(dict.fromkeys(without_coin))
        lines.append(f"compare: {', '.join(names)} {'is a host config' if len(names) == 1 else 'are host configs'}"
                     f" without epsilon_coin: one coin per agent there (run r3dm_qmix for host QMIX with the"
                     f" same exploration as the other rows)")
    return updates, lines


def make_out(out: str) -> None:
    """Create the grid's folder before any cell, or fail in one line: a place the permission check
    passes but nothing can be created (e.g. /proc as root) would otherwise fail in every cell."""
    from r3dm_epymarl.errors import UserError

    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror or exc}): give a folder you can write to") from None


def deduplicate(args) -> list[str]:
    """Drop repeated --algorithms, --maps and --seeds (each cell once: a repeated seed would train the
    same cell twice and count it twice); one line per option that had repeats."""
    lines = []
    for option in ("algorithms", "maps", "seeds"):
        values = getattr(args, option)
        unique = list(dict.fromkeys(values))
        if len(unique) < len(values):
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            lines.append(f"compare: --{option} lists {', '.join(repeated)} more than once: each cell runs once")
            setattr(args, option, unique)
    return lines


def make_cells(args, protocol: dict | None = None) -> list[Cell]:
    """The grid's cells; `protocol`: shared_protocol's updates per (algorithm, map), if computed already."""
    from r3dm_epymarl.experiments.report import safe_name

    map_key = MAP_KEYS.get(args.env_config, "env_args.map_name")
    launcher = [*(["--host", args.host] if args.host else []), *(["--epymarl", args.epymarl] if args.epymarl else [])]
    protocol = shared_protocol(args)[0] if protocol is None else protocol
    cells = []
    for map_name in args.maps:
        for algorithm in args.algorithms:
            for seed in args.seeds:
                folder = Path(args.out).resolve() / safe_name(map_name) / safe_name(algorithm) / f"seed{seed}"
                checkpoints = (["save_model=True", f"save_model_interval={args.checkpoint_interval}"]
                               if args.checkpoint_interval > 0 else [])
                updates = [f"{map_key}={map_name}", f"seed={seed}", *checkpoints, *args.updates,
                           *protocol.get((algorithm, map_name), []),
                           *([f"t_max={args.t_max}"] if args.t_max else []),
                           *([f"mongo_url={args.mongo}"] if args.mongo else [])]
                cells.append(Cell(algorithm, map_name, seed, folder,
                                  ["run", *launcher, "--base-dir", str(folder), f"--config={algorithm}",
                                   f"--env-config={args.env_config}", "with", *updates]))
    return cells


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


RAY_CONNECT_SECONDS = 10.0


def check_ray_address(address: str, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """An existing cluster's address must answer: Ray itself retries a dead one for minutes, printing
    its retries, and ignores SIGTERM meanwhile. One TCP connect with a bounded wait, one line if it fails.
    ("auto" and "local" are Ray's own lookups: left to Ray.)"""
    import socket

    from r3dm_epymarl.errors import UserError

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--ray-address {address}: give HOST:PORT of the cluster's head (e.g. 10.0.0.1:6379, or "
                        "ray://10.0.0.1:10001 for Ray Client), or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"--ray-address {address}: nothing answers there within {timeout:g} s "
                        f"({exc.strerror or type(exc).__name__}); start the cluster (ray start --head) or fix the "
                        "address") from None


def check_names(args) -> None:
    """Unknown algorithm or env config names, and options that would be ignored, fail here, before any
    cell starts."""
    from r3dm_epymarl.errors import UserError
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.launcher import available, check_env_host, find_config

    if args.backend == "ray" and args.ray_address:
        check_ray_address(args.ray_address)
    if args.ray_address and args.backend != "ray":
        raise UserError(f"--ray-address {args.ray_address} is for --backend ray (the {args.backend} backend runs "
                        "every cell on this machine): add --backend ray, or drop --ray-address")
    if args.checkpoint_interval < 0:
        raise UserError(f"--checkpoint-interval {args.checkpoint_interval}: give the env steps between a cell's "
                        "checkpoints, or 0 for none")
    host = get_host(args.host, args.epymarl)
    for name in args.algorithms:
        if find_config(host, "algs", name) is None:
            raise UserError(f"--algorithms: unknown config '{name}': choose from {', '.join(available(host, 'algs'))}")
    if find_config(host, "envs", args.env_config) is None:
        check_env_host(host, args.env_config)
        raise UserError(f"--env-config: unknown config '{args.env_config}': choose from "
                        f"{', '.join(available(host, 'envs'))}")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    if args.t_max is not None and args.t_max < 1:
        raise UserError(f"--t-max {args.t_max}: env steps per cell must be at least 1")


def static_tests_lines(args) -> list[str]:
    if args.no_static_tests:
        return ["compare: --no-static-tests: each run is tested on its env's own stream of episodes"]
    return [f"compare: static tests: the j-th test episode of every test phase of every cell starts from env "
            f"seed {args.test_seed}+j (SMAX; elsewhere a run says it cannot; --no-static-tests to turn off)"]


def protocol_env(args) -> dict:
    """The options of the hooked loop every cell runs with (environment variables, not Sacred keys: the
    host's own configs have no plug-in keys): a final test at t_max, so the report's "final" window ends
    with a measurement there; and static tests unless --no-static-tests."""
    from r3dm_epymarl.runs.loop import TEST_AT_END
    from r3dm_epymarl.runs.static_tests import TEST_SEED

    return {TEST_AT_END: "1", **({} if args.no_static_tests else {TEST_SEED: str(args.test_seed)})}


def cell_env(threads: int, protocol: dict) -> dict:
    """What a cell's process adds to its node's environment: cells share a machine, so each gets a
    share of the cores instead of every one starting a thread per core; and the grid's protocol."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore", **protocol}


def run_cell(argv: list[str], folder: str, env_updates: dict, stop_path: str | None = None) -> tuple[int, float, str]:
    """One cell as its own process (also the body of a Ray task, so it reads the environment of the
    node it runs on): exit code, seconds, last error line. The cell writes its progress to
    FOLDER/progress.json for the grid's status line. A cell another process is running (a second
    compare over the same folder, or a cell left running by a killed compare) is not started twice.
    Once `stop_path` exists (the grid was stopped: compare_stop.py) the cell is stopped, or not started."""
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
                                    pass_fds=lock.fds)
            lock.note(f"pid {proc.pid}")
            code = wait_cell(proc, stop_path)
    return code, time.time() - start, _last_error(log_path) if code else ""


BUSY = 75  # EX_TEMPFAIL: the cell is running elsewhere


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


def _run_local(cells: list[Cell], jobs: int, on_done, status, stop, protocol: dict) -> None:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    env = cell_env(max(1, (os.cpu_count() or 1) // jobs), protocol)
    # Threads only wait on the cells' processes; each cell is a separate Python process.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_cell, c.argv, str(c.folder), env, stop.path(c.folder)): c for c in cells}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=status.every, return_when=FIRST_COMPLETED)
            for future in done:
                on_done(futures[future], *future.result())
            status.show([futures[f] for f in pending if f.running()])


def _run_ray(cells: list[Cell], address: str | None, jobs: int, on_done, status, stop, protocol: dict) -> None:
    try:
        import ray
    except ImportError as exc:
        from r3dm_epymarl.errors import UserError

        raise UserError("--backend ray needs Ray: pip install 'r3dm-epymarl[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        stop.install()  # ray.init replaced the SIGTERM handler
    task = ray.remote(num_cpus=1)(run_cell)  # one core per cell, as Ray schedules it
    env = cell_env(1, protocol)
    pending = {task.remote(c.argv, str(c.folder), env, stop.path(c.folder)): c for c in cells}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=status.every)
        for ref in done:
            on_done(pending.pop(ref), *ray.get(ref))
        status.show([c for c in pending.values() if (c.folder / "progress.json").is_file()])


def main(args) -> int:
    from r3dm_epymarl.paths import check_writable

    check_names(args)
    check_writable(args.out, "--out")  # a file where the grid's folder goes: one line, before any cell
    if not args.no_report:  # and where its report goes, rather than after the cells trained
        check_writable(Path(args.out) / "report", "--out")
    # With --dry-run stdout holds the cells' commands alone (to paste or pipe): what compare says goes to stderr.
    say = sys.stderr if args.dry_run else sys.stdout
    for line in deduplicate(args):
        print(line, file=say, flush=True)
    protocol, said = shared_protocol(args)
    cells = make_cells(args, protocol)
    env_protocol = protocol_env(args)
    for line in said + static_tests_lines(args):
        print(line, file=say, flush=True)
    if not args.dry_run:
        make_out(args.out)
    if args.dry_run:
        settings = " ".join(f"{k}={v}" for k, v in env_protocol.items())
        for cell in cells:
            print(f"cd {cell.folder} && {settings} python -m r3dm_epymarl {' '.join(cell.argv)}")
        return 0
    todo = [c for c in cells if not finished(c)]
    kept = len(cells) - len(todo)
    print(f"compare: {len(cells)} cells in {Path(args.out).resolve()}"
          + (f", {kept} finished before (kept)" if kept else "")
          + (f"; running {len(todo)} on {args.backend}" + (f" x{args.jobs}" if args.backend == "local" else "")
             if todo else ""), flush=True)
    from r3dm_epymarl.experiments.compare_stop import NOT_STARTED, GridStop

    stop = GridStop([c.folder for c in todo])
    for cell in todo:
        cell.argv = with_resume(cell)
    failures, stopped = [], []
    count = [0]
    grid = GridStatus(len(cells), kept)

    def on_done(cell: Cell, code: int, seconds: float, error: str) -> None:
        count[0] += 1
        if stop.signum is not None and code not in (0, BUSY) and not finished(cell):
            t_env = None if code == NOT_STARTED else (resume_point(cell, report=lambda line: None) or (None, None))[1]
            stopped.append((cell, code, t_env))
            at = ("(not started)" if code == NOT_STARTED else f"(checkpoint at t_env {t_env:,})" if t_env is not None
                  else "(no checkpoint: it restarts at step 0)")
            print(f"[{count[0]}/{len(todo)}] {'stopped':16s} {cell.label}  {seconds:.0f} s  {at}", flush=True)
            return
        ok = code == 0 and finished(cell)
        status = "done" if ok else f"FAILED (exit {code})"
        print(f"[{count[0]}/{len(todo)}] {status:16s} {cell.label}  {seconds:.0f} s"
              + ("" if ok else f"  {error}  log: {cell.folder / 'cell.log'}"), flush=True)
        if not ok:
            failures.append(cell)
        grid.finished(ok)

    if todo:
        previous = stop.install()
        try:
            if args.backend == "ray":
                _run_ray(todo, args.ray_address, args.jobs, on_done, grid, stop, env_protocol)
            else:
                _run_local(todo, min(args.jobs, len(todo)), on_done, grid, stop, env_protocol)
        finally:
            stop.uninstall(previous)
    if stop.signum is not None:
        print(_stopped_line(stop, stopped, failures, len(cells)), flush=True)
        return stop.exit_code
    if failures:
        print(f"compare: {len(failures)} of {len(cells)} cells failed: "
              + "; ".join(c.label for c in failures) + ". Fix and run the same command again: finished cells are kept.")
    if not args.no_report and len(failures) < len(cells):
        from r3dm_epymarl.experiments.report import build_report

        text, files = build_report([args.out], out=str(Path(args.out) / "report"),
                                   paper="builtin" if args.paper else None)
        print("\n" + text + "\n\nwrote " + ", ".join(str(f) for f in files))
    return 1 if failures else 0


def _stopped_line(stop, stopped: list, failures: list, total: int) -> str:
    """One line: what the signal did to the grid's cells, and the command that continues them."""
    import shlex

    from r3dm_epymarl.experiments.compare_stop import NOT_STARTED
    from r3dm_epymarl.runs.interrupt import command_prefix, signal_name

    not_started = sum(code == NOT_STARTED for _, code, _ in stopped)
    saved = sum(t_env is not None for _, _, t_env in stopped)
    done = total - len(stopped) - len(failures)
    return (f"compare: stopped by {signal_name(stop.signum)}: {len(stopped) - not_started} running cell(s) stopped "
            f"({saved} at a checkpoint), {not_started} not started, {done} of {total} finished"
            + (f", {len(failures)} failed" if failures else "")
            + f"; none is left running; continue with: {shlex.join([*command_prefix(), *sys.argv[1:]])}")


class GridStatus:
    """The grid's status line: cells done / running / failed, and each running cell's progress (from
    the progress.json it writes), every `R3DM_EPYMARL_PROGRESS_SECONDS` (default 30)."""

    def __init__(self, total: int, done: int):
        from r3dm_epymarl.runs.progress import PROGRESS_SECONDS

        self.total, self.done, self.failed = total, done, 0
        self.every = float(os.environ.get(PROGRESS_SECONDS, "30"))

    def finished(self, ok: bool) -> None:
        self.done += ok
        self.failed += not ok

    def show(self, running: list[Cell]) -> None:
        from r3dm_epymarl.runs.progress import Progress

        parts = []
        for cell in running:
            try:
                figures = json.loads((cell.folder / "progress.json").read_text())
            except (OSError, ValueError):
                parts.append(f"{cell.label}: starting")
                continue
            parts.append(f"{cell.label}: {Progress.line(figures)}")
        print(f"compare: {self.done}/{self.total} done, {len(running)} running, {self.failed} failed"
              + "".join(f"\n  {p}" for p in parts), flush=True)

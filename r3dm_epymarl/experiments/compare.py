"""Train a grid of algorithms x maps x seeds, each cell an ordinary host run with Sacred logging, then
print the report (tables, CSV, curves) for the grid.

Cells run as separate `r3dm-epymarl run` processes, a few at a time (`--jobs`, default: one per core)
as tasks on a Ray cluster (`--backend ray`), or as Slurm jobs (`--backend slurm`, compare_slurm.py). Cell `OUT/<map>/<algorithm>/seed<k>/` holds the
cell's Sacred run (results/sacred/...), models and `cell.log`. Running the same command again keeps
the cells whose Sacred run COMPLETED and runs the rest (failed or unfinished) again.

Example: r3dm-epymarl compare --algorithms qmix cds acorm r3dm --maps 3m 2s3z --seeds 1 2 3 \\
    --env-config smax --t-max 1000000 --out runs/smax
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from r3dm_epymarl.experiments.cells import BUSY, Cell, cell_env, finished, resume_point, run_cell, with_resume

HELP = "train algorithms x maps x seeds (process pool, Ray or Slurm), then report them side by side"

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
    parser.add_argument("--backend", choices=["local", "ray", "slurm"], default="local",
                        help="local process pool, tasks on a Ray cluster (pip install r3dm-epymarl[ray]), or "
                             "Slurm jobs through submitit (pip install r3dm-epymarl[slurm]; options below)")
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
    from r3dm_epymarl.experiments import compare_slurm

    compare_slurm.add_arguments(parser)


DEFAULT_TEST_SEED = 1000000  # far from the run seeds, so no test episode replays a seed's first training one


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
    from r3dm_epymarl.experiments.compare_slurm import check_options
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.launcher import available, check_env_host, find_config

    check_options(args)
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


def check_cells(args, cells: list[Cell]) -> None:
    """Each algorithm's command on each map checked as `run` checks it (keys and values, presets, the env
    config), before any cell starts: a bad `--with` key is one line here rather than a failure in every
    cell (or in every job, once it leaves Slurm's queue)."""
    from r3dm_epymarl.errors import UserError
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.launcher import check_command

    host = get_host(args.host, args.epymarl)
    seen = set()
    for cell in cells:
        if (cell.algorithm, cell.map) in seen:
            continue
        seen.add((cell.algorithm, cell.map))
        start = next(i for i, a in enumerate(cell.argv) if a.startswith("--config="))  # the host's part
        try:
            check_command(cell.argv[start:], host, str(cell.folder), say=lambda line: None)
        except UserError as exc:
            raise UserError(f"compare: {cell.algorithm} on {cell.map}: {exc}") from None


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
    check_cells(args, cells)
    env_protocol = protocol_env(args)
    for line in said + static_tests_lines(args):
        print(line, file=say, flush=True)
    if not args.dry_run:
        make_out(args.out)
    if args.dry_run and args.backend == "slurm":
        from r3dm_epymarl.experiments.compare_slurm import dry_run

        dry_run(cells, args, env_protocol)
        return 0
    if args.dry_run:
        settings = " ".join(f"{k}={v}" for k, v in env_protocol.items())
        for cell in cells:
            print(f"cd {cell.folder} && {settings} python -m r3dm_epymarl {' '.join(cell.argv)}")
        return 0
    if args.backend == "slurm":
        from r3dm_epymarl.experiments import compare_slurm

        return compare_slurm.main(args, cells, env_protocol)
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

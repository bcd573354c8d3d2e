"""`r3dm-epymarl`: run (launcher), install (patch a checkout), configs (list what is offered), and the
experiment tools: compare (a grid of host runs), report (tables, CSV, curves), roles (role plots), probe
(how much roles tell about the future)."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from r3dm_epymarl.version import version
from r3dm_epymarl.errors import UserError

RUN_EXAMPLE = ("r3dm-epymarl run --config=r3dm_qmix --env-config=gymma "
               "with env_args.key=lbforaging:Foraging-8x8-2p-3f-v3 env_args.time_limit=50")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="r3dm-epymarl", description="R3DM, ACORM and CDS for EPyMARL and PyMARLzoo+.")
    parser.add_argument("--version", action="version", version=f"r3dm-epymarl {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train or evaluate through a host, plug-in registered",
                         description="Everything after the options below goes to the host, e.g. "
                                     + RUN_EXAMPLE)
    run.add_argument("--epymarl", metavar="PATH", help="an EPyMARL checkout (default: $EPYMARL_PATH)")
    run.add_argument("--host", choices=["epymarl", "pymarlzooplus"],
                     help="force a host (default: EPyMARL when a checkout is given, else PyMARLzoo+)")
    run.add_argument("--base-dir", metavar="DIR",
                     help="results/ (Sacred runs, models) is created inside DIR (default: PyMARLzoo+ the current "
                          "directory, EPyMARL the checkout)")
    run.add_argument("host_args", nargs=argparse.REMAINDER,
                     help="--config=ALG --env-config=ENV with k=v ... (mongo_url=mongodb://HOST:PORT/DB, or "
                          "$MONGO_URL, adds a MongoDB observer beside file storage)")

    install = sub.add_parser("install", help="patch an EPyMARL checkout to load plug-ins")
    install.add_argument("path", help="the checkout (the folder holding src/main.py)")
    install.add_argument("--check", action="store_true",
                         help="report the patch state and every intervention of the plug-in in the host and "
                              "Sacred (hosts/interventions.py), change nothing")

    demo = sub.add_parser("demo", help="the main job: R3DM on SMAX 3m through PyMARLzoo+, then where results went")
    demo.add_argument("--algorithm", default="r3dm", help="a plug-in or host --config name (default: r3dm)")
    demo.add_argument("--env", choices=["smax", "lbf"], default="smax", help="SMAX battles or LBF (default: smax)")
    demo.add_argument("--map", dest="map_name", help="SMAX map (default 3m) or LBF id (default Foraging-8x8-3p-3f-v3)")
    demo.add_argument("--t-max", type=int, default=50000, help="env steps (default: 50000)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--base-dir", metavar="DIR", help="results/ is created inside DIR (default: here)")

    configs = sub.add_parser("configs", help="list the algorithm and env configs the plug-in adds")
    configs.add_argument("--keys", action="store_true", help="also list each algorithm's typed keys")
    configs.add_argument("--markdown", action="store_true",
                         help="print the key reference page (docs/CONFIG.md) as markdown")

    # Each experiment tool lives in its own module with `add_arguments(parser)` and `main(args) -> int`;
    # the modules import nothing heavy at the top, so building the parser stays cheap.
    for name, module in EXPERIMENT_TOOLS.items():
        tool = importlib.import_module(module)
        tool.add_arguments(sub.add_parser(name, help=tool.HELP, description=tool.__doc__))
    return parser


EXPERIMENT_TOOLS = {
    "compare": "r3dm_epymarl.experiments.compare",
    "report": "r3dm_epymarl.experiments.report",
    "roles": "r3dm_epymarl.experiments.roles",
    "probe": "r3dm_epymarl.experiments.probe",
}


def _install(args) -> int:
    from r3dm_epymarl.hosts.epymarl import install_patches

    outcomes = install_patches(args.path, check=args.check)
    for patch, outcome in outcomes:
        print(f"{patch}: {outcome}")
    if not args.check:
        return 0
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.hosts.interventions import report

    rows = report(get_host("epymarl", args.path))
    for item, state in rows:
        print(f"intervention {item.name} ({item.target}, {item.applied_in}): {state}")
    changed = [item for item, state in rows if state not in ("ok", "not used by this host")]
    return 1 if changed or any(outcome != "applied" for _, outcome in outcomes) else 0


def _configs(args) -> int:
    from r3dm_epymarl.paths import config_dir
    from r3dm_epymarl.registry import ALGORITHMS

    if args.markdown:
        from r3dm_epymarl.config_docs import render

        print(render(), end="")
        return 0
    for algo in ALGORITHMS.values():
        print(f"{algo.name:12s} learner={algo.learner} mac={algo.mac} agent={algo.agent} mixer={algo.mixer}"
              + (f"  ({algo.notes})" if algo.notes else ""))
        if args.keys:
            for key, spec in algo.load_schema().items():
                print(f"    {key:28s} {spec.type.__name__:6s} {spec.doc}")
    envs = sorted(p.stem for p in (config_dir() / "envs").glob("*.yaml"))
    print("env configs:", ", ".join(envs) if envs else "(host's own)")
    return 0


def main(argv: list[str] | None = None) -> int:
    # sacred 0.8 imports pkg_resources; the pin setuptools<81 keeps it working, the warning is noise.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    parser = _parser()
    # Host flags (--config=..., --env-config=...) are not the launcher's: keep them, in order.
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command == "run":
            from r3dm_epymarl.launcher import launch

            host_args = [a for a in unknown + args.host_args if a != "--"]
            launch(host_args, args.host, args.epymarl, args.base_dir)
            return 0
        if args.command == "install":
            return _install(args)
        if args.command in EXPERIMENT_TOOLS:
            return importlib.import_module(EXPERIMENT_TOOLS[args.command]).main(args)
        if args.command == "demo":
            from r3dm_epymarl.experiments.demo import run_demo

            print(run_demo(args.algorithm, args.env, args.map_name, args.t_max, args.seed, args.base_dir))
            return 0
        return _configs(args)
    except KeyboardInterrupt as stop:  # SIGTERM or Ctrl-C: one line (how to resume), no traceback
        from r3dm_epymarl.runs.interrupt import RunInterrupted

        if isinstance(stop, RunInterrupted):
            print(f"r3dm-epymarl: {stop.line()}", file=sys.stderr, flush=True)
            return stop.exit_code
        print("r3dm-epymarl: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:  # a user-fixable error anywhere in the chain: one line, no traceback
        user_error = _user_error(exc)
        if user_error is None:
            raise
        print(f"r3dm-epymarl: error: {user_error}", file=sys.stderr)
        return 2


def _user_error(exc: BaseException | None) -> UserError | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None

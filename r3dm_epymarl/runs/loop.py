"""Exact resume through the host's own run loop.

Neither host's `run_sequential` can resume a run exactly: on load it restores the networks only, and
it restarts its loop counters (episode, last test/log/save step) at zero, so a resumed run tests, logs
and saves at other steps than the uninterrupted one and draws different random numbers. Rather than
replace that loop with a copy, `install` recompiles the host's own function with five small changes
(the source is the host's, whatever its version):

1. first statement: `hooks.select(args)` picks the newest intact checkpoint when `checkpoint_path` is
   set (a folder left half-written by a kill is skipped, in one line);
2. the counter initialisers `episode = 0` etc. become `episode = hooks.initial("episode", 0)`;
3. just before them: `hooks.restore(locals())` puts back the buffer, RNG streams, env key stream,
   counters and target networks saved beside the models the host has just loaded;
4. `save_path = ...` becomes `save_path = hooks.save_path(...)`: a resumed run keeps saving into the
   folder it resumed from, so the newest checkpoint of a run is always in one place;
5. last statement of the `while` body: `hooks.end_of_iteration(locals())` writes that state (and the
   manifest, last) into the folder the host saved models to in this iteration, and updates the live
   progress line; after the loop, `hooks.finished(locals())`.

SIGTERM and Ctrl-C during the loop are acted on at the end of the iteration (runs/interrupt.py): a
checkpoint of that step (if save_model is on), then `RunInterrupted`, which Sacred records as INTERRUPTED.

If the host's loop does not have that shape (another host version), nothing is changed and resume
restores models only, as the host does, with one line saying so.
"""
from __future__ import annotations

import ast
import inspect
import json
import os
import signal
import sys
import time
from pathlib import Path

from r3dm_epymarl.errors import for_sacred
from r3dm_epymarl.runs import checkpoints, resume_checks, state, static_tests, wandb_runs
from r3dm_epymarl.runs.disk import (
    DiskFull, check_room, episodes_stored, estimate_checkpoint_bytes, next_checkpoint_bytes,
)
from r3dm_epymarl.runs.divergence import LoggedStatsWatch, check_parameters
from r3dm_epymarl.runs.interrupt import STOP, print_uncaught_as_one_line
from r3dm_epymarl.runs.loop_rewrite import HOOKS_NAME, rewrite
from r3dm_epymarl.runs.progress import Progress

RESUMED_FROM = "resumed_from.json"  # in a resumed run's Sacred folder: the run and step it continues
ORIGINAL_NAME = "__r3dm_epymarl_host_run_sequential__"

# Options of the hooked loop that are not Sacred config keys (a key the host's config lacks is refused
# by Sacred as "added new config entry"): set in the environment; `demo` and `compare` set them.
TEST_AT_END = "R3DM_EPYMARL_TEST_AT_END"  # "1": one more test phase at the final t_env if the last was earlier
CHECKPOINT_BUFFER = "R3DM_EPYMARL_CHECKPOINT_BUFFER"  # "0": checkpoints leave out the replay buffer
# How many of a run's newest checkpoints keep their run state (buffer, RNG; ~1 GB for a full SMAX buffer);
# older ones keep their models only (for `roles`, evaluation), their manifest says so. Default 2.
KEEP_RUN_STATES = "R3DM_EPYMARL_KEEP_RUN_STATES"


def _say(message: str) -> None:
    print(f"r3dm-epymarl: {message}", file=sys.stderr, flush=True)


def install_host_loop(host, check) -> bool:
    """Hook the host's `run_sequential` (where a run starts: the launcher, the plug-in's entry point).

    check(args, host_name): the run's checks, made in the hooked loop before the host builds anything
    (preflight.check_host_run: given by the caller, so this layer imports nothing above it). Returns
    where a resume loads from (resume_checks.ResumeTarget), or None."""
    try:
        run_module = host.module("run")
    except ModuleNotFoundError:  # a host without a run loop of its own (the tests' registry-only hosts)
        return False
    return install(run_module, host.name, check)


def install(run_module, host_name: str, check) -> bool:
    """Replace `run_module.run_sequential` by the hooked version of itself (idempotent)."""
    if getattr(run_module, ORIGINAL_NAME, None) is not None:
        return True
    original = run_module.run_sequential
    try:
        lines, first_line = inspect.getsourcelines(original)
        tree = rewrite("".join(lines))
        ast.increment_lineno(tree, first_line - 1)  # tracebacks point at the host's own lines
    except (OSError, TypeError, ValueError) as exc:
        _say(f"exact resume is off for this {host_name} version ({exc}); checkpoints hold models only")
        return False
    namespace = run_module.__dict__
    namespace[HOOKS_NAME] = RunHooks(host_name, check)
    code = compile(tree, inspect.getsourcefile(original) or "<run_sequential>", "exec")
    exec(code, namespace)  # defines the hooked run_sequential in the host's module, with its globals
    namespace[ORIGINAL_NAME] = original
    return True


class RunHooks:
    """What the hooked loop calls. One instance per host module, reset at each `select`."""

    def __init__(self, host_name: str, check):
        self.host_name = host_name
        self.check = check  # install_host_loop's `check`
        self.counters: dict | None = None
        self.resumed_from: dict | None = None
        self.selected: tuple[Path, dict] | None = None  # (checkpoint folder, its verified manifest)
        self.changes: dict = {}  # training keys set otherwise than in the selected checkpoint
        self.progress: Progress | None = None
        self.diverged = LoggedStatsWatch()  # NaN / inf among the learner's logged statistics
        self._built: dict | None = None  # the loop's locals at `restore`
        self._last_checkpoint_bytes: tuple | None = None  # (bytes, episodes in the buffer) of the last checkpoint

    # --- before the host loads anything ---------------------------------------------------------------
    def select(self, args) -> None:
        if not STOP.installed:  # a run the CLI did not start (a patched `python src/main.py`)
            STOP.install()
            print_uncaught_as_one_line()
        STOP.new_run()
        STOP.save_model = bool(getattr(args, "save_model", False))
        STOP.stop_if_asked()  # a signal while the host started: before it builds anything
        target = self.check(args, self.host_name)
        self.counters, self.resumed_from, self.selected, self.changes = None, None, None, {}
        self.diverged, self._built, self._last_checkpoint_bytes = LoggedStatsWatch(), None, None
        self.progress = Progress.for_run(args)
        if target is not None and target.load_step is not None:
            # checkpoint_path named one <t_env>/ folder: the hosts want the folder of them, and the step.
            args.checkpoint_path, args.load_step = str(target.models), target.load_step
        if getattr(args, "evaluate", False) or getattr(args, "save_replay", False):
            # No loop, so no safe point to stop at and nothing to resume: the signals' usual effect.
            STOP.uninstall({signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler})
            return
        path = getattr(args, "checkpoint_path", "")
        if not path:
            return
        folders = checkpoints.step_folders(Path(path))
        if not any((f / checkpoints.MANIFEST).is_file() for f in folders):
            if folders:
                _say(f"{path} has no {checkpoints.MANIFEST} (saved without the plug-in's hooks): loading "
                     "models only, so this is not an exact resume")
            return
        # The host's rule (the newest, or the one closest to load_step), among the intact checkpoints.
        self.selected = checkpoints.newest_usable(Path(path), report=_say,
                                                  near=int(getattr(args, "load_step", 0) or 0))
        if self.selected is None:
            _say(f"no intact checkpoint in {path}: starting from step 0")
            args.checkpoint_path = ""
        else:
            args.load_step = int(self.selected[0].name)
            STOP.checkpoint = str(self.selected[0].parent.resolve())
            self.changes = resume_checks.config_changes(self.selected[1].get("config") or {}, vars(args))

    # --- after the host loaded the models, before its loop ---------------------------------------------
    def restore(self, ns: dict) -> None:
        self._built = ns  # the learner, buffer and runner the loop will use (save_path reads them)
        self._restore(ns)
        static_tests.install(ns["runner"], ns["logger"])
        STOP.stop_if_asked()  # a signal while the host built its env and learner: before training

    def _restore(self, ns: dict) -> None:
        args = ns["args"]
        model_path = ns.get("model_path")
        if not getattr(args, "checkpoint_path", "") or not model_path:
            return
        folder = Path(model_path)
        if not (folder / checkpoints.RUN_STATE).is_file():
            if (folder / checkpoints.MANIFEST).is_file():  # an older checkpoint whose run state was pruned
                _say(f"{folder} holds models only (its run state was pruned): loading the models, so this "
                     "is not an exact resume")
            return
        # `select` verified this folder's files against its manifest already (hashing them again
        # would read the whole run state twice).
        selected_folder, manifest = self.selected or (None, None)
        if selected_folder is None or selected_folder.resolve() != folder.resolve():
            manifest = checkpoints.read_manifest(folder)
        saved = checkpoints.load_state(folder / checkpoints.RUN_STATE)
        state.restore(ns, saved)
        self.counters = saved["loop"]
        self.resumed_from = {"checkpoint": str(folder.resolve()), "t_env": manifest["t_env"],
                             **{k: manifest["sacred"].get(k) for k in ("run_dir", "run_id")}}
        # Sacred cannot reopen a run: this new one says where it continues from, as a one-point metric
        # (every consumer of metrics copes; a non-series key in `info` breaks PyMARLzoo+'s plots) and,
        # for file storage, in resumed_from.json beside its run.json (what `report` stitches with).
        logger = ns["logger"]
        logger.log_stat("resumed_from_t_env", manifest["t_env"], manifest["t_env"])
        run_dir = _sacred_run(logger)["run_dir"]
        if run_dir:
            checkpoints.atomic_write_bytes(Path(run_dir) / RESUMED_FROM,
                                           json.dumps(self.resumed_from, indent=1).encode())
        reasons = [f"{k} {v}" for k, v in state.inexact_parts(manifest.get("notes", {})).items()]
        if self.changes:
            reasons.append("the config differs from the checkpoint's: "
                           + resume_checks.describe_changes(self.changes))
        exact = "exactly" if manifest.get("exact") and not self.changes else f"(not exactly: {'; '.join(reasons)})"
        _say(f"resumed {exact} from {folder} at t_env {manifest['t_env']}")
        if self.progress:
            self.progress.resumed(manifest["t_env"])

    def save_path(self, path: str) -> str:
        """The host's folder for this step's models, moved into the checkpoint folder resumed from; before
        the host writes anything there, a check that the disk has room for it (runs/disk.py)."""
        if self.resumed_from is not None:
            path = str(Path(self.resumed_from["checkpoint"]).parent / Path(path).name)
        built = self._built or {}
        buffer = built.get("buffer")
        if self._last_checkpoint_bytes:
            needed = next_checkpoint_bytes(*self._last_checkpoint_bytes, episodes_stored(buffer))
        else:
            needed = estimate_checkpoint_bytes(built.get("learner"), buffer)
        runner = built.get("runner")
        try:
            check_room(Path(path), int(needed), getattr(runner, "t_env", 0),
                       self._last_checkpoint_bytes[0] if self._last_checkpoint_bytes else None)
        except DiskFull as error:
            raise for_sacred(error) from None
        return path

    def initial(self, name: str, default):
        return self.counters[name] if self.counters is not None else default

    # --- the end of every loop iteration -----------------------------------------------------------
    def end_of_iteration(self, ns: dict) -> None:
        runner, args = ns["runner"], ns["args"]
        self.diverged.check(ns["logger"])  # what the learner logged this iteration (floats: no device read)
        if self.progress:
            self.progress.update(runner.t_env, ns["logger"])
        saved_now = args.save_model and ns["model_save_time"] == runner.t_env and "save_path" in ns
        if saved_now:
            self._save(ns, Path(ns["save_path"]))
        STOP.t_env = runner.t_env
        if STOP.signum is not None:
            self._stop(ns)

    def _save(self, ns: dict, folder: Path) -> None:
        start = time.perf_counter()
        with_buffer = os.environ.get(CHECKPOINT_BUFFER, "1") != "0"
        run_state, notes = state.capture(ns, with_buffer=with_buffer)
        entry = checkpoints.save_state(folder / checkpoints.RUN_STATE, run_state)
        checkpoints.write_manifest(folder, self._manifest(ns, notes), known={checkpoints.RUN_STATE: entry})
        checkpoints.prune_run_states(folder.parent, keep=int(os.environ.get(KEEP_RUN_STATES, "2")))
        STOP.checkpoint = str(folder.parent.resolve())
        total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        self._last_checkpoint_bytes = (total, episodes_stored(ns.get("buffer")))
        ns["logger"].console_logger.info(
            f"Checkpoint {folder}: {total / 2**20:.1f} MiB ({entry['bytes'] / 2**20:.1f} MiB run state"
            f"{'' if with_buffer else f', no buffer: {CHECKPOINT_BUFFER}=0'}), {time.perf_counter() - start:.1f} s")

    def _manifest(self, ns: dict, notes: dict) -> dict:
        from r3dm_epymarl.version import version
        from r3dm_epymarl.presets import map_name

        args, runner = ns["args"], ns["runner"]
        config = {k: v for k, v in vars(args).items() if state.is_plain(v)}
        exact = not state.inexact_parts(notes)
        return {"t_env": runner.t_env, "episode": ns["episode"], "seed": getattr(args, "seed", None),
                "algorithm": getattr(args, "name", None), "map": map_name(config), "host": self.host_name,
                "plugin_version": version(), "exact": exact, "notes": notes,
                "sacred": _sacred_run(ns["logger"]), "wandb": wandb_runs.run_record(ns["logger"]),
                "resumed_from": self.resumed_from,
                "argv": sys.argv[1:], "cwd": os.getcwd(), "config": config}

    def _stop(self, ns: dict) -> None:
        """A signal arrived during this iteration: checkpoint this step, flush the progress, stop."""
        folder = self._checkpoint_now(ns) if ns["args"].save_model else None
        if self.progress and self.progress.bar is not None:  # a terminal's live bar (no last line: ours follows)
            self.progress.bar.stop()
        self.progress = None
        wandb_runs.finish(ns["logger"])  # the host's finish() after its loop is never reached
        raise STOP.interrupted(STOP.signum, ns["runner"].t_env, folder)

    def _checkpoint_now(self, ns: dict) -> Path | None:
        """This step's checkpoint, as the host saves one (its learner's files, then ours), beside the
        run's others; the loop's save counter is left alone, so a resumed run saves where this one would."""
        runner = ns["runner"]
        if "save_path" in ns:
            models = Path(ns["save_path"]).parent
        elif self.resumed_from is not None:
            models = Path(self.resumed_from["checkpoint"]).parent
        else:
            return None
        folder = models / str(runner.t_env)
        if (folder / checkpoints.MANIFEST).is_file():  # the host saved this step already
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        ns["logger"].console_logger.info(f"Saving models to {folder} (stopping)")
        ns["learner"].save_models(str(folder))
        if ns.get("has_explorer"):  # PyMARLzoo+'s explorers save beside the learner
            ns["explorer"].save_models(str(folder))
        self._save(ns, folder)
        return folder

    def finished(self, ns: dict) -> None:
        runner, args = ns["runner"], ns["args"]
        if STOP.signum is not None:  # a signal after the last iteration's end: training is done, stop here
            self._stop(ns)
        # a divergence after the learner's last log step: FAILED, not COMPLETED with NaN networks
        self.diverged.check(ns["logger"])
        check_parameters(ns["learner"], runner.t_env)
        if os.environ.get(TEST_AT_END) == "1" and ns["last_test_T"] < runner.t_env:
            # The host tests every test_interval steps, so its last test is up to one interval before
            # the end; this one measures the policy training ended with (it trains nothing).
            ns["logger"].console_logger.info(f"Final test at t_env {runner.t_env}")
            for _ in range(max(1, args.test_nepisode // runner.batch_size)):
                runner.run(test_mode=True)
        if self.progress:
            self.progress.close(ns["runner"].t_env, ns["logger"])


def _sacred_run(logger) -> dict:
    """Where this run's Sacred records are: the file observer's folder, the run id, Mongo's id."""
    run = getattr(logger, "_run_obj", None)
    out = {"run_dir": None, "run_id": None}
    if run is None:
        return out
    out["run_id"] = getattr(run, "_id", None)
    for observer in getattr(run, "observers", []):
        if getattr(observer, "dir", None):
            out["run_dir"] = str(Path(observer.dir).resolve())
        if getattr(observer, "run_entry", None):
            out["mongo_id"] = observer.run_entry.get("_id")
    return out

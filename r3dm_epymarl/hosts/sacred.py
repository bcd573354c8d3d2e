"""Sacred observers for host runs: MongoDB beside the host's file storage, and results where asked.

Both hosts build their Sacred `Experiment` inside their own `main` and call `ex.run_commandline`, so
the plug-in adds its observers at that one call (`install`), the same way for EPyMARL and PyMARLzoo+.

- `mongo_url` (a `with` key or the `MONGO_URL` env var) adds a MongoObserver: runs, metrics (the
  hosts' `log_stat` also calls `_run.log_scalar`) and artifacts (the final checkpoint) land in Mongo.
  Mongo is pinged before the run starts; if it does not answer, one line says so and the run goes on
  with file storage only.
- `base_dir` moves the host's FileStorageObserver under `DIR/results/sacred/...` (PyMARLzoo+ gets it
  through its own caller-path hook; EPyMARL's main.py hard-codes the checkout's results/).
"""
from __future__ import annotations

import calendar
import json
import os
import sys
import tempfile
import types
from pathlib import Path

MONGO_ENV = "MONGO_URL"
MONGO_KEY = "mongo_url"
PING_TIMEOUT_MS = 3000  # at start, and for every later write: a dead server costs seconds, not minutes

_state = {"installed": False, "mongo": None, "file_base": None}


def check_mongo_url(url: str | None) -> None:
    """UserError (one line) for a URL that is not a MongoDB connection string at all (a typo, not a
    server that is down: that one is reported as unreachable and the run goes on with file storage)."""
    if not url:
        return
    from pymongo.errors import PyMongoError
    from pymongo.uri_parser import parse_uri

    from r3dm_epymarl.errors import UserError

    # The syntax only: parsing a mongodb+srv:// URL would look its hosts up in DNS.
    syntax = "mongodb://" + url[len("mongodb+srv://"):] if url.startswith("mongodb+srv://") else url
    try:
        parse_uri(syntax)
    except (PyMongoError, ValueError) as exc:
        raise UserError(f"mongo_url {_redact(url)} is malformed ({exc}); give mongodb://HOST:PORT/DB "
                        "(or mongodb+srv://HOST/DB)") from None


def mongo_observer(url: str, timeout_ms: int = PING_TIMEOUT_MS):
    """A MongoObserver for `url` (database from the URL's path, default `sacred`), or None with one
    line on stderr if the server does not answer a ping."""
    import pymongo
    from pymongo.errors import PyMongoError
    from pymongo.uri_parser import parse_uri

    try:
        db_name = parse_uri(url).get("database") or "sacred"
        client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
        client.admin.command("ping")
    except (PyMongoError, ValueError) as exc:
        print(f"r3dm-epymarl: MongoDB at {_redact(url)} is unreachable ({type(exc).__name__}); "
              f"logging to file storage only", file=sys.stderr, flush=True)
        return None
    from sacred.observers.file_storage import DEFAULT_FILE_STORAGE_PRIORITY

    # failure_dir: where Sacred dumps the run entry if the server dies mid-run (without one, its exit
    # handler raises a traceback instead)
    failure_dir = os.path.join(tempfile.gettempdir(), "r3dm-epymarl-mongo-failed")
    return _plugin_mongo_observer_class()(client=client, db_name=db_name, failure_dir=failure_dir,
                                          priority=DEFAULT_FILE_STORAGE_PRIORITY - 10)


def _plugin_mongo_observer_class():
    from sacred.observers import MongoObserver

    class PluginMongoObserver(MongoObserver):
        """Picks its own run id. Created below the file observer's priority, it is handed the file
        run's id; two result folders (or two compare cells) both have a run 1, which would collide in
        one database, so the Mongo id is Mongo's own and the file run's id is kept as `file_run_id`."""

        def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
            self.metric_refs = {}
            run_id = super().started_event(ex_info, command, host_info, start_time, config, meta_info, None)
            if _id is not None:
                self.run_entry["file_run_id"] = str(_id)  # every later save writes the whole entry
                self.save()
            return run_id

        # Sacred notes each new metric's id in the run's shared `info`, which the file observer writes
        # to info.json too, where PyMARLzoo+'s end-of-run plots read every key as a curve (and fail).
        # The references stay in Mongo's copy of `info` only.
        def log_metrics(self, metrics_by_name, info):
            super().log_metrics(metrics_by_name, self.metric_refs)

        def heartbeat_event(self, info, captured_out, beat_time, result):
            super().heartbeat_event({**info, **self.metric_refs}, captured_out, beat_time, result)

    return PluginMongoObserver


def _redact(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


def pop_mongo_url(argv: list[str]) -> tuple[list[str], str | None]:
    """Take `mongo_url=...` out of the `with` updates (no host YAML declares it, and Sacred rejects
    undeclared keys); fall back to $MONGO_URL."""
    url, out, after_with = None, [], False
    for arg in argv:
        after_with = after_with or arg == "with"
        if after_with and arg.startswith(MONGO_KEY + "="):
            url = arg.split("=", 1)[1].strip("'\"") or None
            continue
        out.append(arg)
    if out and out[-1] == "with":
        out.pop()
    return out, url or os.environ.get(MONGO_ENV) or None


def install(mongo_url: str | None = None, file_base: str | None = None) -> None:
    """Attach the plug-in's observers to the next Sacred run in this process (idempotent)."""
    if mongo_url and _state["mongo"] is None:
        _state["mongo"] = mongo_observer(mongo_url) or False
    if file_base:
        _state["file_base"] = os.path.abspath(file_base)
    if _state["installed"]:
        return
    from sacred import Experiment

    from r3dm_epymarl.hosts.interventions import require

    require("sacred-run-commandline")
    require("sacred-observer-hooks")
    original = Experiment.run_commandline

    def run_commandline(self, argv=None):
        _attach(self)
        return original(self, argv)

    Experiment.run_commandline = run_commandline
    _state["installed"] = True


def _attach(ex) -> None:
    from sacred.observers import FileStorageObserver

    _capture_for_schedulers()

    if _state["file_base"]:
        ex.observers[:] = [_rebased(obs, _state["file_base"]) if isinstance(obs, FileStorageObserver) else obs
                           for obs in ex.observers]
    for obs in ex.observers:
        if isinstance(obs, FileStorageObserver):
            obs.save_json = types.MethodType(atomic_save_json, obs)
    if _state["mongo"]:
        ex.observers.append(_state["mongo"])
        ex.post_run_hook(_add_final_checkpoint)
    for obs in ex.observers:
        _snapshot_heartbeats(obs)


def _capture_for_schedulers() -> None:
    """Inside a Slurm job, Sacred captures output in Python ("sys") instead of through `tee` processes
    ("fd", both hosts' setting): Slurm signals every process of a job on preemption, requeue or scancel,
    the `tee`s die at once, and the run, stopping cleanly on its own SIGTERM, then fails writing its
    output (exit 1, its checkpoint half-written). Output from C code still reaches the job's log."""
    from sacred import SETTINGS

    from r3dm_epymarl.hosts.interventions import require

    if os.environ.get("SLURM_JOB_ID") and SETTINGS.get("CAPTURE_MODE") == "fd":
        require("sacred-capture-mode")
        SETTINGS.CAPTURE_MODE = "sys"


def _rebased(obs, base: str):
    """The same file observer, under `base/results/sacred/<the host's name>/<map>`."""
    from sacred.observers import FileStorageObserver

    parts = Path(obs.basedir).parts
    tail = parts[parts.index("sacred") + 1:] if "sacred" in parts else parts[-2:]
    return FileStorageObserver(os.path.join(base, "results", "sacred", *tail), copy_sources=obs.copy_sources)


def _snapshot_heartbeats(obs) -> None:
    """Heartbeats run on Sacred's thread while the host's logger adds keys to `_run.info`; an observer
    iterating the live dict then fails and Sacred silently drops it for the rest of the run. Each
    observer gets a copy instead (dict/list copies are single C calls, atomic under the GIL)."""
    beat = obs.heartbeat_event
    if getattr(beat, "_r3dm_snapshot", False):
        return

    def heartbeat_event(info, captured_out, beat_time, result):
        return beat(info=_copy(info), captured_out=captured_out, beat_time=beat_time, result=result)

    heartbeat_event._r3dm_snapshot = True
    obs.heartbeat_event = heartbeat_event


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in dict(value).items()}
    if isinstance(value, list):
        return [_copy(v) for v in list(value)]
    return value


def _add_final_checkpoint(_run, _config):
    """Post-run hook: the run's last checkpoint (if `save_model`) becomes Sacred artifacts, so Mongo
    holds the model beside the metrics. PyMARLzoo+ saves under the run's folder, EPyMARL under
    `local_results_path/models/<token>/`; either way the newest folder written during this run."""
    if not _config.get("save_model"):
        return
    # Sacred's start_time is naive UTC; one second of slack for coarse file-system clocks.
    started = calendar.timegm(_run.start_time.utctimetuple()) - 1 if _run.start_time else 0
    roots = [Path(_config.get("local_results_path", "results")) / "models"]
    roots += [Path(obs.dir) / "models" for obs in _run.observers if getattr(obs, "dir", None)]
    candidates = [d for root in roots if root.is_dir() for d in [*root.glob("*"), *root.glob("*/*")]
                  if d.is_dir() and d.name.isdigit() and any(f.is_file() for f in d.iterdir())]
    candidates = [d for d in candidates if d.stat().st_mtime >= started]
    if not candidates:
        return
    latest = max(candidates, key=lambda d: (int(d.name), d.stat().st_mtime))
    for f in sorted(latest.iterdir()):
        if f.is_file():
            # No "/" in the name: the file observer stores an artifact at <run>/<name>, and a name with a
            # folder fails there, after which Sacred drops that observer (no more heartbeats or output).
            _run.add_artifact(str(f), name=f"model_{latest.name}_{f.name}")


def atomic_save_json(self, obj, filename):
    """FileStorageObserver.save_json, written to a temporary file and renamed over the old one: a write
    that fails (a full disk) leaves the previous, complete file."""
    from sacred.serializer import flatten

    path = os.path.join(self.dir, filename)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(flatten(obj), f, sort_keys=True, indent=2)
            f.flush()
        os.replace(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise

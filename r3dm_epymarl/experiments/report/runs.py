"""The Sacred runs `report` reads, from FileStorage folders or a MongoDB database, each reduced to a
`Run`: algorithm (the config's `name`), map, seed, status, t_max, environment and every logged curve.
A run resumed from a checkpoint (runs/loop.py writes resumed_from.json into its folder) starts with
the curves of the run it continues, up to the resume step; `drop_continued` then leaves the run it
continues out, so a killed-and-resumed cell counts once. (MongoDB runs carry no such link.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One Sacred run, reduced to what a report needs."""

    source: str
    algorithm: str
    map: str
    seed: int
    status: str
    t_max: int | None
    env: str = "unknown"  # the environment: gymnasium id prefix (lbforaging), else config `env` (sc2, smax)
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # name -> (steps, values)
    continues: str | None = None  # the folder of the run this one resumed (file storage only)
    wall_s: float | None = None  # start to stop (or last heartbeat), summed over the runs it continues
    segments: int = 1  # how many Sacred runs (this one and those it continues) made the curve
    config: dict = field(default_factory=dict, repr=False)  # the run's config, dotted keys (rows.py reads it)
    diverged: bool = False  # it ended in TrainingDiverged (NaN or inf): never a seed


def _map_of(config: dict) -> str:
    from r3dm_epymarl.presets import map_name

    name = map_name(config) or config.get("env", "?")
    return str(name).split(":")[-1]  # gymnasium ids: drop the "package:" prefix


def _run_from(source: str, config: dict, status: str, series: dict, wall_s: float | None = None) -> Run:
    from r3dm_epymarl.config import flatten

    key = str((config.get("env_args") or {}).get("key") or "")
    return Run(source=source, algorithm=str(config.get("name", "?")), map=_map_of(config),
               seed=int(config.get("seed", 0)), status=status,
               t_max=int(config["t_max"]) if config.get("t_max") else None, series=series,
               env=key.split(":")[0] if ":" in key else str(config.get("env") or "unknown"), wall_s=wall_s,
               config=flatten(config))


def wall_seconds(entry: dict) -> float | None:
    """Seconds from a Sacred run's start_time to its stop_time, or to its last heartbeat when it has none
    (a killed run); None without a start. Times are ISO strings (run.json) or datetimes (MongoDB)."""
    from datetime import datetime

    def when(value):
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    try:
        start, end = when(entry.get("start_time")), when(entry.get("stop_time") or entry.get("heartbeat"))
        return None if start is None or end is None else max(0.0, (end - start).total_seconds())
    except (TypeError, ValueError):  # a time in another form: the curves still count, the wall time is unknown
        return None


def _run_wall(folder: Path) -> float | None:
    """wall_seconds of the run in `folder`, None where its run.json cannot be read."""
    try:
        return wall_seconds(json.loads((folder / "run.json").read_text()))
    except (OSError, ValueError):
        return None


def load_file_runs(root: Path) -> list[Run]:
    """Every Sacred FileStorage run under `root` (any depth). A run that cannot be read (killed while
    writing its run.json) is skipped with one line."""
    runs = []
    for run_json in sorted(Path(root).rglob("run.json")):
        folder = run_json.parent
        config_path = folder / "config.json"
        if not config_path.is_file():
            continue
        try:
            entry = json.loads(run_json.read_text())
            status = entry.get("status", "?")
            config = json.loads(config_path.read_text())
            previous, t = _resumed_from(folder)
            series, wall_s, segments = _file_chain(folder, previous, t, wall_seconds(entry))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"report: skipping {folder}: unreadable ({type(exc).__name__}: {exc})")
            continue
        run = _run_from(str(folder.resolve()), config, status, series, wall_s)
        run.continues, run.segments = (str(previous.resolve()) if previous else None), segments
        run.diverged = _diverged(entry)
        runs.append(run)
    return runs


def _diverged(entry: dict) -> bool:
    """A Sacred run that failed with TrainingDiverged (its fail_trace names it)."""
    trace = entry.get("fail_trace") or []
    return any("TrainingDiverged" in str(line) for line in (trace if isinstance(trace, list) else [trace]))


def drop_continued(runs: list[Run]) -> list[Run]:
    """`runs` less those that another of them resumed (same algorithm, map and seed): the resumed run's
    curves already hold theirs. Apply it after choosing runs by status, so that a COMPLETED run whose
    continuation is still RUNNING stays when only COMPLETED runs are read."""
    continued = {(r.continues, r.algorithm, r.map, r.seed) for r in runs if r.continues}
    return [r for r in runs if (r.source, r.algorithm, r.map, r.seed) not in continued]


def _resumed_from(folder: Path, quiet: bool = False) -> tuple[Path | None, float]:
    """The folder of the run `folder`'s run resumed and the resume step, or (None, 0). The link holds an
    absolute path; in a results tree copied elsewhere the sibling folder of the same name is used."""
    from r3dm_epymarl.runs.loop import RESUMED_FROM

    link = folder / RESUMED_FROM
    if not link.is_file():
        return None, 0
    resumed = json.loads(link.read_text())
    recorded = Path(resumed.get("run_dir") or "")
    for candidate in (recorded, folder.parent / recorded.name):
        if str(recorded) and candidate.is_dir() and candidate.resolve() != folder.resolve():
            return candidate, resumed["t_env"]
    if not quiet:
        print(f"report: {folder} resumed from {recorded or '?'} (t_env {resumed['t_env']}), which is gone: "
              "its curves start there")
    return None, resumed["t_env"]


def checked_series(series: dict, where: str) -> dict:
    """`series` (name -> (steps, values)) as lists, or a ValueError naming `where` and the metric when
    it is not Sacred's shape (a curve whose steps and values differ in number cannot be read)."""
    out = {}
    for name, (steps, values) in series.items():
        if not isinstance(steps, list) or not isinstance(values, list):
            raise ValueError(f"{where}: metric {name!r} holds no lists of steps and values")
        if len(steps) != len(values):
            raise ValueError(f"{where}: metric {name!r} has {len(steps)} steps but {len(values)} values")
        out[name] = (list(steps), list(values))
    return out


def _own_series(folder: Path) -> dict:
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        if not isinstance(metrics, dict) or not all(isinstance(m, dict) for m in metrics.values()):
            raise ValueError(f"{metrics_path} is not Sacred's {{metric: {{steps, values}}}}")
        return checked_series({name: (m["steps"], m["values"]) for name, m in metrics.items()}, str(metrics_path))
    # older hosts keep the curves only in info.json as `key` / `key_T`
    info_path = folder / "info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if not isinstance(info, dict):
        raise ValueError(f"{info_path} is not a dict")
    return checked_series({k: (info[k + "_T"], info[k]) for k in info if k + "_T" in info}, str(info_path))


def _file_chain(folder: Path, previous: Path | None, t: float, wall_s: float | None,
                depth: int = 0) -> tuple[dict, float | None, int]:
    """The run's curves, wall time and segment count; `wall_s` is its own. A resumed run's (`previous`:
    the run it continues, from step `t`) curves start with that run's up to `t`, so a killed-and-resumed
    run reads as one, and its wall time adds that run's (the steps a killed run made past its last
    checkpoint were computed, then redone: the sum is what the cell cost)."""
    series = _own_series(folder)
    if previous is None or depth > 100:
        return series, wall_s, 1
    earlier, earlier_wall, segments = _file_chain(previous, *_resumed_from(previous, quiet=True),
                                                  _run_wall(previous), depth + 1)
    for name, (steps, values) in earlier.items():
        keep = [(s, v) for s, v in zip(steps, values) if s <= t]
        own_steps, own_values = series.get(name, ([], []))
        series[name] = ([s for s, _ in keep] + list(own_steps), [v for _, v in keep] + list(own_values))
    total = None if wall_s is None or earlier_wall is None else wall_s + earlier_wall
    return series, total, segments + 1


def load_mongo_runs(url: str) -> list[Run]:
    """Every run in the database named by `url` (default database `sacred`), metrics included."""
    import pymongo
    from pymongo.uri_parser import parse_uri

    from r3dm_epymarl.errors import UserError

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        raise UserError(f"--mongo {url}: MongoDB is unreachable ({type(exc).__name__}); check the URL "
                        "or report from the file storage folders instead") from exc
    db = client[parse_uri(url).get("database") or "sacred"]
    runs = []
    for entry in db.runs.find({}, {"config": 1, "status": 1, "start_time": 1, "stop_time": 1, "heartbeat": 1,
                                   "fail_trace": 1}):
        try:
            series = checked_series({m["name"]: (m["steps"], m["values"])
                                     for m in db.metrics.find({"run_id": entry["_id"]})}, "metrics")
        except (KeyError, TypeError, ValueError) as exc:
            print(f"report: skipping mongo run {entry['_id']}: unreadable ({type(exc).__name__}: {exc})")
            continue
        run = _run_from(f"mongo:{entry['_id']}", _unflatten(entry.get("config", {})), entry.get("status", "?"),
                        series, wall_seconds(entry))
        run.diverged = _diverged(entry)
        runs.append(run)
    client.close()
    return runs


def _unflatten(config: dict) -> dict:
    """Sacred's MongoObserver stores dotted keys as nested dicts already; keep both forms working."""
    out: dict = {}
    for key, value in config.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out

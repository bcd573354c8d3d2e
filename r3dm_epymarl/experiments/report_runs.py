"""The Sacred runs `report` reads, from FileStorage folders or a MongoDB database, each reduced to a
`Run`: algorithm (the config's `name`), map, seed, status, t_max, environment and every logged curve.
A killed run that a later run resumed (runs/loop.py's resumed_from.json) is read as the start of that
run's curve, never as a run of its own.
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


def _map_of(config: dict) -> str:
    from r3dm_epymarl.presets import map_name

    name = map_name(config) or config.get("env", "?")
    return str(name).split(":")[-1]  # gymnasium ids: drop the "package:" prefix


def _run_from(source: str, config: dict, status: str, series: dict) -> Run:
    key = str((config.get("env_args") or {}).get("key") or "")
    return Run(source=source, algorithm=str(config.get("name", "?")), map=_map_of(config),
               seed=int(config.get("seed", 0)), status=status,
               t_max=int(config["t_max"]) if config.get("t_max") else None, series=series,
               env=key.split(":")[0] if ":" in key else str(config.get("env") or "unknown"))


def load_file_runs(root: Path) -> list[Run]:
    """Every Sacred FileStorage run under `root` (any depth). A run that cannot be read (killed while
    writing its run.json) is skipped with one line; so is a run another run resumed from, since the
    resumed run's curves already hold its curves (a killed cell is then one run, whatever --status)."""
    from r3dm_epymarl.runs.loop import RESUMED_FROM

    runs = []
    folders = [run_json.parent for run_json in sorted(Path(root).rglob("run.json"))]
    superseded = set()
    for link in (f / RESUMED_FROM for f in folders):
        try:
            superseded.add(Path(json.loads(link.read_text())["run_dir"]).resolve())
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no link, or an unreadable one: the run stands alone
    for folder in folders:
        if folder.resolve() in superseded:
            continue
        config_path = folder / "config.json"
        if not config_path.is_file():
            continue
        try:
            status = json.loads((folder / "run.json").read_text()).get("status", "?")
            config = json.loads(config_path.read_text())
            series = _file_series(folder)
        except (OSError, ValueError, KeyError) as exc:
            print(f"report: skipping {folder}: unreadable ({type(exc).__name__}: {exc})")
            continue
        runs.append(_run_from(str(folder), config, status, series))
    return runs


def _own_series(folder: Path) -> dict:
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        return {name: (list(m["steps"]), list(m["values"]))
                for name, m in json.loads(metrics_path.read_text()).items()}
    # older hosts keep the curves only in info.json as `key` / `key_T`
    info_path = folder / "info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return {k: (info[k + "_T"], info[k]) for k in info if k + "_T" in info}


def _file_series(folder: Path, depth: int = 0) -> dict:
    """The run's curves; a resumed run's (resumed_from.json, see runs/loop.py) start with the curves of
    the run it continues, up to the step it resumed from, so a killed-and-resumed run reads as one."""
    from r3dm_epymarl.runs.loop import RESUMED_FROM

    series = _own_series(folder)
    link = folder / RESUMED_FROM
    if not link.is_file() or depth > 100:
        return series
    resumed = json.loads(link.read_text())
    previous = Path(resumed.get("run_dir") or "")
    if not previous.is_dir():
        print(f"report: {folder} resumed from {previous or '?'} (t_env {resumed['t_env']}), which is gone: "
              "its curves start there")
        return series
    t = resumed["t_env"]
    earlier = _file_series(previous, depth + 1)
    for name, (steps, values) in earlier.items():
        keep = [(s, v) for s, v in zip(steps, values) if s <= t]
        own_steps, own_values = series.get(name, ([], []))
        series[name] = ([s for s, _ in keep] + list(own_steps), [v for _, v in keep] + list(own_values))
    return series


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
    for entry in db.runs.find({}, {"config": 1, "status": 1}):
        series = {m["name"]: (m["steps"], m["values"]) for m in db.metrics.find({"run_id": entry["_id"]})}
        runs.append(_run_from(f"mongo:{entry['_id']}", _unflatten(entry.get("config", {})),
                              entry.get("status", "?"), series))
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

"""docs/study/keep_runs.py keeps the Sacred records of finished cells only, without checkpoints."""
import importlib.util
import json

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("keep_runs", REPO / "docs" / "study" / "keep_runs.py")
keep_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(keep_runs)


def _run(cell, run_id, status, start, resumed=False):
    folder = cell / "results" / "sacred" / "r3dm" / "2s3z" / str(run_id)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status, "start_time": start}))
    for name in ("config.json", "info.json", "metrics.json"):
        (folder / name).write_text("{}")
    (folder / "cout.txt").write_text("console")
    if resumed:
        (folder / "resumed_from.json").write_text(json.dumps({"run_dir": "elsewhere/1", "t_env": 10}))
    checkpoint = cell / "results" / "models" / "r3dm_seed1" / "10"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "checkpoint.json").write_text("{}")


def test_only_finished_cells_are_kept_with_every_run_and_no_checkpoint(tmp_path):
    source, dest = tmp_path / "runs", tmp_path / "kept"
    done = source / "2s3z" / "r3dm" / "seed1"
    _run(done, 1, "INTERRUPTED", "2026-12-02T10:00:00")
    _run(done, 2, "COMPLETED", "2026-12-02T11:00:00", resumed=True)
    running = source / "2s3z" / "r3dm" / "seed2"
    _run(running, 1, "COMPLETED", "2026-12-02T09:00:00")  # an earlier segment finished, the newest did not
    _run(running, 2, "RUNNING", "2026-12-02T12:00:00")
    assert keep_runs.keep(source, dest) == [done]
    kept = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    base = "2s3z/r3dm/seed1/results/sacred/r3dm/2s3z"
    assert kept == sorted([f"{base}/1/{n}" for n in ("config.json", "info.json", "metrics.json", "run.json")] +
                          [f"{base}/2/{n}" for n in ("config.json", "info.json", "metrics.json", "resumed_from.json",
                                                     "run.json")])

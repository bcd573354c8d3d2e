"""MongoDB logging through a real host run, against a real MongoDB wire-protocol server over a socket."""
import json

import pytest

from r3dm_epymarl.experiments import report
from tests.helpers import LBF_KEY, cli, free_port, metrics, run_ok, sacred_runs, zoo_train
from tests.report_runs import write_sacred_runs

pymongo = pytest.importorskip("pymongo")
gridfs = pytest.importorskip("gridfs")


@pytest.fixture
def db(mongo_server, request):
    name = "t_" + request.node.name.replace("[", "_").replace("]", "")[:50]
    client = pymongo.MongoClient(mongo_server, serverSelectionTimeoutMS=5000)
    yield f"{mongo_server}/{name}", client[name]
    client.close()


def test_runs_metrics_and_artifacts_land_in_mongo(zoo_available, db, tmp_path):
    url, database = db
    run_dir = zoo_train("acorm", tmp_path, f"mongo_url={url}", "save_model=True", "save_model_interval=150")

    (run,) = list(database.runs.find())
    assert run["status"] == "COMPLETED"
    assert run["config"]["name"] == "acorm" and run["config"]["seed"] == 7
    assert "mongo_url" not in run["config"], "the URL (maybe with a password) is not part of the config"
    assert run["file_run_id"] == run_dir.name  # the file storage run it mirrors

    # Metrics: what the file observer wrote is in the metrics collection too, step for step.
    on_disk = metrics(run_dir)
    for name in ("loss_td", "test_return_mean"):
        doc = database.metrics.find_one({"run_id": run["_id"], "name": name})
        assert doc is not None, name
        assert doc["steps"] == on_disk[name]["steps"] and doc["values"] == pytest.approx(on_disk[name]["values"])

    # Artifacts: the final checkpoint, byte for byte, in GridFS.
    names = {a["name"] for a in run["artifacts"]}
    assert any(n.endswith("_learner.th") for n in names) and not any("/" in n for n in names), names
    fs = gridfs.GridFS(database)
    artifact = next(a for a in run["artifacts"] if a["name"].endswith("_learner.th"))
    t = artifact["name"].removeprefix("model_").split("_")[0]
    assert fs.get(artifact["file_id"]).read() == (run_dir / "models" / t / "learner.th").read_bytes()
    # The file observer stored the same artifacts (a name with "/" failed there, and Sacred then dropped
    # that observer: its run.json stayed RUNNING and cout.txt lost its end).
    file_run = json.loads((run_dir / "run.json").read_text())
    assert file_run["status"] == "COMPLETED" and artifact["name"] in file_run["artifacts"]
    assert (run_dir / artifact["name"]).read_bytes() == (run_dir / "models" / t / "learner.th").read_bytes()


def test_two_result_folders_share_one_database(zoo_available, db, tmp_path):
    """Both file runs are run 1 of their own folder; Mongo keeps them apart."""
    url, database = db
    for seed, folder in ((1, "a"), (2, "b")):
        run_dir = zoo_train("r3dm_qmix", tmp_path / folder, seed=seed, env={"MONGO_URL": url})
        assert run_dir.name == "1"
    runs = list(database.runs.find())
    assert sorted(r["config"]["seed"] for r in runs) == [1, 2]
    assert len({r["_id"] for r in runs}) == 2 and all(r["status"] == "COMPLETED" for r in runs)


def test_mongo_down_says_so_once_and_keeps_the_file_logs(zoo_available, tmp_path):
    url = f"mongodb://127.0.0.1:{free_port()}/nobody_listens"
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=r3dm_qmix",
               "--env-config=gymma", "with", f"env_args.key={LBF_KEY}",
               "env_args.time_limit=25", "t_max=200", "batch_size=4", "buffer_size=16", "test_interval=100",
               "test_nepisode=2", "log_interval=100", "runner_log_interval=100", f"mongo_url={url}")
    run_ok(proc)
    lines = [line for line in proc.stderr.splitlines() if "MongoDB" in line]
    assert len(lines) == 1 and "unreachable" in lines[0] and "file storage only" in lines[0], lines
    (run_dir,) = sacred_runs(tmp_path)
    assert "test_return_mean" in metrics(run_dir)
    assert '"COMPLETED"' in (run_dir / "run.json").read_text()


def test_mongo_gives_the_same_report_as_the_folders(mongo_server, tmp_path):
    from r3dm_epymarl.hosts.sacred import mongo_observer

    url = f"{mongo_server}/report_known_answer"
    write_sacred_runs(tmp_path / "files", observer=lambda: mongo_observer(url))
    from_mongo = report.aggregate([r for r in report.load_mongo_runs(url) if r.status == "COMPLETED"])
    from_files = report.aggregate([r for r in report.load_file_runs(tmp_path / "files") if r.status == "COMPLETED"])
    assert len(from_mongo) == 3
    assert all(r.wall_s is not None and 0 <= r.wall_s < 60 for r in report.load_mongo_runs(url))
    for a, b in zip(from_mongo, from_files):
        assert (a.map, a.algorithm, a.seeds, a.metric) == (b.map, b.algorithm, b.seeds, b.metric)
        assert a.final == pytest.approx(b.final, nan_ok=True) and a.auc == pytest.approx(b.auc, nan_ok=True)

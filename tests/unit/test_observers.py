"""The Sacred observer wiring that needs no host: the mongo_url key, the env var, messages."""
import threading
import time

import pytest

from r3dm_epymarl.hosts import sacred as observers
from tests.helpers import free_port


def test_mongo_url_is_taken_out_of_the_with_keys(monkeypatch):
    monkeypatch.delenv("MONGO_URL", raising=False)
    argv = ["--config=acorm", "--env-config=smax", "with", "seed=1", "mongo_url=mongodb://h:1/db", "t_max=5"]
    assert observers.pop_mongo_url(argv) == (["--config=acorm", "--env-config=smax", "with", "seed=1", "t_max=5"],
                                             "mongodb://h:1/db")
    # the only `with` key: `with` goes too (Sacred refuses a bare `with`)
    assert observers.pop_mongo_url(["--config=qmix", "with", "mongo_url=mongodb://h:1"]) == (["--config=qmix"],
                                                                                             "mongodb://h:1")
    # before `with` it is not a Sacred key: left alone
    assert observers.pop_mongo_url(["mongo_url=x"]) == (["mongo_url=x"], None)


def test_env_var_is_the_fallback_and_the_key_wins(monkeypatch):
    monkeypatch.setenv("MONGO_URL", "mongodb://env:1")
    assert observers.pop_mongo_url(["with", "seed=1"])[1] == "mongodb://env:1"
    assert observers.pop_mongo_url(["with", "mongo_url=mongodb://key:1"])[1] == "mongodb://key:1"


def test_unreachable_server_is_one_line_without_the_password(capsys):
    url = f"mongodb://user:secret@127.0.0.1:{free_port()}/db"
    assert observers.mongo_observer(url, timeout_ms=300) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and "secret" not in err[0] and "***@127.0.0.1" in err[0]


def test_heartbeats_get_a_copy_of_info_while_the_host_adds_keys():
    seen = []

    class Observer:
        def heartbeat_event(self, info, captured_out, beat_time, result):
            seen.append(info)
            for _ in info:  # iterating the live dict while the logger adds keys raises RuntimeError
                time.sleep(0)  # let the logger thread in mid-iteration, as Sacred's JSON/BSON encoding does

    obs = Observer()
    observers._snapshot_heartbeats(obs)
    observers._snapshot_heartbeats(obs)  # idempotent: wrapped once
    info = {"loss": [1.0]}
    stop = threading.Event()

    def logger():
        for i in range(20000):
            if stop.is_set():
                break
            info[f"key_{i}"] = [i]
            time.sleep(0)

    thread = threading.Thread(target=logger)
    thread.start()
    try:
        for _ in range(10):
            obs.heartbeat_event(info=info, captured_out="", beat_time=None, result=None)
    finally:
        stop.set()
        thread.join()
    assert len(seen) == 10 and all(s is not info for s in seen)
    assert seen[0]["loss"] == [1.0] and seen[0]["loss"] is not info["loss"]


def test_sacreds_json_files_are_replaced_whole(tmp_path, monkeypatch):
    """A write that fails half-way (a full disk) leaves the previous, complete run.json (issue #41)."""
    import json as json_module
    from types import SimpleNamespace

    from r3dm_epymarl.hosts import sacred as observers

    obs = SimpleNamespace(dir=str(tmp_path))
    observers.atomic_save_json(obs, {"status": "RUNNING", "n": 1}, "run.json")
    assert json_module.loads((tmp_path / "run.json").read_text()) == {"status": "RUNNING", "n": 1}

    def full(obj, f, **kwargs):
        f.write('{"status": "FAI')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(observers.json, "dump", full)
    with pytest.raises(OSError, match="No space left"):
        observers.atomic_save_json(obs, {"status": "FAILED"}, "run.json")
    assert json_module.loads((tmp_path / "run.json").read_text()) == {"status": "RUNNING", "n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


@pytest.mark.parametrize("in_slurm_job", [False, True])
def test_inside_a_slurm_job_sacred_captures_output_without_tee_processes(monkeypatch, in_slurm_job):
    """Slurm signals every process of a job: Sacred's `tee` helpers ("fd" capture) would die before the
    run, stopping on its SIGTERM, writes its last lines (it then exits 1 with its checkpoint half-written)."""
    from sacred import SETTINGS

    monkeypatch.setitem(SETTINGS, "CAPTURE_MODE", "fd")  # both hosts' setting
    if in_slurm_job:
        monkeypatch.setenv("SLURM_JOB_ID", "42")
    else:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    observers._capture_for_schedulers()
    assert SETTINGS.CAPTURE_MODE == ("sys" if in_slurm_job else "fd")

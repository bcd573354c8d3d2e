"""W&B through the real EPyMARL loop (issue #36 item 5), with the real `wandb` library offline (no network):
a run stopped by SIGTERM finishes its W&B run with the step it stopped at, and the resumed run logs on
into the same W&B run, in the same group."""
import json
import os
import re
import signal
import struct
import subprocess
from pathlib import Path

import pytest

from tests.faults import faults
from tests.helpers import LBF_KEY, run_ok
from tests.signals import command_in, start_cli, wait_for

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = [
    pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)"),
    pytest.mark.filterwarnings("ignore"),
]
pytest.importorskip("wandb", reason="W&B tests need wandb (pip install wandb)")

RUN = [f"env_args.key={LBF_KEY}", "env_args.time_limit=25", "t_max=600", "batch_size=4", "buffer_size=32",
       "test_interval=150", "test_nepisode=2", "log_interval=150", "runner_log_interval=150",
       "learner_log_interval=0", "use_cuda=False", "save_model=True", "save_model_interval=100", "seed=2",
       "use_wandb=True", "wandb_mode=offline", "wandb_team=team", "wandb_project=project"]


def offline_run(folder: Path) -> dict:
    """What an offline W&B run file holds: its id, group, whether it was resumed, the logged steps and
    its exit record. The file is a log of protobuf records in 32 KiB blocks (a 7-byte header, then
    records of [crc32 (4), length (2), type (1): full, first, middle, last] that never cross a block)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("run-*.wandb")
    data, position, records, pending = path.read_bytes(), 7, [], b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # the rest of the block is padding
            position += left
            continue
        payload, position = data[position + 7:position + 7 + length], position + 7 + length
        if kind in (1, 4):
            records.append(pending + payload)
            pending = b""
        else:
            pending = (pending if kind == 3 else b"") + payload
    run = {"steps": [], "exit": None}
    for raw in records:
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(id=record.run.run_id, group=record.run.run_group, resumed=record.run.resumed)
        elif kind == "history":
            run["steps"].append(record.history.step.num)
        elif kind == "exit":
            run["exit"] = record.exit.exit_code
    return run


def test_a_stopped_run_finishes_its_wandb_run_and_the_resumed_run_continues_it(tmp_path):
    env = {"WANDB_DIR": str(tmp_path), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    argv = ["run", "--epymarl", EPYMARL_PATH, "--base-dir", str(tmp_path), "--config=acorm", "--env-config=gymma",
            "with", *RUN, "pretrain_encoder_steps=2", "pretrain_contrastive_steps=2"]
    run = start_cli(*argv, folder=tmp_path / "cli", env={**env, **faults(WAIT_AT_T=300)})
    wait_for(run.stderr, r"waiting for a signal at t_env \d+", run.proc)
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(timeout=300) == 143
    _, err = run.text()
    last = err.strip().splitlines()[-1]
    t_stop = int(re.search(r"stopped by SIGTERM at t_env ([\d,]+)", last)[1].replace(",", ""))
    (first_folder,) = (tmp_path / "wandb").glob("offline-run-*")
    first = offline_run(first_folder)
    assert first["exit"] is not None, "the W&B run was finished"
    # The host's logger sends a step's values when the next step's first value arrives: those of the last
    # step logged before the stop reach W&B only through its finish().
    (metrics,) = tmp_path.glob("results/sacred/*/*/*/metrics.json")
    last_logged = max(max(m["steps"]) for m in json.loads(metrics.read_text()).values())
    assert max(first["steps"]) == last_logged, "the values gathered for the last step were sent"

    resumed = subprocess.run(command_in(last, "resume with: "), capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONWARNINGS": "ignore", **env})
    run_ok(resumed)
    assert f"W&B: continuing run {first['id']}" in resumed.stderr
    (second_folder,) = set((tmp_path / "wandb").glob("offline-run-*")) - {first_folder}
    second = offline_run(second_folder)
    assert second["id"] == first["id"] and second["group"] == first["group"], (first, second)
    assert second["exit"] == 0  # (an offline resume does not set the run record's `resumed` flag)
    assert min(second["steps"]) > t_stop - 25 and max(second["steps"]) >= 600  # it goes on from the checkpoint

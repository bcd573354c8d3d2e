"""A run on a disk without room for its checkpoint (issue #41 item 1): one line naming the path and
"no space left", the Sacred files readable (run.json FAILED, the metrics so far), no half checkpoint.
Before: six tracebacks, run.json cut mid-way, metrics.json empty, a checkpoint without its manifest."""
import json
import os
import subprocess

import pytest

from tests.helpers import cli, sacred_runs, short_run

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_what_was_logged(zoo_available, small_disk):
    pytest.importorskip("lbforaging")
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(small_disk), "--config=acorm", "--env-config=gymma",
               "with", *short_run("acorm"), "t_max=600", "save_model=True", "save_model_interval=300")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in output, output[-3000:]
    (line,) = [l for l in output.splitlines() if "DiskFull: " in l]
    assert "no space left for the checkpoint at t_env=" in line and str(small_disk) in line
    (run,) = sacred_runs(small_disk)
    assert json.loads((run / "run.json").read_text())["status"] == "FAILED"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics and all(m["steps"] for m in metrics.values())
    steps = [p for p in (run / "models").glob("*") if p.is_dir()] if (run / "models").is_dir() else []
    assert all((p / "checkpoint.json").is_file() for p in steps), "no checkpoint without its manifest"

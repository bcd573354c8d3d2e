"""A run whose training diverges (lr=1e9: NaN from the first updates) ends FAILED with one line naming
it, for every algorithm of the registry (the host's QMIX through r3dm_qmix included), and `report` never
counts it as a seed (issue #41 item 3: it finished COMPLETED before)."""
import json

import pytest

from r3dm_epymarl.experiments import report
from r3dm_epymarl.registry import ALGORITHMS
from tests.helpers import cli, sacred_runs, short_run

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_a_diverged_run_fails_in_one_line_and_report_leaves_it_out(zoo_available, tmp_path, algorithm):
    pytest.importorskip("lbforaging")
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), f"--config={algorithm}",
               "--env-config=gymma", "with", *short_run(algorithm), "lr=1e9", "seed=3")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" not in output
    (line,) = [l for l in output.splitlines() if l.startswith("r3dm_epymarl.errors.TrainingDiverged: ")]
    assert "NaN or inf" in line and "Lower lr" in line, line
    (run,) = sacred_runs(tmp_path)
    entry = json.loads((run / "run.json").read_text())
    assert entry["status"] == "FAILED"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics, "what was logged before the divergence is kept"
    (loaded,) = report.load_file_runs(tmp_path)
    assert loaded.diverged  # report leaves it out whatever --status asks (tests/unit/test_report_rows.py)

"""docs/EXTENDING.md's worked example (docs/examples/rnd_term.py) through the real PyMARLzoo+ run loop:
a term of one's own, named by import path, trains, rewards and is logged, with no change to the plug-in."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers import cli, run_ok, sacred_runs, short_run

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_the_rnd_example_term_trains_and_is_logged_through_the_host_loop(tmp_path):
    pytest.importorskip("pymarlzooplus")
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=r3dm", "--env-config=gymma",
               "with", *short_run("r3dm"), "t_max=900", 'intrinsic_terms=["rnd_term:RNDReward"]',
               "seed=3", "rnd_hidden=48", env={"PYTHONPATH": str(EXAMPLES)})
    run_ok(proc)
    (run_dir,) = sacred_runs(tmp_path)
    # The term's own keys from the command line, no YAML copied (issue #39): the given one, and the default.
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["rnd_hidden"], config["rnd_lr"], config["name"]) == (48, 0.001, "r3dm")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    losses = metrics["loss_rnd"]["values"]
    rewards = metrics["r_int_rnd_mean"]["values"]
    assert len(losses) >= 5 and all(math.isfinite(v) for v in losses + rewards), losses
    assert losses[-1] < 0.5 * losses[0], losses  # the predictor learns the fixed random features
    assert all(r >= 0 for r in rewards) and rewards[-1] < rewards[0], rewards  # novelty wears off
    assert "r_int_world_model_mean" not in metrics and "r_int_policy_mean" not in metrics  # only the term asked for


def test_a_bad_import_path_is_one_line_before_training(tmp_path):
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=r3dm", "--env-config=gymma",
               "with", *short_run("r3dm"), 'intrinsic_terms=["rnd_term:NoSuchTerm"]', env={"PYTHONPATH": str(EXAMPLES)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "intrinsic_terms" in proc.stderr and "cannot be imported" in proc.stderr, proc.stderr[-2000:]
    assert not sacred_runs(tmp_path) if (tmp_path / "results").exists() else True


def test_a_term_the_controller_cannot_feed_is_refused_before_sacred_starts(tmp_path):
    """Issue #39 item 2: CDS's term reads the CDS agent's hidden states, which the role MAC has not."""
    proc = cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=r3dm", "--env-config=smax",
               "with", "env_args.map_name=3m", 'intrinsic_terms=["cds"]')
    assert proc.returncode != 0
    assert "intrinsic term 'cds' needs hidden" in proc.stderr and "Traceback" not in proc.stderr
    assert not sacred_runs(tmp_path), "no Sacred run was started"

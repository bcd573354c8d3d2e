"""Like for like: QMIX runs on the host's own learner, CDS/ACORM/R3DM on the plug-in's HookedQLearner.
With the same agent, mixer, weights and batch, and no intrinsic terms, the two must give the same TD
loss and gradients, on both hosts (see tests/host_parity.py)."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

HOSTS = [pytest.param("pymarlzooplus", None, id="pymarlzooplus"),
         pytest.param("epymarl", os.environ.get("EPYMARL_PATH"), id="epymarl",
                      marks=pytest.mark.skipif(not os.environ.get("EPYMARL_PATH"), reason="EPYMARL_PATH is not set"))]


@pytest.mark.parametrize("host, path", HOSTS)
def test_plugin_learner_equals_the_host_q_learner(host, path):
    proc = subprocess.run([sys.executable, "-m", "tests.host_parity", host, *([path] if path else [])],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n_tensors"] >= 8 and result["max_grad"] > 1e-4  # agent + QMIX mixer, real gradients
    assert result["plugin_loss"] == pytest.approx(result["host_loss"], rel=1e-6)
    assert result["max_grad_diff"] <= 1e-6 * max(1.0, result["max_grad"])

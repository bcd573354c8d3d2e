"""The study's scripts (docs/study/*.sh) produce the grid and the cell commands the study's README says."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)")


def _dry_run(script: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """The script with `--dry-run` passed on to compare. Should the flag not reach compare, the grid would
    really start training: the whole process group is killed at the timeout, so no cell outlives the test."""
    full_env = {**os.environ, "STUDY_DIR": str(tmp_path), "PYTHONWARNINGS": "ignore",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
    argv = ["bash", str(REPO / "docs" / "study" / script), "--dry-run"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=REPO,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"{script} --dry-run did not return within 90 s: is --dry-run passed on to compare?")
    assert not out.startswith("compare:"), f"{script} started the grid instead of printing it:\n{out[:500]}"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_study_grid_is_four_algorithms_two_maps_three_seeds(tmp_path):
    proc = _dry_run("run_study.sh", tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 24  # 4 algorithms x 2 maps x 3 seeds
    for alg in ("qmix", "cds", "acorm", "r3dm"):
        for map_name in ("2s3z", "3s_vs_5z"):
            cells = [line for line in lines if f"--config={alg} " in line and f"map_name={map_name} " in line]
            assert len(cells) == 3, (alg, map_name)
    assert all("t_max=150000" in line and "test_interval=5000" in line and "test_nepisode=32" in line
               and f"{tmp_path}/smax/" in line for line in lines)


def test_ablation_variant_runs_r3dm_with_one_term_under_its_own_name(tmp_path):
    proc = _dry_run("run_ablation.sh", tmp_path, VARIANT="policy_kl", SEEDS="1 2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all("--config=r3dm " in line and "map_name=2s3z " in line for line in lines)
    assert all('name=r3dm_policy_kl intrinsic_terms=["policy_kl"]' in line for line in lines)
    assert all(f"{tmp_path}/ablation_policy_kl/" in line for line in lines)


def test_ablation_refuses_an_unknown_variant(tmp_path):
    proc = _dry_run("run_ablation.sh", tmp_path, VARIANT="policy")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "VARIANT must be policy_kl, world_model or wm_published, not 'policy'"


def test_published_action_variant_keeps_both_terms_under_its_own_name(tmp_path):
    proc = _dry_run("run_ablation.sh", tmp_path, VARIANT="wm_published", SEEDS="1 2 3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all("name=r3dm_wm_published wm_action=published" in line for line in lines)
    assert not any("intrinsic_terms" in line for line in lines)
    assert all(f"{tmp_path}/ablation_wm_published/" in line for line in lines)


def test_5m_vs_6m_grid_is_four_algorithms_three_seeds_at_300k(tmp_path):
    proc = _dry_run("run_5m_vs_6m.sh", tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 12  # 4 algorithms x 3 seeds
    for alg in ("qmix", "cds", "acorm", "r3dm"):
        assert sum(f"--config={alg} " in line for line in lines) == 3, alg
    assert all("map_name=5m_vs_6m " in line and "t_max=300000" in line and "test_interval=10000" in line
               and "test_nepisode=32" in line and "save_model_interval=10000" in line
               and f"{tmp_path}/5m_vs_6m/" in line for line in lines)
    proc = _dry_run("run_5m_vs_6m.sh", tmp_path, VARIANT="wm_published", SEEDS="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [line for line in proc.stdout.splitlines()
                                        if "--config=r3dm " in line and "wm_action=published" in line
                                        and f"{tmp_path}/5m_vs_6m_wm_published/" in line]
    assert len(proc.stdout.splitlines()) == 1

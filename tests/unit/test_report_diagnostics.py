"""`report`'s diagnostics (intrinsic reward per term, role cluster sizes, both world models' losses) on
synthetic Sacred run folders with known answers."""
from __future__ import annotations

import pytest

from r3dm_epymarl.experiments import report
from r3dm_epymarl.experiments.report import diagnostics as diag
from tests.report_runs import STEPS, flat, load, r3dm_curves, ramp, write_run


def test_summaries_are_the_hand_computed_windows():
    # 11 points 0..1000: early = steps <= 200 (3 points), late = steps >= 800 (3 points)
    early, late, overall = diag.summarise(STEPS, ramp(1.0))
    assert (early, late, overall) == pytest.approx((0.1, 0.9, 0.5))
    # a window with no logged point takes the nearest one
    assert diag.summarise([0, 1000], [4.0, 2.0]) == pytest.approx((4.0, 2.0, 3.0))


def test_diagnostics_per_algorithm_with_the_role_over_agnostic_ratio(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path, "r3dm", "3m", seed, r3dm_curves(seed))
        write_run(tmp_path, "qmix", "3m", seed, {report.WIN_RATE: flat(0.2)})
    found = {(d.algorithm, d.quantity): d for d in diag.diagnostics(load(tmp_path))}
    assert not any(a == "qmix" for a, _ in found)  # the host's QMIX logs none of them
    assert ("r3dm", "r_int_obs_std") not in found  # spreads are not a per-term reward
    obs = found["r3dm", "r_int_obs_mean"]
    assert len(obs.per_seed) == 2 and obs.mean(1) == pytest.approx((0.09 + 0.18) / 2)  # late of 0.1, 0.2 ramps
    ratio = found["r3dm", "loss_wm_recon role/agnostic"]
    assert [p for p in ratio.per_seed] == [pytest.approx((0.5, 0.5, 0.5))] * 2
    assert ("r3dm", "loss_wm_dyn role/agnostic") not in found  # role dyn logged empty: no ratio, no crash
    # agnostic recon, seed 1: early mean of 11, 10.2, 9.4; seed 2 one higher
    assert found["r3dm", "loss_wm_recon"].mean(0) == pytest.approx(10.2 + 0.5)
    assert found["r3dm", "role_cluster_size_0"].row()[4:] == pytest.approx([2.5] * 5)


def test_no_diagnostics_no_file(tmp_path):
    write_run(tmp_path / "runs", "qmix", "3m", 1, {report.WIN_RATE: flat(0.2)})
    text, files = report.build_report([str(tmp_path / "runs")], out=str(tmp_path / "out"), reps=200)
    assert "== diagnostics" not in text and not (tmp_path / "out" / "diagnostics.csv").exists()

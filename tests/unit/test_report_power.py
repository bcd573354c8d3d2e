"""`report`'s answer to "can these seeds tell X from Y?" (issue #38): the difference with its CI, the
test, Hedges' g and the seeds a study needs, on per-seed data whose answer is known; the sample-size
formulas held to simulated studies."""
import json
import math

import numpy as np
import pytest

from r3dm_epymarl.experiments import report
from r3dm_epymarl.experiments.report import power
from tests.report_runs import flat, write_run


def test_a_large_clear_gap_is_decided_with_few_seeds():
    xs = [0.90, 0.92, 0.88, 0.91, 0.93, 0.90]
    ys = [0.10, 0.12, 0.09, 0.11, 0.10, 0.13]
    d = power.compare_scores("3m", "final win", "r3dm", "acorm", xs, ys, effect=0.1)
    assert d.difference == pytest.approx(np.mean(xs) - np.mean(ys))
    assert d.ci_low > 0.75 and d.ci_high < 0.85 and d.ci_excludes_zero
    assert d.test == "Welch's t-test" and d.p < 1e-8 and d.decided
    assert d.hedges_g > 20 and d.seeds_needed == 2 and d.seeds_needed_effect == 2
    assert "the CI excludes 0, r3dm > acorm" in d.verdict()


def test_identical_rows_contain_zero_and_no_seed_count_detects_no_difference():
    xs = [0.2, 0.5, 0.8]
    d = power.compare_scores("3m", "final win", "r3dm", "acorm", xs, list(xs), effect=0.1)
    assert d.difference == 0 and d.ci_low < 0 < d.ci_high and not d.decided
    assert d.test == "exact permutation test (20 splits)" and d.p == 1.0
    assert d.seeds_needed is None
    # pooled SD 0.3: 15.68 * 0.09 / 0.01 + 1 = 142.1 -> 143 seeds for an effect of 0.1
    assert d.seeds_needed_effect == math.ceil(power.FACTOR * 0.09 / 0.01 + 1) == 143
    assert "cannot tell with 3 vs 3 seeds; no number of seeds detects a difference of 0; 143 an effect of 0.1" \
        in d.verdict()


def test_three_seeds_apart_cannot_reach_significance_and_the_line_says_so():
    d = power.compare_scores("2s3z", "final win", "r3dm", "acorm", [0.8, 0.85, 0.9], [0.1, 0.15, 0.2])
    assert d.ci_excludes_zero and d.p == pytest.approx(0.1) and d.p_min == pytest.approx(0.1)
    assert not d.decided
    assert "(the CI excludes 0, but 3 vs 3 seeds cannot give p < 0.1)" in d.verdict()


def test_bimodal_rows_get_the_two_proportion_count():
    xs, ys = [0.90, 0.05, 0.85], [0.02, 0.0, 0.88]  # seeds that take off (> 0.45) and seeds that do not
    d = power.compare_scores("5m_vs_6m", "final win", "r3dm", "acorm", xs, ys)
    assert d.bimodal and d.share_x == pytest.approx(2 / 3) and d.share_y == pytest.approx(1 / 3)
    # (1.96 sqrt(2 x 0.25) + 0.8416 sqrt(2 x 2/9))^2 / (1/3)^2 = 34.1
    assert d.seeds_needed_shares == power.seeds_for_proportions(2 / 3, 1 / 3) == 35
    assert "runs split into ones that take off and ones that do not (0.67 of r3dm's seeds, 0.33 of acorm's)" \
        in d.verdict()
    assert not power.compare_scores("m", "s", "a", "b", [0.4, 0.5, 0.6], [0.45, 0.55, 0.5]).bimodal


def test_one_seed_cannot_give_a_spread():
    d = power.compare_scores("3m", "final win", "r3dm", "acorm", [0.5], [0.1, 0.2])
    assert d.p is None and d.seeds_needed is None and "r3dm has one seed" in d.verdict()


def test_the_seed_count_gives_80_percent_power_in_simulated_studies():
    """2,000 simulated studies at the computed n: Welch's t-test rejects in 0.8 +- 0.05 of them (normal
    per-seed scores); the two-proportion count likewise for runs that take off or not."""
    from scipy import stats

    rng = np.random.default_rng(0)
    sd, delta = 0.3, 0.15
    n = power.seeds_for_difference(sd, delta)
    assert n == math.ceil(power.FACTOR * 4 + 1) == 64
    x = rng.normal(delta, sd, (2000, n))
    y = rng.normal(0.0, sd, (2000, n))
    rejected = (stats.ttest_ind(x, y, axis=1, equal_var=False).pvalue < 0.05).mean()
    assert abs(rejected - 0.8) < 0.05, rejected

    p_x, p_y = 0.7, 0.3
    n = power.seeds_for_proportions(p_x, p_y)
    a = (rng.random((2000, n)) < p_x).mean(1)
    b = (rng.random((2000, n)) < p_y).mean(1)
    pooled = (a + b) / 2
    z = (a - b) / np.sqrt(2 * pooled * (1 - pooled) / n)
    rejected = (np.abs(z) > power.Z_ALPHA).mean()
    assert abs(rejected - 0.8) < 0.05, (n, rejected)


def test_report_prints_the_verdicts_above_the_tables_and_writes_them(tmp_path):
    root = tmp_path / "runs"
    for seed, (r3dm, acorm) in enumerate(((0.9, 0.1), (0.8, 0.2), (0.85, 0.15)), start=1):
        write_run(root, "r3dm", "2s3z", seed, {report.WIN_RATE: flat(r3dm), report.RETURN: flat(10 * r3dm)})
        write_run(root, "acorm", "2s3z", seed, {report.WIN_RATE: flat(acorm), report.RETURN: flat(10 * acorm)})
        write_run(root, "qmix", "2s3z", seed, {report.WIN_RATE: flat(0.5), report.RETURN: flat(5.0)})
    text, files = report.build_report([str(root)], out=str(tmp_path / "out"), reps=200,
                                      json_path=str(tmp_path / "d.json"))
    head = text.splitlines()
    assert head[0].startswith("== can these seeds tell the algorithms apart?")
    assert head[1].startswith("2s3z, final test_battle_won_mean: r3dm - acorm = +0.700 [")
    assert head[2].startswith("2s3z, final test_battle_won_mean: r3dm - qmix = +0.350 [")
    assert "cannot give p < 0.1" in head[1] and text.index("== 2s3z:") > text.index(head[2])
    summary = json.loads((tmp_path / "d.json").read_text())
    assert [(v["x"], v["y"]) for v in summary["verdicts"]] == [("r3dm", "acorm"), ("r3dm", "qmix")]
    scores = {d["score"] for d in summary["differences"]}
    assert scores == {"final test_battle_won_mean", "AUC test_battle_won_mean", "final test_return_mean"}
    assert len(summary["differences"]) == 3 * 6  # every ordered pair of 3 algorithms, 3 scores
    rows = (tmp_path / "out" / "differences.csv").read_text().splitlines()
    assert len(rows) == 1 + 18 and "seeds_needed" in rows[0]
    improvement = (tmp_path / "out" / "improvement.csv").read_text().splitlines()
    assert improvement[0].endswith("seeds_needed,seeds_needed_effect,bimodal,seeds_needed_shares")
    assert any(line.startswith("2s3z,r3dm,acorm,") and ",0.7" in line for line in improvement)
    text, _ = report.build_report([str(root)], out=str(tmp_path / "out2"), reps=200, baseline="acorm")
    lines = text.splitlines()
    assert lines[1].startswith("2s3z, final test_battle_won_mean: qmix - acorm = +0.350")
    assert lines[2].startswith("2s3z, final test_battle_won_mean: r3dm - acorm = +0.700")

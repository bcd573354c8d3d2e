"""`report`'s rliable statistics (IQM, mean, median, optimality gap, probability of improvement,
profiles, sample-efficiency curves) on synthetic Sacred run folders with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from r3dm_epymarl.experiments import report
from r3dm_epymarl.experiments.report import rliable as rl
from tests.report_runs import STEPS, flat, load, ramp, write_run

REPS = rl.default_reps(1000)
FAST = rl.default_reps(200)  # where the answer does not depend on the resamples (all-or-nothing P(X > Y))


# --- known answers --------------------------------------------------------------------------------------

def test_iqm_mean_median_gap_equal_the_hand_computed_values(tmp_path):
    scores = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 1.0]  # one flat win-rate curve per seed
    for seed, score in enumerate(scores, start=1):
        write_run(tmp_path, "qmix", "3m", seed, {report.WIN_RATE: flat(score)})
    (group,), notes = rl.map_groups(load(tmp_path))
    assert notes == [] and group.scale is None
    np.testing.assert_allclose(group.scores()["qmix"][:, 0], scores)
    stats = rl.estimate(group, REPS, seed=0)
    iqm, mean, median, gap = stats.points["qmix"]
    assert iqm == pytest.approx((0.2 + 0.3 + 0.4 + 0.5) / 4)  # the middle half of 8 runs
    assert mean == pytest.approx(sum(scores) / 8)  # 0.425
    assert median == pytest.approx(0.425)  # rliable: the median over tasks of the task means (one task)
    assert gap == pytest.approx(1 - 0.425)  # 1 - mean(min(score, 1))
    low, high = stats.cis["qmix"]  # [4] each
    assert np.all(low <= stats.points["qmix"]) and np.all(stats.points["qmix"] <= high)
    assert high[0] - low[0] > 0.1  # 8 spread-out runs: a real interval, not a point
    # the curve: every step holds the same eight values, so the IQM is 0.35 all along
    np.testing.assert_allclose(stats.curves["qmix"], 0.35)
    assert stats.curves["qmix"].shape == (11,) and stats.curve_cis["qmix"].shape == (2, 11)


def test_returns_are_min_max_normalised_per_map_before_aggregating(tmp_path):
    for seed, score in enumerate([0.0, 5.0, 10.0, 20.0], start=1):  # returns: normalised 0, .25, .5, 1
        write_run(tmp_path, "acorm", "Foraging-8x8-3p-3f-v3", seed, {report.RETURN: flat(score)})
    (group,), _ = rl.map_groups(load(tmp_path))
    assert group.metric == report.RETURN and group.scale == (0.0, 20.0)
    np.testing.assert_allclose(group.scores()["acorm"][:, 0], [0.0, 0.25, 0.5, 1.0])
    stats = rl.estimate(group, REPS)
    assert stats.points["acorm"][0] == pytest.approx((0.25 + 0.5) / 2)  # IQM of 4 runs: the middle two
    text = rl.render([stats], REPS, 0, [])
    normalised = [line for line in text.splitlines() if line.startswith("normalised:")]
    assert len(normalised) == 1 and "Foraging-8x8-3p-3f-v3 0..20 -> 0..1" in normalised[0]


def test_every_seed_better_gives_probability_of_improvement_one(tmp_path):
    for seed in (1, 2, 3):
        for map_name, low in (("3m", 0.0), ("8m", 0.1)):
            write_run(tmp_path, "qmix", map_name, seed, {report.WIN_RATE: ramp(low + 0.1 * seed)})  # finals <= 0.4
            write_run(tmp_path, "r3dm", map_name, seed, {report.WIN_RATE: ramp(0.5 + 0.1 * seed)})  # >= 0.6
    groups, _ = rl.map_groups(load(tmp_path))
    overall, notes = rl.all_maps_group(groups)
    assert notes == [] and overall.tasks == ["3m", "8m"] and overall.finals["r3dm"].shape == (3, 2)
    for stats in [rl.estimate(g, FAST) for g in groups] + [rl.estimate(overall, FAST)]:
        assert list(stats.points) == ["r3dm", "qmix"]  # R3DM first
        assert stats.improvement["r3dm", "qmix"] == (1.0, 1.0, 1.0)  # point, CI low, CI high
        assert stats.improvement["qmix", "r3dm"] == (0.0, 0.0, 0.0)
    text = rl.render([stats], FAST, 0, [])
    matrix = text[text.index("probability of improvement"):].splitlines()
    assert matrix[1].split() == ["r3dm", "qmix"]
    assert matrix[2].split() == ["r3dm", "-", "1.00", "[1.00,", "1.00]"]
    assert matrix[3].split() == ["qmix", "0.00", "[0.00,", "0.00]", "-"]


def test_ci_contains_the_iqm_narrows_with_more_seeds_and_is_reproducible(tmp_path):
    reps = rl.Reps(intervals=1000, improvement=50, profiles=300, curves=50)
    widths = {}
    for n in (4, 16):
        root = tmp_path / f"n{n}"
        for seed, score in enumerate(np.linspace(0.0, 1.0, n), start=1):  # IQM 0.5 (symmetric)
            write_run(root, "r3dm", "3m", seed, {report.WIN_RATE: flat(float(score))})
        (group,), _ = rl.map_groups(load(root))
        stats = rl.estimate(group, reps, seed=0)
        (low, high), iqm = stats.cis["r3dm"][:, 0], stats.points["r3dm"][0]
        assert iqm == pytest.approx(0.5) and low < iqm < high
        widths[n] = high - low
        again = rl.estimate(group, reps, seed=0)  # the same seed: the same intervals
        np.testing.assert_array_equal(again.cis["r3dm"], stats.cis["r3dm"])
        np.testing.assert_array_equal(again.profile_cis["r3dm"], stats.profile_cis["r3dm"])
    assert widths[16] < 0.75 * widths[4], widths  # 4x the seeds: about half the width


def test_bootstrap_is_seeded_and_leaves_numpys_generator_alone(tmp_path):
    for seed, score in enumerate([0.1, 0.3, 0.4, 0.8, 0.9], start=1):
        write_run(tmp_path, "qmix", "3m", seed, {report.WIN_RATE: flat(score)})
    (group,), _ = rl.map_groups(load(tmp_path))
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    first = rl.estimate(group, rl.default_reps(300), seed=0)
    assert np.random.random() == expected  # the caller's global state is put back
    other = rl.estimate(group, rl.default_reps(300), seed=1)
    assert not np.array_equal(first.cis["qmix"], other.cis["qmix"])


def test_default_reps_are_rliables():
    reps = rl.default_reps()
    assert (reps.intervals, reps.improvement, reps.profiles, reps.curves) == (50000, 2000, 2000, 2000)
    assert rl.default_reps(7) == rl.Reps(7, 7, 7, 7)


def test_unequal_seeds_and_steps_are_named_and_compared_on_what_is_common(tmp_path):
    for seed in (1, 2, 3):
        write_run(tmp_path, "r3dm", "3m", seed, {report.WIN_RATE: ramp(1.0)})  # 0..1000
    for seed in (1, 2):  # seed 3 missing, and only 500 steps trained
        write_run(tmp_path, "qmix", "3m", seed, {report.WIN_RATE: ramp(1.0, STEPS[:6])}, t_max=500)
    (group,), notes = rl.map_groups(load(tmp_path))
    assert notes == ["3m: qmix lacks seed 3", "3m: finals and curves on the 6 steps all runs share, up to 500 "
                                              "(runs end at r3dm 1000, qmix 500)"]
    np.testing.assert_array_equal(group.steps, STEPS[:6])
    np.testing.assert_allclose(group.finals["r3dm"][:, 0], 0.5)  # the last 5% of the common 500 steps
    assert group.curves["r3dm"].shape == (3, 1, 6) and group.curves["qmix"].shape == (2, 1, 6)
    stats = rl.estimate(group, FAST)
    assert stats.improvement["r3dm", "qmix"][0] == pytest.approx(0.5)  # equal at step 500: ties count half
    text = rl.render([stats], FAST, 0, notes)
    (line,) = [t for t in text.splitlines() if t.startswith("unequal runs")]
    assert "qmix lacks seed 3" in line and "up to 500" in line


def test_all_maps_keeps_the_maps_every_algorithm_ran_and_its_fewest_seeds(tmp_path):
    for map_name, seeds in (("3m", (1, 2, 3)), ("8m", (1, 2))):
        for seed in seeds:
            write_run(tmp_path, "r3dm", map_name, seed, {report.WIN_RATE: flat(0.9)})
            write_run(tmp_path, "qmix", map_name, seed, {report.WIN_RATE: flat(0.2)})
    write_run(tmp_path, "qmix", "2s3z", 1, {report.WIN_RATE: flat(0.5)})  # no r3dm here
    groups, _ = rl.map_groups(load(tmp_path))
    overall, notes = rl.all_maps_group(groups)
    assert overall.tasks == ["3m", "8m"] and overall.finals["qmix"].shape == (2, 2)
    assert notes == ["all maps: 2s3z lacks r3dm (map left out)",
                     "all maps: r3dm counted with its first 2 seeds on every map",
                     "all maps: qmix counted with its first 2 seeds on every map"]
    none, why = rl.all_maps_group([g for g in groups if g.name in ("2s3z", "3m")])
    assert none is None and why == ["all maps: no aggregate, fewer than two maps hold every algorithm "
                                    "(2s3z lacks r3dm)"]

"""`report --export marl-eval FILE.json`: the layout marl-eval (PyPI id-marl-eval) documents, and, where
id-marl-eval is importable, its own loader on the file. id-marl-eval is not a dependency (it pins
pandas==1.4.4 and pulls in neptune): the loader test skips without it."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from r3dm_epymarl.experiments import report
from r3dm_epymarl.experiments.report import rliable as rl
from tests.report_runs import STEPS, load, ramp, write_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """SMAX 3m and 8m (win rate and return) and LBF (return) for qmix and r3dm, seeds 1-3 (r3dm also
    seed 4 on 3m), exported; returns the runs' folder, the parsed file and the printed text."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (1, 2, 3, 4):
        for map_name in ("3m", "8m"):
            for algorithm, top in (("qmix", 0.1 * seed), ("r3dm", 0.5 + 0.1 * seed)):
                if seed == 4 and (algorithm, map_name) != ("r3dm", "3m"):
                    continue
                wins = ramp(top)
                write_run(root, algorithm, map_name, seed,
                          {report.WIN_RATE: wins, report.RETURN: [20 * w for w in wins]})
        if seed < 4:
            write_run(root, "qmix", "Foraging-8x8-3p-3f-v3", seed, {report.RETURN: ramp(0.1 * seed)})
            write_run(root, "r3dm", "Foraging-8x8-3p-3f-v3", seed, {report.RETURN: ramp(0.5 + 0.1 * seed)})
    path = tmp_path_factory.mktemp("out") / "marl_eval.json"
    text, files = report.build_report([str(root)], out=str(path.parent), reps=50, export=("marl-eval", str(path)))
    assert path in files
    return root, json.loads(path.read_text()), text


def test_export_has_the_documented_layout(exported):
    root, data, text = exported
    assert sorted(data) == ["lbforaging", "smax"]  # env_name: the gymnasium id's package, else config `env`
    assert sorted(data["smax"]) == ["3m", "8m"] and list(data["lbforaging"]) == ["Foraging-8x8-3p-3f-v3"]
    assert "3m: marl-eval export keeps 3 run(s) per algorithm (r3dm drops 1)" in text  # marl-eval wants equal runs
    # its "absolute_metrics" are the last 5% of training, not marl-eval's re-evaluated best policy: said
    assert "absolute_metrics hold each run's final (the mean of its tests in the last 5% of steps), not " \
           "marl-eval's absolute metric" in text
    for env, tasks in data.items():
        for task, algorithms in tasks.items():
            assert sorted(algorithms) == ["qmix", "r3dm"]
            for algorithm, runs in algorithms.items():
                assert list(runs) == ["seed_1", "seed_2", "seed_3"]
                for run in runs.values():
                    assert list(run) == [f"step_{i}" for i in range(11)] + ["absolute_metrics"]
                    metrics = ["win_rate", "return"] if env == "smax" else ["return"]
                    assert [run[f"step_{i}"]["step_count"] for i in range(11)] == STEPS
                    for i in range(11):
                        assert sorted(run[f"step_{i}"]) == sorted(["step_count", *metrics])
                        assert all(isinstance(run[f"step_{i}"][m], list) and len(run[f"step_{i}"][m]) == 1
                                   for m in metrics)
                    assert sorted(run["absolute_metrics"]) == sorted(metrics)
    r3dm = data["smax"]["3m"]["r3dm"]["seed_2"]  # ramp to 0.7: raw values, the report's final
    assert r3dm["step_5"]["win_rate"] == [pytest.approx(0.35)] and r3dm["step_5"]["return"] == [pytest.approx(7.0)]
    assert r3dm["absolute_metrics"] == {"win_rate": [pytest.approx(0.7)], "return": [pytest.approx(14.0)]}
    assert data["lbforaging"]["Foraging-8x8-3p-3f-v3"]["qmix"]["seed_3"]["absolute_metrics"] == {
        "return": [pytest.approx(0.3)]}


def test_marl_eval_loads_the_export(exported):
    pytest.importorskip("marl_eval.utils.data_processing_utils",
                        reason="id-marl-eval is not installed (pip install --no-deps id-marl-eval==0.0.4)")
    from marl_eval.utils.data_processing_utils import create_matrices_for_rliable, data_process_pipeline
    from marl_eval.utils.diagnose_data_errors import DiagnoseData

    root, data, _ = exported
    checks = DiagnoseData(copy.deepcopy(data)).check_data()
    assert all(all(c.values()) for c in checks.values()), checks
    groups = {g.name.lower(): g for g in rl.map_groups(load(root))[0]}
    for env in ("smax", "lbforaging"):
        processed = data_process_pipeline(raw_data=copy.deepcopy(data), metrics_to_normalize=["return"])
        assert processed["extra"]["number_of_runs"] == 3 and processed["extra"]["number_of_steps"] == 11
        finals, curves = create_matrices_for_rliable(processed, environment_name=env, metrics_to_normalize=["return"])
        tasks = sorted(data[env], key=str.lower)
        for algorithm in ("qmix", "r3dm"):
            assert curves["mean_norm_return"][algorithm].shape == (3, len(tasks), 11)  # runs x tasks x steps
            if env == "smax":  # win rates: the report's finals, first three seeds
                ours = np.concatenate([groups[t.lower()].finals[algorithm][:3] for t in tasks], axis=1)
                np.testing.assert_allclose(finals["mean_win_rate"][algorithm], ours)
            else:  # returns: marl-eval's own min-max normalisation gives the report's normalised finals
                ours = groups[tasks[0].lower()].scores()[algorithm]
                np.testing.assert_allclose(finals["mean_norm_return"][algorithm], ours, atol=1e-5)

"""`r3dm-epymarl report` on synthetic Sacred runs with a known answer, from folders and from MongoDB."""
import math

import pytest

from r3dm_epymarl.experiments import report
from tests.report_runs import write_sacred_runs

T_975 = {2: 4.302653, 4: 2.776445}  # Student t quantiles for 2 and 4 degrees of freedom

@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sacred")
    write_sacred_runs(root)
    return root


def _by_algorithm(rows):
    return {r.algorithm: r for r in rows}


def test_known_answer_from_file_storage(runs_dir):
    runs = [r for r in report.load_file_runs(runs_dir) if r.status == "COMPLETED"]
    assert len(runs) == 11
    rows = _by_algorithm(report.aggregate(runs))

    qmix = rows["qmix"]  # finals 0.2, 0.4, 0.6 (only step 1000 is in the last 5%)
    assert qmix.metric == report.WIN_RATE and qmix.seeds == [1, 2, 3]
    assert qmix.final[0] == pytest.approx(0.4)
    assert qmix.final[1] == pytest.approx(T_975[2] * 0.2 / math.sqrt(3), rel=1e-5)
    assert qmix.auc[0] == pytest.approx(0.2)  # a ramp's average is half its top
    assert qmix.auc[1] == pytest.approx(T_975[2] * 0.1 / math.sqrt(3), rel=1e-5)
    assert (qmix.threshold, qmix.steps_to_threshold, qmix.reached) == (0.5, 900, 1)  # 0.6 * 900/1000 >= 0.5

    r3dm = rows["r3dm"]  # the failed seed 4 is not counted
    assert r3dm.seeds == [1, 2, 3] and r3dm.final == (pytest.approx(1.0), pytest.approx(0.0))
    assert r3dm.auc[0] == pytest.approx(0.75)  # 0.5 * 100 + 1 * 700 over 1000 steps
    assert (r3dm.steps_to_threshold, r3dm.reached) == (300, 3)

    acorm = rows["acorm"]  # no win rate on LBF: the return, no default threshold
    assert acorm.map == "Foraging-8x8-3p-3f-v3" and acorm.metric == report.RETURN
    assert acorm.final[0] == pytest.approx(0.3)
    assert acorm.final[1] == pytest.approx(T_975[4] * math.sqrt(0.025) / math.sqrt(5), rel=1e-5)
    assert acorm.threshold is None


def test_probability_of_improvement_on_sacred_runs(runs_dir):
    from r3dm_epymarl.experiments.report import rliable as rl

    runs = [r for r in report.load_file_runs(runs_dir) if r.status == "COMPLETED"]
    groups, notes = rl.map_groups(runs)
    assert [g.name for g in groups] == ["5m_vs_6m", "Foraging-8x8-3p-3f-v3"] and notes == []
    stats = rl.estimate(groups[0], rl.default_reps(500))
    assert stats.improvement["r3dm", "qmix"] == (1.0, 1.0, 1.0)  # every r3dm seed beats every qmix seed
    assert stats.improvement["qmix", "r3dm"] == (0.0, 0.0, 0.0)
    assert stats.points["qmix"][0] == pytest.approx(0.4)  # IQM of 0.2, 0.4, 0.6 (3 runs: nothing trimmed)


def test_paper_overlay_matches_map_and_algorithm_case_insensitively(tmp_path):
    published = report.load_paper("builtin")
    assert published[("3s5z_vs_3s6z", "r3dm")] == pytest.approx(0.776)
    assert published[("corridor", "cds")] == pytest.approx(0.650)
    assert len(published) == 84  # 12 maps x 7 algorithms


def test_a_resumed_run_reads_as_one_curve_and_an_unreadable_run_is_skipped(tmp_path, capsys):
    import json

    import shutil

    from r3dm_epymarl.experiments.report.runs import drop_continued, load_file_runs

    def sacred(folder, status, steps, values, resumed=None, times=None):
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"status": status, **(times or {})}))
        (folder / "config.json").write_text(json.dumps({"name": "r3dm", "seed": 1, "env_args": {"map_name": "3m"}}))
        (folder / "metrics.json").write_text(json.dumps({"test_battle_won_mean": {"steps": steps, "values": values}}))
        if resumed:
            (folder / "resumed_from.json").write_text(json.dumps(resumed))

    first, second, third = tmp_path / "sacred/1", tmp_path / "sacred/2", tmp_path / "sacred/3"
    # killed at ~300 (no stop_time: its last heartbeat ends it), checkpoint at 150; then 90 + 30 + 600 s
    sacred(first, "RUNNING", [0, 100, 200, 300], [0.0, 0.1, 0.2, 0.3],
           times={"start_time": "2026-11-29T10:00:00", "heartbeat": "2026-11-29T10:01:30.5"})
    sacred(second, "FAILED", [200, 300, 400], [0.25, 0.35, 0.45], {"run_dir": str(first), "t_env": 150},
           times={"start_time": "2026-11-29T11:00:00", "stop_time": "2026-11-29T11:00:30", "heartbeat": "x"})
    sacred(third, "COMPLETED", [500, 600], [0.5, 0.6], {"run_dir": str(second), "t_env": 450},
           times={"start_time": "2026-11-29T23:55:00", "stop_time": "2026-11-30T00:05:00"})
    broken = tmp_path / "sacred/4"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "run.json").write_text('{"status": "COMPL')  # killed while writing
    loaded = load_file_runs(tmp_path)
    assert sorted(r.status for r in loaded) == ["COMPLETED", "FAILED", "RUNNING"]
    runs = {r.status: r for r in drop_continued(loaded)}
    assert list(runs) == ["COMPLETED"]  # the runs it continues are in its curve, not counted again
    stitched = ([0, 100, 200, 300, 400, 500, 600], [0.0, 0.1, 0.25, 0.35, 0.45, 0.5, 0.6])
    assert runs["COMPLETED"].series["test_battle_won_mean"] == stitched
    assert (runs["COMPLETED"].wall_s, runs["COMPLETED"].segments) == (pytest.approx(720.5), 3)  # the whole chain
    out = capsys.readouterr().out
    assert out.count("report: skipping") == 1 and "sacred/4: unreadable" in out
    # chosen by status first: a run whose continuation was not chosen stays (e.g. a COMPLETED run whose
    # continuation is still RUNNING, when only COMPLETED runs are read)
    first_only = [r for r in loaded if r.status == "RUNNING"]
    assert drop_continued(first_only) == first_only
    # the tree copied elsewhere (the links hold the old absolute paths): the sibling folders are used
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    shutil.copytree(tmp_path / "sacred", moved / "sacred")
    shutil.rmtree(tmp_path / "sacred")
    runs = drop_continued(load_file_runs(moved))
    assert [r.series["test_battle_won_mean"] for r in runs] == [stitched]
    assert [(r.wall_s, r.segments) for r in runs] == [(pytest.approx(720.5), 3)]
    from r3dm_epymarl.experiments.report.runs import wall_seconds

    assert wall_seconds({"start_time": "yesterday", "stop_time": "2026-11-29T10:00:00"}) is None  # no crash
    assert wall_seconds({"heartbeat": "2026-11-29T10:00:00"}) is None
    # a link to the run's own folder is ignored (no self-stitching, the run is not dropped)
    sacred(moved / "self", "COMPLETED", [0, 100], [0.0, 0.2], {"run_dir": str(moved / "self"), "t_env": 50})
    alone = [r for r in drop_continued(load_file_runs(moved)) if r.source.endswith("self")]
    assert [r.series["test_battle_won_mean"] for r in alone] == [([0, 100], [0.0, 0.2])]

"""docs/study/finals_stats.py: rliable on per-seed finals from cells.csv files gives report's numbers."""
import importlib.util

import pytest

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("finals_stats", REPO / "docs" / "study" / "finals_stats.py")
finals_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(finals_stats)

HEADER = "map,algorithm,seed,status,metric,final,auc,steps,wall_s,segments\n"


def _cells(path, rows):
    path.write_text(HEADER + "".join(f"{m},{a},{s},{st},test_battle_won_mean,{f},0.1,150000,100,1\n"
                                     for m, a, s, st, f in rows))
    return path


def test_two_files_are_compared_as_report_would(tmp_path, capsys):
    old = _cells(tmp_path / "old.csv", [("2s3z", "x", 1, "COMPLETED", 0.2), ("2s3z", "x", 2, "COMPLETED", 0.4),
                                        ("2s3z", "x", 3, "FAILED", 0.9), ("3m", "x", 1, "COMPLETED", 1.0)])
    new = _cells(tmp_path / "new.csv", [("2s3z", "y", 1, "COMPLETED", 0.5), ("2s3z", "y", 2, "COMPLETED", 0.6)])
    finals = finals_stats.read_finals([old, new], "2s3z", None)
    assert finals == {"x": {1: 0.2, 2: 0.4}, "y": {1: 0.5, 2: 0.6}}  # FAILED and other maps left out
    finals_stats.main([str(old), str(new), "--map", "2s3z", "--reps", "200"])
    out = capsys.readouterr().out
    assert "x: seed 1 0.200, seed 2 0.400" in out
    # every y final beats every x final: P(y > x) = 1 in every resample, P(x > y) = 0
    y_row = next(line for line in out.splitlines() if line.startswith("y ") and "[" in line and "1.00" in line)
    assert "1.00 [1.00, 1.00]" in y_row
    assert "0.300 [0.200, 0.400]" in out  # x's mean of two finals, with its bootstrap range


def test_the_committed_ablation_cells_reproduce_the_committed_report(capsys):
    cells = REPO / "docs" / "study" / "ablation_report" / "cells.csv"
    finals_stats.main([str(cells), "--map", "2s3z", "--algorithms", "r3dm", "acorm", "--reps", "2000", "--seed", "0"])
    out = capsys.readouterr().out
    r3dm_row = next(line for line in out.splitlines() if line.startswith("r3dm ") and "-" in line.split()[1:3])
    assert "0.44 [0.00, 1.00]" in r3dm_row  # P(R3DM > ACORM) as docs/study/ablation_report.txt says


def test_a_cell_in_two_files_and_a_missing_algorithm_are_refused(tmp_path):
    a = _cells(tmp_path / "a.csv", [("2s3z", "x", 1, "COMPLETED", 0.2)])
    b = _cells(tmp_path / "b.csv", [("2s3z", "x", 1, "COMPLETED", 0.3)])
    with pytest.raises(SystemExit, match="x seed 1 is in both"):
        finals_stats.read_finals([a, b], "2s3z", None)
    with pytest.raises(SystemExit, match="--algorithms: no COMPLETED 2s3z row for z"):
        finals_stats.read_finals([a], "2s3z", ["x", "z"])


def test_a_missing_file_and_a_csv_of_another_kind_are_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no such file; give cells.csv files"):
        finals_stats.read_finals([tmp_path / "nowhere.csv"], "2s3z", None)
    other = tmp_path / "report.csv"
    other.write_text("map,algorithm,final_mean\n2s3z,x,0.5\n")
    with pytest.raises(SystemExit, match="no column final, seed, status; is it a cells.csv"):
        finals_stats.read_finals([other], "2s3z", None)


def test_one_config_at_two_commits_is_two_rows_under_names_given(tmp_path, capsys):
    before = _cells(tmp_path / "before.csv", [("2s3z", "r3dm", 1, "COMPLETED", 0.7), ("2s3z", "r3dm", 2, "COMPLETED", 0.8)])
    after = _cells(tmp_path / "after.csv", [("2s3z", "r3dm", 1, "COMPLETED", 0.2), ("2s3z", "r3dm", 2, "COMPLETED", 0.3)])
    finals = finals_stats.read_finals([before, after], "2s3z", None, {str(after): "r3dm_new"})
    assert finals == {"r3dm": {1: 0.7, 2: 0.8}, "r3dm_new": {1: 0.2, 2: 0.3}}
    finals_stats.main([str(before), str(after), "--map", "2s3z", "--name", str(after), "r3dm_new", "--reps", "200"])
    out = capsys.readouterr().out
    assert "r3dm_new: seed 1 0.200, seed 2 0.300" in out
    assert "2s3z, final test_battle_won_mean: r3dm - r3dm_new = +0.500" in out


def test_a_name_for_a_file_not_given_is_refused(tmp_path):
    cells = _cells(tmp_path / "a.csv", [("2s3z", "x", 1, "COMPLETED", 0.2)])
    with pytest.raises(SystemExit, match="--name .*b.csv: not one of the cells files given"):
        finals_stats.main([str(cells), "--map", "2s3z", "--name", str(tmp_path / "b.csv"), "y"])

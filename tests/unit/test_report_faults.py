"""`report` on bad paths, bad --paper CSVs and damaged or unfinished runs: one clear line, or the run
named and skipped, and the report's numbers from the runs that can be read (issue 28, items 8 and the
report's "unclear" ones)."""
from __future__ import annotations

import pytest

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.experiments import report
from tests.sacred_folders import WON, table_row, two_good_runs, write_run


def build(sources, out, **kwargs):
    return report.build_report([str(s) for s in sources], out=str(out), reps=200, **kwargs)


# --- paths -----------------------------------------------------------------------------------------------

def test_a_folder_that_does_not_exist_is_named(tmp_path):
    two_good_runs(tmp_path / "runs")
    with pytest.raises(UserError, match=r"nowhere does not exist: give the folders compare wrote"):
        build([tmp_path / "runs", tmp_path / "nowhere"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["out under a file", "out is a file", "export under a file", "export is a folder"])
def test_out_and_export_where_they_cannot_be_written_are_one_line_before_any_output(where, tmp_path):
    two_good_runs(tmp_path / "runs")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out, export = tmp_path / "out", None
    if where == "out under a file":
        out = blocker / "report"
    elif where == "out is a file":
        out = blocker
    elif where == "export under a file":
        export = ("marl-eval", str(blocker / "runs.json"))
    else:
        export = ("marl-eval", str(tmp_path / "runs"))
    fragment = {"out under a file": f"--out {out}: {blocker} is a file, not a folder",
                "out is a file": f"--out {out}: that is a file: give a folder path",
                "export under a file": f"--export marl-eval {blocker / 'runs.json'}: {blocker} is a file",
                "export is a folder": "that is a folder: give a file path"}[where]
    with pytest.raises(UserError) as caught:
        build([tmp_path / "runs"], out, export=export)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists(), "refused before anything was written"
    assert blocker.read_text() == "a file"


# --- --paper CSVs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read it (No such file or directory)"),
    ("map,algorithm\n3m,qmix\n", "no column final_test_win_rate"),
    ("map,algorithm,final_test_win_rate\n3m,qmix,0.5\n3m,r3dm,high\n",
     "line 3: final_test_win_rate 'high' is not a number"),
    ("map,algorithm,final_test_win_rate\n3m\n", "line 2: final_test_win_rate None is not a number"),
])
def test_a_missing_or_malformed_paper_csv_is_one_line_before_any_output(content, fragment, tmp_path):
    two_good_runs(tmp_path / "runs")
    csv_path = tmp_path / "paper.csv"
    if content is not None:
        csv_path.write_text(content)
    with pytest.raises(UserError) as caught:
        build([tmp_path / "runs"], tmp_path / "out", paper=str(csv_path))
    assert str(caught.value).startswith(f"--paper {csv_path}: ") and fragment in str(caught.value)
    assert "final_test_win_rate, or --paper alone for the built-in table" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_good_paper_csv_fills_the_column(tmp_path):
    two_good_runs(tmp_path / "runs")
    (tmp_path / "paper.csv").write_text("map,algorithm,final_test_win_rate\n3M,QMIX,0.25\n")
    text, _ = build([tmp_path / "runs"], tmp_path / "out", paper=str(tmp_path / "paper.csv"))
    row = table_row(text, "qmix")
    assert row[:3] == ["qmix", "2", "0.400"] and row[-1] == "0.250"


# --- damaged runs: skipped in one line each, the others reported ------------------------------------------

def test_runs_whose_metrics_cannot_be_read_are_skipped_in_one_line_each(tmp_path, capsys):
    root = tmp_path / "runs"
    two_good_runs(root)
    listed = write_run(root / "listed", seed=3, metrics=[{"steps": [0], "values": [1.0]}])
    short = write_run(root / "short", seed=4, curves={WON: ([0, 500, 1000], [1.0])})
    not_lists = write_run(root / "scalar", seed=5, metrics={WON: {"steps": 1000, "values": 1.0}})
    # a run resumed from a damaged one: its curve would start with the damaged one's
    resumed = write_run(root / "resumed", seed=6, curves={WON: ([1000], [1.0])}, resumed=(short, 500))
    text, _ = build([root], tmp_path / "out")
    printed = capsys.readouterr().out.splitlines()
    skipped = [line for line in printed if line.startswith("report: skipping")]
    assert skipped == [
        f"report: skipping {listed}: unreadable (ValueError: {listed}/metrics.json is not Sacred's "
        "{metric: {steps, values}})",
        f"report: skipping {resumed}: unreadable (ValueError: {short}/metrics.json: metric "
        f"'{WON}' has 3 steps but 1 values)",
        f"report: skipping {not_lists}: unreadable (ValueError: {not_lists}/metrics.json: metric "
        f"'{WON}' holds no lists of steps and values)",
        f"report: skipping {short}: unreadable (ValueError: {short}/metrics.json: metric "
        f"'{WON}' has 3 steps but 1 values)",
    ]
    assert table_row(text, "qmix")[:3] == ["qmix", "2", "0.400"], "the readable runs (finals 0.2, 0.6), no other"


# --- what the report says about the runs it reads ---------------------------------------------------------

def test_runs_that_logged_no_test_metric_name_the_metrics_looked_for(tmp_path):
    write_run(tmp_path / "runs" / "1", metrics={})
    write_run(tmp_path / "runs" / "2", curves={"loss_td": ([0], [1.0])})
    with pytest.raises(UserError) as caught:
        build([tmp_path / "runs"], tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"none of the 2 runs logged a test metric ({WON} or {report.RETURN})")
    assert "'auto'" not in message and "--metric" in message
    with pytest.raises(UserError, match="none of the 2 runs logged the metric 'test_x_mean'"):
        build([tmp_path / "runs"], tmp_path / "out", metric="test_x_mean")


def test_status_any_marks_an_unfinished_runs_final_as_partial(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "1", curves={WON: ([0, 500, 1000], [0.0, 0.2, 0.4])})
    write_run(root / "2", status="RUNNING", seed=2, curves={WON: ([0, 500], [0.0, 0.3])})
    text, _ = build([root], tmp_path / "out", status="any")
    lines = text.splitlines()
    # finals 0.4 and 0.3 (the running seed's last value): mean 0.35, 95% CI 12.706 * 0.0707 / sqrt(2)
    assert table_row(text, "qmix")[:6] == ["qmix", "2", "0.350", "±", "0.635", "*"]
    assert "* qmix: partial, seed 2 RUNNING at 500 of 1.0k (its final is from the steps logged so far)" in lines
    assert "  qmix  1: 0.400 (-); 2: 0.300 (-, RUNNING at 500: partial)" in lines
    (completed,) = report.aggregate([r for r in report.load_file_runs(root) if r.status == "COMPLETED"])
    assert completed.partial == [] and completed.final[0] == pytest.approx(0.4)
    text, _ = build([root], tmp_path / "out2")  # COMPLETED only: nothing partial, one left out
    assert " *" not in text and "(1 run(s) with another status left out; --status any includes them)" in text


def test_a_run_in_a_resumed_seeds_curve_is_not_counted_as_left_out(tmp_path):
    root = tmp_path / "runs"
    killed = write_run(root / "1", status="RUNNING", name="r3dm", t_max=400,
                       curves={WON: ([0, 100, 200], [0.0, 0.1, 0.2])})
    write_run(root / "2", name="r3dm", t_max=400, curves={WON: ([300, 400], [0.3, 0.4])}, resumed=(killed, 150))
    write_run(root / "3", t_max=400, curves={WON: ([0, 400], [0.0, 0.5])})
    text, _ = build([root], tmp_path / "out")
    assert "left out" not in text, "the killed run is part of seed 1's curve"
    assert table_row(text, "r3dm")[:3] == ["r3dm", "1", "0.400"]
    assert "  r3dm  1: 0.400 (-, 2 runs)" in text.splitlines()
    write_run(root / "4", status="FAILED", seed=9, t_max=400, curves={WON: ([0], [0.0])})
    text, _ = build([root], tmp_path / "out2")
    assert "(1 run(s) with another status left out; --status any includes them)" in text, "only the failed one"


def test_a_single_run_on_a_map_is_not_min_max_normalised(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "lbf", name="acorm", map_name="Foraging",
              curves={report.RETURN: ([0, 500, 1000], [1.0, 2.0, 3.0])})
    text, files = build([root], tmp_path / "out")
    lines = text.splitlines()
    assert ("Foraging: a single run: its test_return_mean cannot be min-max normalised, no rliable statistics "
            "for this map (run more seeds or algorithms on it)") in lines
    assert "-- Foraging: " not in text and "0.000" not in text, "no IQM block (a lone run scored 0 against itself)"
    assert "normalised: " not in text and "unequal runs" not in text
    assert [f.name for f in files] == ["report.csv", "cells.csv", "curves_Foraging.png"]
    assert table_row(text, "acorm")[:3] == ["acorm", "1", "3.000"], "the table keeps the run's own return"
    # a win rate needs no normalisation: a single run is scored as it is
    write_run(root / "smax", name="r3dm", curves={WON: ([0, 500, 1000], [0.0, 0.5, 0.75])})
    text, _ = build([root], tmp_path / "out2")
    assert "3m: a single run" not in text
    (iqm,) = [line.split() for line in text.split("-- 3m: ")[1].splitlines() if line.startswith("r3dm ")]
    assert iqm[1] == "0.750"

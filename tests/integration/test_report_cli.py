"""`r3dm-epymarl report` as users run it (a fresh process) on synthetic Sacred runs with known answers:
the tables, CSVs and figures it writes, and its one-line errors."""
import csv

import pytest

from r3dm_epymarl.experiments import report
from tests.helpers import assert_real_png, cli, run_ok
from tests.report_runs import flat, r3dm_curves, ramp, write_run, write_sacred_runs


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sacred")
    write_sacred_runs(root)
    return root


def test_cli_writes_table_csv_and_curves(runs_dir, tmp_path):
    out = tmp_path / "report"
    proc = cli("report", str(runs_dir), "--out", str(out), "--paper", "--reps", "200")
    run_ok(proc)
    assert "== 5m_vs_6m: test_battle_won_mean" in proc.stdout
    assert "0.400 ± 0.497" in proc.stdout and "900 (1/3)" in proc.stdout
    assert "paper (StarCraft II)" in proc.stdout and "0.195" in proc.stdout and "0.689" in proc.stdout
    assert "1 run(s) with another status left out" in proc.stdout
    with open(out / "report.csv", newline="") as f:
        rows = {r["algorithm"]: r for r in csv.DictReader(f)}
    assert float(rows["qmix"]["final_mean"]) == pytest.approx(0.4) and rows["r3dm"]["seeds"] == "1 2 3"
    with open(out / "cells.csv", newline="") as f:  # one row per completed cell, its own final and wall time
        cells = list(csv.DictReader(f))
    assert len(cells) == 11 and {c["status"] for c in cells} == {"COMPLETED"}
    qmix_cells = [c for c in cells if c["algorithm"] == "qmix"]
    assert [float(c["final"]) for c in qmix_cells] == pytest.approx([0.2, 0.4, 0.6])
    assert [float(c["auc"]) for c in qmix_cells] == pytest.approx([0.1, 0.2, 0.3])
    assert all(0 <= float(c["wall_s"]) < 60 and c["segments"] == "1" and c["steps"] == "1000" for c in cells)
    assert "-- 5m_vs_6m, per seed: final (wall time)" in proc.stdout and "\n  qmix  1: 0.200 (" in proc.stdout
    # the per-seed lines are indented: before rliable's blocks, a line starting with a name is a table row
    tables = proc.stdout.split("== rliable:")[0]
    assert [line.split()[:2] for line in tables.splitlines() if line.startswith("qmix ")] == [["qmix", "3"]]
    assert_real_png(out / "curves_5m_vs_6m.png", min_height=200, min_width=300, min_std=0.01)
    assert_real_png(out / "curves_Foraging-8x8-3p-3f-v3.png", min_height=200, min_width=300, min_std=0.01)
    # rliable's block: every r3dm seed (final 1.0) beats every qmix seed (0.2, 0.4, 0.6)
    assert "-- 5m_vs_6m: test_battle_won_mean; runs x tasks: r3dm 3x1, qmix 3x1" in proc.stdout
    assert "r3dm  -                  1.00 [1.00, 1.00]" in proc.stdout
    assert "all maps: no aggregate, fewer than two maps hold every algorithm" in proc.stdout
    assert float(rows["qmix"]["iqm"]) == pytest.approx(0.4) and float(rows["r3dm"]["iqm_lo"]) == 1.0
    assert_real_png(out / "profiles.png", min_height=200, min_width=300, min_std=0.01)
    assert_real_png(out / "efficiency.png", min_height=200, min_width=300, min_std=0.01)


def test_no_runs_is_one_clear_line(tmp_path):
    proc = cli("report", str(tmp_path))
    assert proc.returncode == 2 and "no Sacred runs with status COMPLETED" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def two_maps(tmp_path_factory):
    """r3dm beats qmix on two SMAX maps (win rate and return logged) and on LBF (return only)."""
    root = tmp_path_factory.mktemp("two_maps")
    for seed in (1, 2, 3):
        for map_name in ("3m", "8m"):
            for algorithm, top in (("qmix", 0.1 * seed), ("r3dm", 0.6 + 0.1 * seed)):
                wins = ramp(top)
                write_run(root, algorithm, map_name, seed,
                          {report.WIN_RATE: wins, report.RETURN: [20 * w for w in wins]})
        write_run(root, "qmix", "Foraging-8x8-3p-3f-v3", seed, {report.RETURN: ramp(0.1 * seed)})
        write_run(root, "r3dm", "Foraging-8x8-3p-3f-v3", seed, {report.RETURN: ramp(0.5 + 0.1 * seed)})
    return root


def test_cli_prints_the_blocks_and_writes_csv_and_real_pngs(two_maps, tmp_path):
    out = tmp_path / "report"
    proc = cli("report", str(two_maps), "--out", str(out), "--reps", "200", "--per-seed")
    run_ok(proc)
    text = proc.stdout
    assert "== 3m: test_battle_won_mean" in text  # the existing table is still there
    assert "== rliable: each run's final score, stratified-bootstrap 95% CIs" in text and "reps 200" in text
    assert "normalised: test_return_mean min-max per map" in text and "Foraging-8x8-3p-3f-v3 0..0.8 -> 0..1" in text
    assert "-- all maps (3m, 8m, Foraging-8x8-3p-3f-v3): test_battle_won_mean, test_return_mean" in text
    assert text.count("probability of improvement P(row > column) [95% CI]:") == 4  # 3 maps + all maps
    assert "r3dm  -                  1.00 [1.00, 1.00]" in text
    assert "unequal runs" not in text
    with open(out / "report.csv", newline="") as f:
        rows = {(r["map"], r["algorithm"]): r for r in csv.DictReader(f)}
    assert float(rows["3m", "qmix"]["final_mean"]) == pytest.approx(0.2)  # old columns kept
    assert float(rows["3m", "qmix"]["iqm"]) == pytest.approx(0.2)  # the middle of 0.1, 0.2, 0.3
    assert float(rows["3m", "qmix"]["iqm_lo"]) <= 0.2 <= float(rows["3m", "qmix"]["iqm_hi"])
    # LBF returns 0.1, 0.2, 0.3 over the map's range 0..0.8: 0.125, 0.25, 0.375
    assert float(rows["Foraging-8x8-3p-3f-v3", "qmix"]["iqm"]) == pytest.approx(0.25)
    assert rows["Foraging-8x8-3p-3f-v3", "qmix"]["score_scale"] == "min-max 0..0.8"
    # all maps, r3dm: 0.7 0.8 0.9 twice and 0.75 0.875 1.0; the middle 5 of the 9 sorted runs
    assert float(rows["all maps", "r3dm"]["iqm"]) == pytest.approx((0.75 + 0.8 + 0.8 + 0.875 + 0.9) / 5)
    with open(out / "improvement.csv", newline="") as f:
        improvement = {(r["map"], r["x"], r["y"]): float(r["p_x_better"]) for r in csv.DictReader(f)}
    assert improvement["all maps", "r3dm", "qmix"] == 1.0 and improvement["3m", "qmix", "r3dm"] == 0.0
    for png in ("profiles.png", "efficiency.png", "curves_3m.png"):
        assert_real_png(out / png, min_height=300, min_width=600, min_std=0.01)


def test_bad_reps_is_one_clear_line(tmp_path):
    for bad in ("0", "-3"):
        proc = cli("report", str(tmp_path), "--reps", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"r3dm-epymarl: error: --reps {bad}: the number of bootstrap resamples must be a positive integer"]


def test_report_prints_the_block_and_writes_the_csv_and_a_real_png(tmp_path):
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_run(runs, "r3dm", "3m", seed, r3dm_curves(seed))
        write_run(runs, "acorm", "3m", seed, {report.WIN_RATE: flat(0.4), "role_cluster_size_0": flat(2.0),
                                              "role_cluster_size_1": flat(1.0)})
    out = tmp_path / "report"
    proc = cli("report", str(runs), "--out", str(out), "--reps", "200")
    run_ok(proc)
    assert "== diagnostics: early = first 20% of steps, late = last 20%" in proc.stdout
    assert "r3dm       loss_wm_recon role/agnostic" in proc.stdout
    with open(out / "diagnostics.csv", newline="") as f:
        rows = {(r["algorithm"], r["quantity"]): r for r in csv.DictReader(f)}
    assert float(rows["acorm", "role_cluster_size_0"]["late"]) == 2.0 and rows["acorm", "role_cluster_size_0"]["seeds"] == "3"
    row = rows["r3dm", "r_int_obs_mean"]  # late 0.09, 0.18, 0.27
    assert (float(row["late"]), float(row["late_min_over_seeds"]), float(row["late_max_over_seeds"])) == \
        pytest.approx((0.18, 0.09, 0.27))
    assert_real_png(out / "diagnostics_3m.png", min_height=300, min_width=1000, min_std=0.01)


def test_unknown_export_format_is_one_clear_line(tmp_path):
    proc = cli("report", str(tmp_path), "--export", "csv", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "r3dm-epymarl: error: --export csv: unknown format, use one of: marl-eval"]

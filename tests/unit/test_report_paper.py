"""`report --paper`: the published StarCraft II curves, from the package data, on the runs' step axis."""
import csv
import json
from pathlib import Path

import pytest

from r3dm_epymarl.experiments import report
from r3dm_epymarl.experiments.report import paper as report_paper

SHARED = Path("/work/shared/published/curves.csv")  # the shared long table, where this machine has it


def write_run(folder: Path, algorithm: str, map_name: str, seed: int, steps, values, status="COMPLETED",
              t_max=None, key=None):
    """A Sacred FileStorage run folder: run.json, config.json, metrics.json (the test win rate)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status}))
    env_args = {"key": key} if key else {"map_name": map_name}
    (folder / "config.json").write_text(json.dumps({"name": algorithm, "seed": seed, "env_args": env_args,
                                                    **({"t_max": t_max} if t_max else {})}))
    metric = report.RETURN if key else report.WIN_RATE
    (folder / "metrics.json").write_text(json.dumps({metric: {"steps": list(steps), "values": list(values)}}))


def test_the_package_data_is_built_from_the_shared_long_table(tmp_path):
    shared = tmp_path / "curves.csv"
    rows = [("wm", "5m_vs_6m", "r3dm", s, "win_rate", step, v)
            for s, vs in (("group_mean", (0.0, 0.2, 0.4)), ("group_min", (0.0, 0.1, 0.3)),
                          ("group_max", (0.0, 0.3, 0.5))) for step, v in zip((0, 20000, 40000), vs)]
    rows += [("wm", "5m_vs_6m", "cds", "seed1", "win_rate", step, v) for step, v in ((0, 0.0), (20000, 0.2), (40000, 0.6))]
    rows += [("wm", "5m_vs_6m", "cds", "seed2", "win_rate", step, v) for step, v in ((0, 0.1), (20000, 0.4))]  # shorter
    rows += [("wm", "5m_vs_6m", "emc", "seed1", "win_rate", 0, 0.9),  # not an algorithm run here
             ("reward", "protoss_5_vs_5", "r3dm", "seed1", "return", 0, 7.0),  # returns: not overlaid
             ("ablation", "3s5z_vs_3s6z", "r3dm_k1", "seed1", "win_rate", 0, 0.5)]
    with open(shared, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "map", "algorithm", "series", "metric", "step", "value"])
        writer.writerows(rows)
    out = tmp_path / "published_curves.csv"
    assert report_paper.build_curves(shared, out) == 5
    curves = report_paper.load_curves(out)
    assert set(curves) == {("5m_vs_6m", "r3dm"), ("5m_vs_6m", "cds")}
    r3dm, cds = curves["5m_vs_6m", "r3dm"], curves["5m_vs_6m", "cds"]
    assert (r3dm.steps, r3dm.mean, r3dm.low, r3dm.high, r3dm.seeds) == (
        [0, 20000, 40000], [0.0, 0.2, 0.4], [0.0, 0.1, 0.3], [0.0, 0.3, 0.5], None)
    # per-seed only: their mean on the steps both seeds cover, no band
    assert (cds.steps, cds.mean, cds.low, cds.seeds) == ([0, 20000], [0.05, 0.3], None, 2)
    assert r3dm.at(30000) == pytest.approx(0.3) and r3dm.at(40000) == pytest.approx(0.4)
    assert r3dm.at(40001) is None  # past the published range


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared published curves are not on this machine")
def test_the_shipped_data_is_what_the_builder_makes_of_the_shared_table(tmp_path):
    from r3dm_epymarl.paths import published_curves

    report_paper.build_curves(SHARED, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text() == published_curves().read_text()


def write_runs_300k(root: Path) -> Path:
    """Four algorithms x 3 seeds on SMAX 5m_vs_6m, 300k steps, tested every 25k: ramps to 0.9, 1.0 and
    1.1 times each algorithm's top (also the runs of docs/report_paper_overlay.png)."""
    steps = list(range(0, 300001, 25000))
    for algorithm, top in (("r3dm", 0.6), ("acorm", 0.4), ("cds", 0.3), ("qmix", 0.1)):
        for seed in (1, 2, 3):
            write_run(root / f"{algorithm}{seed}", algorithm, "5m_vs_6m", seed,
                      steps, [top * (0.8 + 0.1 * seed) * s / 300000 for s in steps], t_max=300000)
    return root


@pytest.fixture(scope="module")
def runs_300k(tmp_path_factory):
    return write_runs_300k(tmp_path_factory.mktemp("paper"))


def test_paper_prints_the_published_values_at_the_runs_budget_and_draws_the_curves(runs_300k, tmp_path,
                                                                                   monkeypatch):
    from r3dm_epymarl.experiments.report import plots as report_plots

    drawn = {}
    original = report_plots.save

    def keep(fig, path):  # the figure's axes, before save closes it
        drawn[Path(path).name] = fig.axes[0]
        original(fig, path)

    monkeypatch.setattr(report_plots, "save", keep)
    text, files = report.build_report([str(runs_300k)], out=str(tmp_path / "out"), paper="builtin", reps=50)
    # the published 300k windows of 5m_vs_6m (group means; CDS: the mean of its 5 published seeds)
    assert "5m_vs_6m: published at 300k, StarCraft II: R3DM 0.508, ACORM 0.420, CDS on QPLEX 0.260, QMIX 0.036" in text
    assert "StarCraft II, not SMAX; linear between the published 20k-step window means" in text
    ax = drawn["curves_5m_vs_6m.png"]
    dashed = {line.get_label(): line for line in ax.get_lines() if line.get_linestyle() == "--"}
    band = "StarCraft II (published, group curve; band: the export's min-max, not a spread over seeds)"
    assert sorted(dashed) == ["CDS on QPLEX, StarCraft II (published, mean of 5 seeds)",
                              f"acorm, {band}", f"qmix, {band}", f"r3dm, {band}"]
    r3dm = dashed[f"r3dm, {band}"]
    assert max(r3dm.get_xdata()) == 300000 and list(r3dm.get_ydata())[-1] == pytest.approx(0.5078)
    assert list(r3dm.get_xdata())[:3] == [0, 20000, 40000]  # the published windows, on the runs' axis
    assert len(ax.collections) == 4 + 3  # the runs' CI bands, and the published min/max bands (not CDS's)
    assert "StarCraft II" in ax.get_title() and "not SMAX" in ax.get_title()


def test_a_band_of_zero_width_is_not_drawn_or_called_a_band():
    flat = report_paper.Curve([0, 20000], [0.1, 0.2], [0.1, 0.2], [0.1, 0.2], None)
    wide = report_paper.Curve([0, 20000], [0.1, 0.2], [0.0, 0.1], [0.2, 0.3], None)
    assert not flat.has_band and wide.has_band
    assert flat.label("r3dm") == "r3dm, StarCraft II (published, group curve)"
    assert "not a spread over seeds" in wide.label("acorm") and wide.label("cds").startswith("CDS on QPLEX,")


def test_a_budget_past_the_published_curve_says_so():
    curve = report_paper.Curve([0, 20000], [0.0, 0.5], None, None, 3)
    lines = report_paper.budget_lines({"3m": 150000, "8m": 10000}, {"3m": ["r3dm"], "8m": ["qmix", "r3dm"]},
                                      {("3m", "r3dm"): curve, ("8m", "r3dm"): curve})
    assert lines[:2] == ["3m: published at 150k, StarCraft II: R3DM - (published up to 20k)",
                         "8m: published at 10k, StarCraft II: R3DM 0.250"]

"""rliable statistics on per-seed finals read from `report`'s cells.csv files, for comparing runs made in
different sessions when the earlier runs' Sacred folders are gone and only their cells.csv is kept.

    python docs/study/finals_stats.py docs/study/ablation_report/cells.csv docs/study/wm_action/cells.csv \
        --map 2s3z --algorithms r3dm r3dm_wm_published acorm --reps 2000 --seed 0

The final of each cell is `report`'s (the test metric over the last 5% of the run's steps). The same rliable
calls as `report` (`r3dm_epymarl.experiments.report.rliable.estimate`): IQM / mean / median / optimality
gap and P(row > column), with stratified-bootstrap 95% CIs. No curves: a cells.csv holds none. Then
`report`'s verdicts (`r3dm_epymarl.experiments.report.power`): the first algorithm (or every one against
--baseline) minus each other, the difference of the per-seed finals with its CI, the test and the seeds
a study would need.
A (map, algorithm, seed) listed in more than one file is refused: say which file to take it from.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install

from r3dm_epymarl.experiments.report import power  # noqa: E402
from r3dm_epymarl.experiments.report.rliable import Group, default_reps, estimate, render  # noqa: E402


def read_finals(paths: list[Path], map_name: str, algorithms: list[str] | None,
                renames: dict[str, str] | None = None) -> dict[str, dict[int, float]]:
    """algorithm -> seed -> final, from the COMPLETED rows of `map_name` in the cells.csv files.
    `renames`: file path -> a name for every row of that file (runs of one config made at two commits)."""
    finals: dict[str, dict[int, float]] = {}
    where: dict[tuple[str, int], Path] = {}
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file; give cells.csv files written by `report --out DIR`")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            absent = {"map", "algorithm", "seed", "status", "final"} - set(reader.fieldnames or ())
            if absent:
                raise SystemExit(f"{path}: no column {', '.join(sorted(absent))}; is it a cells.csv written by `report`?")
            for row in reader:
                if row["map"] != map_name or row["status"] != "COMPLETED":
                    continue
                if algorithms and (renames or {}).get(str(path), row["algorithm"]) not in algorithms:
                    continue
                key = ((renames or {}).get(str(path), row["algorithm"]), int(row["seed"]))
                if key in where:
                    raise SystemExit(f"{key[0]} seed {key[1]} is in both {where[key]} and {path}: keep one")
                where[key] = path
                finals.setdefault(key[0], {})[key[1]] = float(row["final"])
    missing = [a for a in algorithms or [] if a not in finals]
    if missing:
        raise SystemExit(f"--algorithms: no COMPLETED {map_name} row for {', '.join(missing)} in the files given")
    return finals


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cells", nargs="+", type=Path, help="cells.csv files written by `report`")
    p.add_argument("--map", required=True, help="the map whose rows are compared")
    p.add_argument("--algorithms", nargs="+", help="these rows only (default: every algorithm in the files)")
    p.add_argument("--metric", default="test_battle_won_mean", help="the metric named in the printed header")
    p.add_argument("--reps", type=int, help="bootstrap resamples (default: rliable's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    p.add_argument("--baseline", help="compare every algorithm with this one (default: the first with every other)")
    p.add_argument("--effect", type=float, default=0.1, help="also the seeds that detect this difference (default 0.1)")
    p.add_argument("--name", nargs=2, action="append", default=[], metavar=("FILE", "NAME"),
                   help="call every row of FILE (one of the cells files) NAME, e.g. runs of one config at two commits")
    opts = p.parse_args(argv)
    renames = {str(Path(f)): n for f, n in opts.name}
    unknown = [f for f in renames if f not in {str(c) for c in opts.cells}]
    if unknown:
        raise SystemExit(f"--name {unknown[0]}: not one of the cells files given; name one of them")
    finals = read_finals(opts.cells, opts.map, opts.algorithms, renames)
    order = opts.algorithms or sorted(finals)
    group = Group(name=opts.map, metric=opts.metric,
                  seeds={a: sorted(finals[a]) for a in order},
                  finals={a: np.array([[finals[a][s]] for s in sorted(finals[a])]) for a in order},  # [runs, 1]
                  steps=np.zeros(0), curves={a: np.zeros((len(finals[a]), 1, 0)) for a in order},
                  tasks=[opts.map])
    reps = default_reps(opts.reps)
    for a in order:
        print(f"{a}: " + ", ".join(f"seed {s} {finals[a][s]:.3f}" for s in sorted(finals[a])))
    print(render([estimate(group, reps, opts.seed)], reps, opts.seed, []))
    if opts.baseline and opts.baseline not in finals:
        raise SystemExit(f"--baseline {opts.baseline}: no COMPLETED {opts.map} row for it in the files given")
    pairs = ([(a, opts.baseline) for a in order if a != opts.baseline] if opts.baseline
             else [(order[0], a) for a in order[1:]])
    verdicts = [power.compare_scores(opts.map, f"final {opts.metric}", x, y, list(finals[x].values()),
                                     list(finals[y].values()), opts.effect, opts.reps or 2000, opts.seed)
                for x, y in pairs]
    print("\n" + power.block(verdicts, opts.baseline, []))


if __name__ == "__main__":
    main()

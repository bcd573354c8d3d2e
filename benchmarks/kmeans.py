"""Benchmark: batched torch K-means vs one scikit-learn KMeans fit per (episode, step).

    python benchmarks/kmeans.py [--B 32 --T 100 --N 8 --D 128 --K 3]

The published ACORM/R3DM code fits `sklearn.cluster.KMeans` once per active (b, t). sklearn is
timed on a subset of the groups and extrapolated linearly to B*T (each fit is independent, so the
cost is linear in the number of groups); ours is timed on all B*T groups. Both times are medians
of a few runs after a warm-up, and both are limited to the same number of threads.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from r3dm_epymarl.roles.kmeans import batched_kmeans  # noqa: E402


def _median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--B", type=int, default=32, help="episodes per batch")
    p.add_argument("--T", type=int, default=100, help="steps per episode")
    p.add_argument("--N", type=int, default=8, help="agents (points per group)")
    p.add_argument("--D", type=int, default=128, help="embedding size")
    p.add_argument("--K", type=int, default=3, help="clusters (role_clusters)")
    p.add_argument("--sklearn-groups", type=int, default=200,
                   help="groups fitted with sklearn; the time is extrapolated to B*T")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of ours (median)")
    p.add_argument("--sklearn-repeats", type=int, default=3,
                   help="timed passes over the sklearn subset (median)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    threads = min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    g = args.B * args.T
    x = torch.randn(g, args.N, args.D, generator=torch.Generator().manual_seed(args.seed))
    sub = min(args.sklearn_groups, g)
    x_sub = x[:sub].numpy()

    print(f"groups B*T={g}  N={args.N}  D={args.D}  K={args.K}  threads={threads}  "
          f"torch {torch.__version__}  device=cpu")
    print(f"sklearn: {sub} groups fitted, time extrapolated x{g / sub:.1f} to {g} groups")
    print()
    header = f"{'n_init':>6} | {'ours (s)':>9} | {'sklearn (s)':>11} | {'speed-up':>8} | " \
             f"{'inertia ours':>12} | {'inertia sklearn':>15}"
    print(header)
    print("-" * len(header))
    for n_init in (1, 10):
        gen = torch.Generator()

        def ours():
            gen.manual_seed(args.seed)
            return batched_kmeans(x, args.K, n_init=n_init, generator=gen)

        t_ours = _median_time(ours, args.repeats)
        inertia_ours = ours().inertia[:sub].mean().item()  # same groups as sklearn's

        def sklearn_fits():
            return [KMeans(n_clusters=args.K, n_init=n_init, random_state=0).fit(xi).inertia_
                    for xi in x_sub]

        with threadpool_limits(limits=threads):
            t_sk = _median_time(sklearn_fits, args.sklearn_repeats) * g / sub
            sk_inertia = sklearn_fits()

        print(f"{n_init:>6} | {t_ours:>9.4f} | {t_sk:>11.3f} | {t_sk / t_ours:>7.0f}x | "
              f"{inertia_ours:>12.3f} | {float(np.mean(sk_inertia)):>15.3f}")
    print()
    print("inertia: mean over the sklearn subset's groups (lower is better)")


if __name__ == "__main__":
    main()

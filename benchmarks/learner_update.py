"""Time one learner update of host QMIX, CDS, ACORM and R3DM on the same synthetic batch, in one process.

    python benchmarks/learner_update.py                      # SC2 3s5z_vs_3s6z shapes
    python benchmarks/learner_update.py --N 27 --obs 285 --state 408 --actions 36   # 27m_vs_30m-like

Every learner is the real class from the host's registry (PyMARLzoo+ by default, or --epymarl PATH),
fed a host EpisodeBatch filled with random data. Prints the median time per update after warm-up,
the ratio to QMIX, FLOPs per update (torch.utils.flop_counter) and achieved GFLOP/s, and R3DM's own
per-part timings. ACORM's and R3DM's contrastive step runs every `contrastive_interval` (100)
updates: its cost is shown separately and amortised into "per update (amortised)".
"""
from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch as th
import yaml


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--B", type=int, default=32)
    p.add_argument("--T", type=int, default=75, help="steps per episode (the batch holds T+1)")
    p.add_argument("--N", type=int, default=8)
    p.add_argument("--obs", type=int, default=136)
    p.add_argument("--state", type=int, default=230)
    p.add_argument("--actions", type=int, default=15)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--algos", nargs="+", default=["r3dm_qmix", "cds", "acorm", "r3dm"])
    p.add_argument("--epymarl", help="use this EPyMARL checkout as the host instead of PyMARLzoo+")
    return p.parse_args()


class NullLogger:
    def __init__(self):
        self.stats = {}

    def log_stat(self, key, value, t):
        self.stats.setdefault(key, []).append(value)


def host_args(host, algorithm, opts):
    from r3dm_epymarl.launcher import find_config

    config = yaml.safe_load((host.config_dir / "default.yaml").read_text())
    config.update(yaml.safe_load(find_config(host, "algs", algorithm).read_text()))
    config.update(n_agents=opts.N, n_actions=opts.actions, state_shape=opts.state, seed=1, use_cuda=False,
                  device="cpu", learner_log_interval=1, common_reward=True, unit_dim=opts.obs,
                  pretrain_encoder_steps=0, pretrain_contrastive_steps=0)  # steady-state updates only
    return SimpleNamespace(**config)


def make_batch(host, opts):
    EpisodeBatch = host.module("components.episode_buffer").EpisodeBatch
    OneHot = host.module("components.transforms").OneHot
    scheme = {
        "state": {"vshape": opts.state}, "obs": {"vshape": opts.obs, "group": "agents"},
        "actions": {"vshape": (1,), "group": "agents", "dtype": th.long},
        "avail_actions": {"vshape": (opts.actions,), "group": "agents", "dtype": th.int},
        "reward": {"vshape": (1,)}, "terminated": {"vshape": (1,), "dtype": th.uint8},
    }
    groups = {"agents": opts.N}
    preprocess = {"actions": ("actions_onehot", [OneHot(out_dim=opts.actions)])}
    batch = EpisodeBatch(scheme, groups, opts.B, opts.T + 1, preprocess=preprocess, device="cpu")
    g = th.Generator().manual_seed(0)
    B, T1, N, A = opts.B, opts.T + 1, opts.N, opts.actions
    avail = (th.rand(B, T1, N, A, generator=g) > 0.3).int()
    avail[..., 0] = 1
    actions = th.multinomial(avail.float().reshape(-1, A), 1, generator=g).reshape(B, T1, N, 1)
    terminated = th.zeros(B, T1, 1, dtype=th.uint8)
    terminated[:, -2] = 1
    batch.update({"state": th.randn(B, T1, opts.state, generator=g), "obs": th.randn(B, T1, N, opts.obs, generator=g),
                  "actions": actions, "avail_actions": avail, "reward": th.randn(B, T1, 1, generator=g),
                  "terminated": terminated}, bs=slice(None), ts=slice(None))
    return batch, scheme, groups


def build(host, algorithm, opts, scheme, groups):
    args = host_args(host, algorithm, opts)
    mac = host.registry("controllers")[args.mac](scheme, groups, args)
    logger = NullLogger()
    return host.registry("learners")[args.learner](mac, scheme, logger, args), logger


def timed_update(learner, batch, t):
    start = time.perf_counter()
    learner.train(batch, t, t)
    return time.perf_counter() - start


def flops_of_update(learner, batch):
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        learner.train(batch, 10_000, 10_000)
    return counter.get_total_flops()


def main():
    opts = parse()
    th.set_num_threads(opts.threads)
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.learners.role_q_learner import td_mask
    from r3dm_epymarl.registry import register

    host = get_host("epymarl" if opts.epymarl else "pymarlzooplus", opts.epymarl)
    register(host)
    batch, full_scheme, groups = make_batch(host, opts)
    print(f"host {host.name}; B={opts.B} T={opts.T} N={opts.N} obs={opts.obs} state={opts.state} "
          f"actions={opts.actions}; torch threads {opts.threads}; median of {opts.repeats} after 2 warm-up updates")
    rows, base = [], None
    for algorithm in opts.algos:
        th.manual_seed(0)
        learner, logger = build(host, algorithm, opts, batch.scheme, groups)
        for t in range(2):
            learner.train(batch, t, t)
        times = [timed_update(learner, batch, t) for t in range(2, 2 + opts.repeats)]
        per_update = statistics.median(times)
        flops = flops_of_update(learner, batch)
        contrastive = 0.0
        if hasattr(learner, "_contrastive_step"):
            _, mask = td_mask(batch)
            with th.no_grad():
                e = learner.mac.unroll(batch).extras["e"]
            start = time.perf_counter()
            learner._contrastive_step(e[:, :-1], mask)
            contrastive = time.perf_counter() - start
        amortised = per_update + contrastive / max(1, getattr(learner.args, "contrastive_interval", 1) or 1)
        base = base or amortised
        rows.append((algorithm, per_update, contrastive, amortised, amortised / base, flops / 1e9,
                     flops / 1e9 / per_update))
        parts = {k: statistics.median(v) for k, v in logger.stats.items() if k.startswith("time_")}
        if parts:
            print(f"  {algorithm} parts (ms, median): " + ", ".join(f"{k[5:-3]} {v:.1f}" for k, v in parts.items()))
    print(f"{'algorithm':10s} {'update ms':>10s} {'contrast. ms':>12s} {'amortised ms':>12s} {'x QMIX':>7s} "
          f"{'GFLOP/upd':>10s} {'GFLOP/s':>8s}")
    for name, t, c, a, ratio, gflop, rate in rows:
        print(f"{name:10s} {1000*t:10.1f} {1000*c:12.1f} {1000*a:12.1f} {ratio:7.2f} {gflop:10.2f} {rate:8.2f}")


if __name__ == "__main__":
    main()

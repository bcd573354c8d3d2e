"""What the hand-written backward through time of the world models' filtering loop buys.

    python benchmarks/rssm_scan.py              # SC2 3s5z_vs_3s6z shapes: M = 32 x 8 streams, T = 75
    python benchmarks/rssm_scan.py --quick      # tiny shapes, 1 repeat (the smoke test)
    python benchmarks/rssm_scan.py --compile    # also torch.compile of the plain step (minutes to compile)

One training step of R3DM's two world models (role-agnostic and role-conditioned, the sizes of
config_overrides/algs/r3dm.yaml, read through tests/harness.py) on one synthetic batch: the losses of both and the backward pass, in
three forms that compute the same values (tests/unit/test_world_model.py checks the first two agree):
* fused: `loss_many` (both models' recurrences in one loop, batched matmuls, `_ObserveScan`'s
  hand-written backward through time);
* autograd: the same recurrence written step by step per model (`RSSM.seq_step` + posterior +
  straight-through sample), backpropagated by autograd;
* compiled (--compile): the autograd form with its step function under torch.compile.
fp32, and bf16 autocast where `--precision bf16`. Timed in interleaved rounds (the order rotates), 1 torch
thread; prints the median (min-max) ms of each and its ratio to the fused form.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r3dm_epymarl.world_model.accel import loss_many  # noqa: E402
from r3dm_epymarl.world_model.rssm import RSSM  # noqa: E402
from tests.harness import algorithm_config  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    th.manual_seed(0)
    if args.quick:
        T, M, O, A, R, sizes, rounds = 6, 8, 10, 4, 4, dict(hidden=16, deter=16, stoch=4, classes=4), 1
    else:  # SC2 3s5z_vs_3s6z: B=32 episodes x N=8 agents, T=75, obs 136, 15 actions; R3DM's sizes (its YAML)
        r3dm = algorithm_config("r3dm")
        sizes = {key: r3dm[f"wm_{key}"] for key in ("hidden", "deter", "stoch", "classes")}
        T, M, O, A, R, rounds = 75, 256, 136, 15, r3dm["role_embed_dim"], args.rounds
    models = [RSSM(O, A, 0, **sizes), RSSM(O, A, R, **sizes)]
    params = [p for m in models for p in m.parameters()]
    obs, actions = th.randn(T, M, O) * 2, th.eye(A)[th.randint(0, A, (T, M))]
    roles, valid = th.rand(T, M, R), (th.rand(T, M) > 0.2).float()
    autocast = th.autocast("cpu", dtype=th.bfloat16, enabled=args.precision == "bf16")

    def fused():
        with autocast:
            losses = loss_many(models, obs, actions, [None, roles], valid)
        (losses[0]["total"] + losses[1]["total"]).backward()

    def plain(step=None):
        with autocast:
            totals = [m.loss(obs, actions, r, valid, step and step(m))["total"]
                      for m, r in zip(models, [None, roles])]
        sum(totals).backward()

    forms = {"fused (hand-written backward)": fused, "autograd (step by step)": plain}
    if args.compile:
        compiled = {id(m): th.compile(m.filter_step, dynamic=False) for m in models}
        forms["compiled step (torch.compile)"] = lambda: plain(lambda m: compiled[id(m)])
    times = {name: [] for name in forms}
    for name, fn in forms.items():  # warm-up (and compilation)
        start = time.perf_counter()
        fn()
        print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    names = list(forms)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for p in params:
                p.grad = None
            start = time.perf_counter()
            forms[name]()
            times[name].append(1000 * (time.perf_counter() - start))
    base = statistics.median(times[names[0]])
    print(f"\nworld-model training step, T={T} M={M} obs {O}, {args.precision}, {rounds} rounds, 1 thread")
    for name in names:
        med = statistics.median(times[name])
        print(f"{name:32s} {med:9.1f} ms ({min(times[name]):.1f}-{max(times[name]):.1f})  x fused {med / base:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

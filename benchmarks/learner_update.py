"""Cost of one learner update of host QMIX, CDS, ACORM and R3DM on the same batches, in one process.

    python benchmarks/learner_update.py                    # SMAX 2s3z (--map): real episode lengths, 2 phases
    python benchmarks/learner_update.py --no-padding       # the same shapes, every episode full length
    python benchmarks/learner_update.py --record-lengths --map 3m   # play and record a map's episode lengths
    python benchmarks/learner_update.py --preset smax      # SMAX 3s5z_vs_3s6z: B=32 T=100 N=8 obs 218 state 204, 14 actions
    python benchmarks/learner_update.py --preset sc2       # SC2 3s5z_vs_3s6z: B=32 T=75 N=8 obs 136 state 230, 15 actions
    python benchmarks/learner_update.py --preset sc2 --N 27 --obs 285 --state 1170 --actions 36   # any shape
    python benchmarks/learner_update.py --scaling          # N = 3, 8, 27 (SC2 3m, 3s5z_vs_3s6z, 27m_vs_30m), T=25
    python benchmarks/learner_update.py --scaling --T 75   # the same at T=75 (R3DM at N=27 then needs ~6 GB)
    python benchmarks/learner_update.py --quick            # tiny shapes, 1 repeat (the smoke test)

Every learner is the real class from the host's registry (PyMARLzoo+ by default, or --epymarl PATH):
`qmix` is the host's own QMIX (its qmix.yaml and q_learner); `cds`, `acorm`, `r3dm` are the plug-in's,
with their YAML defaults (no per-map preset; pre-training off: steady-state updates only);
`r3dm-padded` is R3DM with `wm_skip_padding=False` (its world models compute on the padded steps
too; `r3dm` runs with `wm_skip_padding=True`; any plug-in name + `-padded` works).

Batches. With --map (default 2s3z) the shapes are the map's, as recorded from the plug-in's SMAX env
(N, obs, state, actions; T = its episode limit), and every batch holds B episodes whose lengths are
drawn from real SMAX episodes of the map (benchmarks/episode_lengths.py; data/smax_episode_lengths.json),
for two phases: early training (random valid actions) and late training (a competent scripted
policy). Each episode is written into a host EpisodeBatch as the host's episode runner does (filled
up to and including the final observation's slot, `terminated` at its last step only when it ended
by termination, not by the time limit, zeros beyond) and the batch is truncated to its longest
episode as the host does before an update (`max_t_filled`). Args, batches and learners come from
tests/harness.py, the builders the host-parity test uses. Every timed round uses its own batch
(the same one for every algorithm of the round); each phase prints its padding fraction (padded
agent-step slots / all slots, over its timed batches). --no-padding, --preset and --scaling give
full-length episodes (every episode T steps, terminated at the last), as before. Data are random.
After warm-up the algorithms are timed in interleaved
rounds (the order rotates every round), so a burst of load on a shared machine hits all of them;
an algorithm much cheaper than the slowest runs several updates per round (at most 8).
Torch runs 1 intra-op thread by default, as PyMARLzoo+ sets for training (`--threads 2` to change):
on a 2-core machine shared with other jobs, 2 threads made single updates up to 100x slower (the
threads of one op wait for each other whenever one is descheduled), which made ratios meaningless.

Per algorithm it prints:
* update ms: median (and min-max) of the timed updates; `x QMIX`: the amortised time over QMIX's
  (the ratio of medians).
* contrast. ms: ACORM's / R3DM's contrastive role step, which runs once every `contrastive_interval`
  (100) updates; timed on its own (median) and amortised into "amortised ms".
* FLOPs of one update counted with torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions,
  attention; elementwise ops count 0) and the achieved GFLOP/s = FLOPs / median update time.
* peak MB: the peak of live CPU memory allocated *during* one update, above what was live when it
  started. Method: torch.profiler with profile_memory=True records every allocation and free (the
  allocator's `alloc_size`, negative for frees) as Allocation events in the profiler's event tree;
  their running sum in time order is the bytes live that were allocated during the update, and its
  maximum is the peak (it agrees with the allocator's own `total_allocated` counter, and with the
  growth of the process's max RSS over a first update: R3DM 2.30 GB vs peak 2.05 + state 0.05 GB,
  QMIX 0.23 vs 0.19 + 0.002 GB at the SMAX shapes). For ACORM and
  R3DM the larger of a normal update and an update that includes the contrastive step is shown.
  `--quick` first checks the method on allocations of known size. Only allocations made on the
  thread that runs the update are seen (torch's CPU ops allocate their outputs there).
* state MB: parameters, gradients, buffers and optimiser states the learner holds (online and
  target networks, mixers, world models, ...), each tensor storage counted once.
FLOPs and memory are measured on the phase's first batch.
For CDS and R3DM the per-part split (TD and the rest of the update, each reward term, each term's own
training, e.g. R3DM's world-model training; and the contrastive step) with times, FLOPs and GFLOP/s,
through the learner's `profile_part` probe (wall clock on the CPU, CUDA events on the GPU).

Skipping padding: for every `X` and `X-padded` pair, the median over rounds of X-padded's update time over
X's in the same round (same batch).
It prints the ratios the performance targets are stated in (docs/PERFORMANCE.md says which are met):
`x QMIX` per (amortised) update, each algorithm's GFLOP/s over the baseline's, and with --scaling how
each ratio grows with N next to N's own growth.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch as th

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
import episode_lengths  # noqa: E402  (benchmarks/, next to this script)
from tests import harness  # noqa: E402  (the repository's test harness: args, batches, learners)

# name -> (what it is, shapes). T is the number of steps (the batch holds T+1 time slots).
PRESETS = {
    "smax": ("SMAX 3s5z_vs_3s6z", dict(B=32, T=100, N=8, obs=218, state=204, actions=14)),
    "sc2": ("SC2 3s5z_vs_3s6z", dict(B=32, T=75, N=8, obs=136, state=230, actions=15)),
    "sc2-3m": ("SC2 3m", dict(B=32, T=75, N=3, obs=30, state=48, actions=9)),
    "sc2-27m": ("SC2 27m_vs_30m", dict(B=32, T=75, N=27, obs=285, state=1170, actions=36)),
}
SCALING = ("sc2-3m", "sc2", "sc2-27m")
SCALING_T = 25  # --scaling default: R3DM at N=27, T=75 needs several GB and minutes per run (--T 75 overrides)
QUICK = dict(B=2, T=5, obs=12, state=16, actions=7)  # --quick keeps N from the preset / scaling list
ALGORITHMS = ["qmix", "cds", "acorm", "r3dm", "r3dm-padded"]
PADDED = "-padded"  # name suffix: the same algorithm with wm_skip_padding=False
DEFAULT_MAP = "2s3z"
PART_LABELS = {
    "policy_kl reward": "policy-KL reward term",
    "policy_kl update": "policy-KL term training",
    "world_model reward": "world-model reward term",
    "world_model update": "world-model training",
    "cds reward": "CDS reward term",
    "cds update": "CDS predictor training",
}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--map", help=f"SMAX map whose shapes and recorded episode lengths are used (default "
                                 f"{DEFAULT_MAP} unless --preset or --scaling)")
    p.add_argument("--no-padding", action="store_true", help="every episode full length (no recorded lengths)")
    p.add_argument("--record-lengths", action="store_true",
                   help="play --episodes SMAX episodes of --map per phase and record their lengths, then stop")
    p.add_argument("--episodes", type=int, default=episode_lengths.DEFAULT_EPISODES,
                   help="episodes per phase for --record-lengths")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="synthetic full-length shapes instead of a map: smax = SMAX 3s5z_vs_3s6z, sc2 = SC2 "
                        "3s5z_vs_3s6z, sc2-3m, sc2-27m = SC2 27m_vs_30m")
    for name in ("B", "T", "N", "obs", "state", "actions"):
        p.add_argument(f"--{name}", type=int, help=f"override the preset's {name}")
    p.add_argument("--scaling", action="store_true",
                   help=f"ratios to QMIX for N = 3, 8, 27 (SC2 3m, 3s5z_vs_3s6z, 27m_vs_30m shapes) at B=32, "
                        f"T={SCALING_T}; --B/--T override")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 1 warm-up, 1 repeat (smoke test)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed rounds; each algorithm runs 1 update per round, a cheaper one up to 8 (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates per algorithm first")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: what PyMARLzoo+ sets for training; robust on a shared machine)")
    p.add_argument("--algos", nargs="+", help=f"first one is the baseline of the ratios (default: "
                                               f"{' '.join(ALGORITHMS)}; with --scaling without {PADDED} ones)")
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--epymarl", help="use this EPyMARL checkout as the host instead of PyMARLzoo+")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="precision of the plug-in algorithms (the host's QMIX always runs its own fp32, the "
                        "baseline users run); bf16 pays only on bf16 hardware (modules/precision.py)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the learners and batch live")
    opts = p.parse_args(argv)
    if opts.map and (opts.preset or opts.scaling):
        p.error("--map takes its shapes from the map: leave out --preset / --scaling (or --map)")
    if not opts.preset and not opts.scaling:
        opts.map = opts.map or DEFAULT_MAP
    if opts.algos is None:
        opts.algos = [a for a in ALGORITHMS if not (opts.scaling and a.endswith(PADDED))]
    if opts.quick:
        opts.repeats, opts.warmup = 1, 1
    return opts


def map_shapes(entry: dict) -> dict:
    return dict(B=32, T=entry["episode_limit"], N=entry["n_agents"], obs=entry["obs"], state=entry["state"],
                actions=entry["actions"])


def shapes_for(opts, preset: str, entry: dict | None = None) -> dict:
    shapes = map_shapes(entry) if entry else dict(PRESETS[preset][1])
    if opts.scaling:
        shapes["T"] = SCALING_T
    if opts.quick:
        shapes.update(QUICK)
    for name in shapes:
        value = getattr(opts, name)
        if value is not None and not (opts.scaling and name in ("N", "obs", "state", "actions")):
            shapes[name] = value
    return shapes


def describe(preset: str, shapes: dict, opts, entry: dict | None = None) -> str:
    what, default = (f"SMAX {opts.map}", map_shapes(entry)) if entry else PRESETS[preset]
    if opts.quick:
        what = f"tiny shapes (--quick) with the N of {what}"
    elif any(shapes[k] != v for k, v in default.items()):
        what += " (modified)"
    return f"{what}: " + " ".join(f"{k}={v}" for k, v in shapes.items())


# --- the host, its batch and learners -----------------------------------------------------------
def host_args(host, name, shapes, precision="fp32", device="cpu"):
    """The run's args for `name` (an algorithm, or a plug-in one + `-padded`) at these shapes."""
    from r3dm_epymarl.registry import ALGORITHMS

    algorithm = name.removesuffix(PADDED)
    try:
        harness.algorithm_config(algorithm, host)
    except ValueError as error:
        raise SystemExit(f"--algos: {error}") from None
    overrides = dict(unit_dim=shapes["obs"], learner_log_interval=10**12,  # the first update logs, no other does
                     pretrain_encoder_steps=0, pretrain_contrastive_steps=0)  # steady-state updates only
    if algorithm in ALGORITHMS:  # the plug-in's learners; the host's QMIX runs its own fp32
        # padding-aware world models or not (a learner without world models ignores the key)
        overrides.update(precision=precision, wm_skip_padding=not name.endswith(PADDED))
    elif name.endswith(PADDED):
        raise SystemExit(f"--algos {name}: only the plug-in's algorithms have a padded variant")
    return harness.host_args(host, algorithm, shapes, device, **overrides)


@dataclass
class Phase:
    """The batches of one phase of training (one per timed round) and what they are."""
    name: str
    what: str
    batches: list
    lengths: list  # per batch, the episodes' lengths

    @property
    def padding(self) -> float:
        return episode_lengths.padding_fraction(self.lengths)


def phases_for(host, shapes, opts, entry):
    """Full-length batches, or per recorded phase `repeats` batches of lengths drawn from it."""
    count = max(1, opts.repeats)
    if entry is None or opts.no_padding:
        lengths = [[shapes["T"]] * shapes["B"]] * count
        what = f"every episode full length ({shapes['T']} steps, terminated at the last)"
        return [Phase("full length", what, [harness.host_batch(host, shapes, n, [True] * len(n), seed=i,
                                                               device=opts.device)
                                            for i, n in enumerate(lengths)], lengths)]
    phases = []
    for k, name in enumerate(episode_lengths.PHASES):
        recorded = entry["phases"][name]
        batches, lengths = [], []
        for i in range(count):
            n, ended = episode_lengths.sample(recorded, shapes["B"], seed=1000 * k + i)
            if shapes["T"] != entry["episode_limit"]:  # --T / --quick: lengths scaled to the shorter limit
                n = [max(1, min(shapes["T"], round(x * shapes["T"] / entry["episode_limit"]))) for x in n]
            batches.append(harness.host_batch(host, shapes, n, ended, seed=i, device=opts.device))
            lengths.append(n)
        what = (f"{recorded['policy']}; win rate {recorded['win_rate']:.2f}, mean length "
                f"{recorded['mean_length']:.1f} of {entry['episode_limit']}")
        phases.append(Phase(name, what, batches, lengths))
    return phases


@dataclass
class Bench:
    name: str
    learner: object
    times: list = field(default_factory=list)  # seconds per timed update
    rounds: list = field(default_factory=list)  # median seconds per update, per timed round
    parts: dict = field(default_factory=dict)  # part -> [ms per timed update]
    parts_total: list = field(default_factory=list)  # ms of all parts, per timed update
    contrastive: list = field(default_factory=list)  # seconds per contrastive step
    interval: int = 0  # contrastive_interval (0: none)
    flops: float = float("nan")  # per normal update
    part_flops: dict = field(default_factory=dict)
    contrastive_flops: float = 0.0
    peak: float = float("nan")  # bytes
    state: float = float("nan")  # bytes

    @property
    def update(self) -> float:
        return statistics.median(self.times)

    @property
    def contrastive_time(self) -> float:
        return statistics.median(self.contrastive) if self.contrastive else 0.0

    @property
    def amortised(self) -> float:
        return self.update + (self.contrastive_time / self.interval if self.interval else 0.0)

    @property
    def gflops_per_s(self) -> float:
        return self.flops / 1e9 / self.update


def build(host, name, shapes, batch, precision="fp32", device="cpu") -> Bench:
    args = host_args(host, name, shapes, precision, device)
    learner = harness.build_learner(host, args, batch, seed=0)
    has_contrastive = hasattr(learner, "_contrastive_step")
    return Bench(name, learner, interval=(getattr(args, "contrastive_interval", 0) or 0) if has_contrastive else 0)


@contextlib.contextmanager
def probing(learner, probe):
    """`probe` as the learner's `profile_part` for the block (the host's own learners have none)."""
    if not hasattr(learner, "profile_part"):
        yield
        return
    learner.profile_part = probe
    try:
        yield
    finally:
        del learner.profile_part  # back to the class's no-op


class PartTimes:
    """A `profile_part` probe that times each part of an update: wall clock on the CPU, CUDA events on
    the GPU (nothing waits inside the update; `take` reads them after `clock` has synchronised)."""

    def __init__(self, device):
        self.device, self.pending = device, []

    @contextlib.contextmanager
    def __call__(self, part):
        if self.device == "cuda":
            start, end = th.cuda.Event(enable_timing=True), th.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.pending.append((part, lambda: start.elapsed_time(end)))
        else:
            start = time.perf_counter()
            yield
            ms = 1000 * (time.perf_counter() - start)
            self.pending.append((part, lambda: ms))

    def take(self) -> dict:
        """part -> ms since the last take."""
        ms = {}
        for part, read in self.pending:
            ms[part] = ms.get(part, 0.0) + read()
        self.pending.clear()
        return ms


def contrastive_inputs(learner, batch):
    from r3dm_epymarl.learners.q_learner import td_mask

    _, mask = td_mask(batch)
    with th.no_grad():  # the embeddings e alone (f_e), as the learner's pre-training computes them
        e = learner.mac.roles.trajectory.unroll(learner.mac.trajectory_inputs(batch))
    return e[:, :-1], mask


# --- measurements ------------------------------------------------------------------------------
def clock(device) -> float:
    """perf_counter, after the GPU has finished what was queued (kernels run asynchronously)."""
    if device == "cuda":
        th.cuda.synchronize()
    return time.perf_counter()


def time_updates(benches, batches, opts):
    """Warm-up, then interleaved rounds; round r trains every algorithm on batches[r] (mod len)."""
    t = 0
    warm = {}
    for i in range(opts.warmup):
        for bench in benches:
            start = clock(opts.device)
            bench.learner.train(batches[i % len(batches)], t, t)
            warm[bench.name] = clock(opts.device) - start  # the last warm-up update's time
            t += 1
    # Cheap algorithms run several updates per round (up to 8, about as long as the slowest one's
    # single update), so that the baseline of every ratio is a median of many updates, not of a few.
    slowest = max(warm.values()) if warm else 0.0
    per_round = {name: min(8, max(1, int(slowest / max(w, 1e-9)))) for name, w in warm.items()}
    for round_ in range(opts.repeats):
        order = benches[round_ % len(benches):] + benches[:round_ % len(benches)]
        batch = batches[round_ % len(batches)]
        for bench in order:
            this_round = []
            parts = PartTimes(opts.device)
            with probing(bench.learner, parts):
                for _ in range(per_round.get(bench.name, 1)):
                    start = clock(opts.device)
                    bench.learner.train(batch, t, t)
                    elapsed = clock(opts.device) - start
                    t += 1
                    bench.times.append(elapsed)
                    this_round.append(elapsed)
                    ms = parts.take()
                    for part, value in ms.items():
                        bench.parts.setdefault(part, []).append(value)
                    bench.parts_total.append(sum(ms.values()))
            bench.rounds.append(statistics.median(this_round))
    for bench in benches:
        if bench.interval:
            e, mask = contrastive_inputs(bench.learner, batches[0])
            for _ in range(max(1, opts.repeats)):
                start = clock(opts.device)
                bench.learner._contrastive_step(e, mask)
                bench.contrastive.append(clock(opts.device) - start)
    return t


def count_flops(bench, batch, t):
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    parts = {}

    @contextlib.contextmanager
    def tally(part):
        before = counter.get_total_flops()
        yield
        parts[part] = parts.get(part, 0) + counter.get_total_flops() - before

    with probing(bench.learner, tally), counter:
        bench.learner.train(batch, t, t)
    bench.flops, bench.part_flops = float(counter.get_total_flops()), parts
    if bench.interval:
        e, mask = contrastive_inputs(bench.learner, batch)
        counter = FlopCounterMode(display=False)
        with counter:
            bench.learner._contrastive_step(e, mask)
        bench.contrastive_flops = float(counter.get_total_flops())


def peak_live_bytes(fn) -> int:
    """Peak of the bytes allocated while `fn` runs and still live (see the module docstring)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    live = peak = 0
    for _, size in sorted(events, key=lambda e: e[0]):
        live += size
        peak = max(peak, live)
    return peak


def check_peak_method():
    """The memory method on allocations of known size: the peak must be exactly what was live."""
    MB = 1_000_000

    def work():
        a = th.empty(10 * MB, dtype=th.uint8)
        b = th.empty(5 * MB, dtype=th.uint8)
        del a
        c = th.empty(25 * MB, dtype=th.uint8)  # 30 MB live: the peak
        del b, c
        x = th.ones(1000, 1000, requires_grad=True)  # 4 MB each below
        (x @ x).relu().sum().backward()  # live at most: x, x.grad, x@x, relu, grad buffers < 30 MB

    peak = peak_live_bytes(work)
    if peak != 30 * MB:
        raise SystemExit(f"memory method check failed: expected a peak of 30 MB, measured {peak / MB:.3f} MB")
    print("memory method check: a known 30 MB peak measured as 30.000 MB (ok)")


def state_bytes(learner) -> int:
    """Bytes of every tensor storage the learner holds: parameters, grads, buffers, optimiser state."""
    storages, seen = {}, set()
    own = ("r3dm_epymarl", "pymarlzooplus", "learners", "controllers", "modules", "components")

    def add(tensor):
        if isinstance(tensor, th.Tensor) and tensor.device.type == "cpu":
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()

    def visit(obj, depth=0):
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, th.Tensor):
            add(obj)
        elif isinstance(obj, th.nn.Module):
            for p in obj.parameters():
                add(p)
                add(p.grad)
            for b in obj.buffers():
                add(b)
            for module in obj.modules():  # optimisers kept as plain attributes of a module
                for value in vars(module).values():
                    if isinstance(value, (th.optim.Optimizer, list, tuple, dict)) and value is not module._modules:
                        visit(value, depth + 1)
        elif isinstance(obj, th.optim.Optimizer):
            for state in obj.state.values():
                for value in state.values():
                    add(value)
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value, depth + 1)
        elif type(obj).__module__.startswith(own) and hasattr(obj, "__dict__"):
            for value in vars(obj).values():
                visit(value, depth + 1)

    visit(learner)
    return sum(storages.values())


def measure_memory(bench, batch, t):
    learner = bench.learner
    peak = peak_live_bytes(lambda: learner.train(batch, t, t))
    if bench.interval:  # an update that also runs the contrastive step (after TD, as in training)
        learner.training_steps = bench.interval * (learner.training_steps // bench.interval + 1) - 1
        peak = max(peak, peak_live_bytes(lambda: learner.train(batch, t + 1, t + 1)))
    bench.peak = peak
    bench.state = state_bytes(learner)


def measure(host, shapes, opts, batches) -> list[Bench]:
    batch = batches[0]  # FLOPs and memory
    benches = [build(host, name, shapes, batch, opts.precision, opts.device) for name in opts.algos]
    t = time_updates(benches, batches, opts)
    for bench in benches:
        if not opts.no_flops:
            count_flops(bench, batch, t)
            t += 1
        if not opts.no_memory:
            measure_memory(bench, batch, t)
            t += 2
    return benches


# --- reports -----------------------------------------------------------------------------------
def mb(x: float) -> str:
    return f"{x / 1e6:8.1f}" if x == x else f"{'-':>8s}"


def print_table(benches):
    base = benches[0].amortised
    print(f"{'algorithm':12s} {'update ms':>9s} {'(min-max)':>15s} {'contrast. ms':>12s} {'amortised ms':>12s} "
          f"{'x ' + benches[0].name.upper():>8s} {'GFLOP/upd':>9s} {'GFLOP/s':>8s} {'peak MB':>8s} {'state MB':>8s}")
    for b in benches:
        spread = f"({1000 * min(b.times):.1f}-{1000 * max(b.times):.1f})"
        flops = f"{b.flops / 1e9:9.2f} {b.gflops_per_s:8.2f}" if b.flops == b.flops else f"{'-':>9s} {'-':>8s}"
        contrast = f"{1000 * b.contrastive_time:8.1f}/{b.interval}" if b.interval else f"{'-':>12s}"
        print(f"{b.name:12s} {1000 * b.update:9.1f} {spread:>15s} {contrast:>12s} {1000 * b.amortised:12.1f} "
              f"{b.amortised / base:8.2f} {flops} {mb(b.peak)} {mb(b.state)}")


def print_parts(bench):
    """Time, FLOPs and GFLOP/s of each part of one update (medians over the timed updates)."""
    if not bench.parts and not bench.interval:
        return
    per_update = [1000 * t for t in bench.times]
    rows = [("TD + rest of the update", statistics.median(u - s for u, s in zip(per_update, bench.parts_total)),
             bench.flops - sum(bench.part_flops.values()))]
    rows += [(PART_LABELS.get(part, part), statistics.median(ms), bench.part_flops.get(part, float("nan")))
             for part, ms in bench.parts.items()]
    if bench.interval:
        rows.append((f"contrastive step (1 in {bench.interval} updates)", 1000 * bench.contrastive_time,
                     bench.contrastive_flops))
    print(f"  {bench.name} per part:{'':22s} {'ms':>8s} {'share':>6s} {'GFLOP':>8s} {'GFLOP/s':>8s}")
    total = 1000 * bench.update
    for label, ms, flops in rows:
        gflop = flops / 1e9
        rate = f"{gflop / (ms / 1000):8.2f}" if ms > 0.05 and flops == flops else f"{'-':>8s}"
        share = f"{100 * ms / total:5.1f}%" if not label.startswith("contrastive") else f"{'':>6s}"
        print(f"    {label:40s} {ms:8.1f} {share} {gflop:8.2f} {rate}" if flops == flops else
              f"    {label:40s} {ms:8.1f} {share} {'-':>8s} {'-':>8s}")


def print_gflops_ratios(benches):
    """Each algorithm's GFLOP/s over the baseline's (the first algorithm)."""
    base = benches[0]
    if base.flops == base.flops:
        for b in benches[1:]:
            print(f"GFLOP/s ratio to {base.name}: {b.name} {b.gflops_per_s / base.gflops_per_s:.2f}x "
                  f"({b.gflops_per_s:.2f} vs {base.gflops_per_s:.2f})")


def print_skip_padding(benches):
    """X-padded's update time over X's, per round (the same batch), for every pair present."""
    by_name = {b.name: b for b in benches}
    for b in benches:
        padded = by_name.get(b.name + PADDED)
        if padded:
            ratios = [p / s for p, s in zip(padded.rounds, b.rounds)]
            print(f"skipping padding: {padded.name} / {b.name} update time = {statistics.median(ratios):.2f}x "
                  f"(median of {len(ratios)} rounds, {min(ratios):.2f}-{max(ratios):.2f})")


def run_one(host, opts):
    entry = episode_lengths.load(opts.map) if opts.map else None
    shapes = shapes_for(opts, opts.preset, entry)
    print(describe(opts.preset, shapes, opts, entry))
    for phase in phases_for(host, shapes, opts, entry):
        longest = [max(n) for n in phase.lengths]
        print(f"\nphase {phase.name}: {phase.what}\n  padding fraction {phase.padding:.3f} over {len(longest)} "
              f"batch(es) of {shapes['B']} (longest episode: median {statistics.median(longest):g} of "
              f"{shapes['T']} steps)", flush=True)
        benches = measure(host, shapes, opts, phase.batches)
        print_table(benches)
        for bench in benches:
            print_parts(bench)
        print_skip_padding(benches)
        print_gflops_ratios(benches)


def run_scaling(host, opts):
    results = []
    for preset in SCALING:
        shapes = shapes_for(opts, preset)
        print(describe(preset, shapes, opts), flush=True)
        benches = measure(host, shapes, opts, phases_for(host, shapes, opts, None)[0].batches)
        print_table(benches)
        results.append((shapes["N"], benches))
    names = [b.name for b in results[0][1]]
    print(f"\nscaling: amortised time per update as a ratio to {names[0]} (same process, interleaved rounds)")
    print(f"{'N':>3s} {names[0] + ' ms':>9s} " + " ".join(f"{n + ' x':>9s}" for n in names[1:])
          + ("  " + " ".join(f"{n + ' FLOPx':>11s}" for n in names[1:]) if not opts.no_flops else ""))
    for n, benches in results:
        line = f"{n:3d} {1000 * benches[0].amortised:9.1f} " + " ".join(
            f"{b.amortised / benches[0].amortised:9.2f}" for b in benches[1:])
        if not opts.no_flops:
            line += "  " + " ".join(f"{b.flops / benches[0].flops:11.2f}" for b in benches[1:])
        print(line)
    n0 = results[0][0]
    for name in names[1:]:
        ratio = {n: next(b for b in benches if b.name == name).amortised / benches[0].amortised
                 for n, benches in results}
        print(f"growth of {name}'s ratio: " + "; ".join(
            f"N={n}: ratio(N)/ratio({n0}) = {ratio[n] / ratio[n0]:.2f}, N/{n0} = {n / n0:.2f}" for n in list(ratio)[1:]))


def main(argv=None):
    opts = parse(argv)
    if opts.record_lengths:
        episode_lengths.record(opts.map, opts.episodes)
        return
    th.set_num_threads(opts.threads)
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.registry import register

    host = get_host("epymarl" if opts.epymarl else "pymarlzooplus", opts.epymarl)
    register(host)
    print(f"host {host.name}; torch {th.__version__}, {opts.threads} thread(s); plug-in algorithms in {opts.precision} "
          f"on {opts.device}; {opts.warmup} warm-up updates, then "
          f"{opts.repeats} interleaved timed rounds (1 update per round; cheaper algorithms up to 8 per round, "
          f"about the slowest one's time); medians", flush=True)
    if opts.quick and not opts.no_memory:
        check_peak_method()
    if opts.scaling:
        run_scaling(host, opts)
    else:
        run_one(host, opts)


if __name__ == "__main__":
    main()

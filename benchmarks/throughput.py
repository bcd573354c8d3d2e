"""End-to-end env steps/s (acting + learning) per algorithm on SMAX through the real PyMARLzoo+ run loop.

    python benchmarks/throughput.py                          # qmix cds acorm r3dm on 3s5z_vs_3s6z, 3000 steps each
    python benchmarks/throughput.py --steps 5000 --rounds 3  # longer, three interleaved rounds (ranges)
    python benchmarks/throughput.py --algos qmix r3dm --map 3m
    python benchmarks/throughput.py --algos r3dm r3dm-padded --map 2s3z --rounds 3  # skipping padding

`X-padded` is the plug-in algorithm X with `wm_skip_padding=False` (its world models compute on the
padded steps of each batch too), so one invocation compares the two paths.

One invocation runs every algorithm, each in a child process that this script starts (one after the
other, never two at once): `--config=qmix` is the host's own QMIX, `cds`, `acorm`, `r3dm` the
plug-in's, all through the plug-in's launcher (`r3dm_epymarl.launcher.launch`, host PyMARLzoo+),
`--env-config=smax`, the same seed, with the YAML defaults (batch 32 episodes, one learner update per
episode, episode runner, per-map presets as the launcher applies them). Results go to a temporary
directory that is deleted afterwards.

Inside the child, before the host starts, the host's run loop is instrumented (nothing in the host
or the plug-in is changed): the runner, learner and Logger that `pymarlzooplus.run` creates are
wrapped so that wall time is split, exclusively (a nested call is charged to the inner part only),
into
  acting   `runner.run(test_mode=False)`: env steps, action selection, episode batch
  testing  `runner.run(test_mode=True)`: the periodic greedy test episodes
  learning `learner.train(...)`
  logging  `Logger.log_stat`, `Logger.print_recent_stats` and the console logger's messages
  other    everything else in the loop: replay-buffer insert and sample, batch truncation, ...
Measurement window (what the figures cover): it opens when the first learner update has returned,
so the JAX compilation of the env (first reset / step), imports, the buffer fill before the first
update (32 episodes, acting only) and ACORM's / R3DM's one-off pre-training are all excluded (the
pre-training, ~2 min here, is even skipped unless --pretrain: it would only lengthen the run); it
closes at the end of the first learner update after `--steps` more env steps, and then the run is
stopped. env steps/s = env steps taken in the window / wall time of the window; so the window holds
exactly as many episodes as learner updates. The host's torch thread setting (1 thread) is kept
unless --threads is given. Logging and testing happen at `--log-interval` / `--test-interval` (by
default every 1000 steps, 3 test episodes: the SMAX config's 32 test episodes per 10000 steps, and
logging 10x more often than its 10000, so the logging share is an upper bound).
Short windows hold few updates: ACORM's / R3DM's contrastive step (every 100 updates, amortised
~1 ms/update) is usually not in the window.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without install

ALGORITHMS = ["qmix", "cds", "acorm", "r3dm"]
PADDED = "-padded"  # name suffix: the same algorithm with wm_skip_padding=False
PARTS = ("acting", "testing", "learning", "logging")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--map", default="3s5z_vs_3s6z", help="SMAX map (env_args.map_name)")
    p.add_argument("--algos", nargs="+", default=ALGORITHMS, help="first one is the baseline of the ratios")
    p.add_argument("--steps", type=int, default=2000, help="env steps in the measurement window")
    p.add_argument("--pretrain", action="store_true",
                   help="keep ACORM's / R3DM's one-off pre-training before the first update (default: "
                        "pretrain_*_steps=0; it runs before the window either way)")
    p.add_argument("--rounds", type=int, default=1, help="repeat all algorithms this many times (interleaved)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="precision of the plug-in algorithms (the host's QMIX runs its own fp32)")
    p.add_argument("--cuda", action="store_true", help="use_cuda=True (learner and acting on the GPU)")
    p.add_argument("--log-interval", type=int, default=1000,
                   help="log_interval, runner_log_interval and learner_log_interval (env steps)")
    p.add_argument("--test-interval", type=int, default=1000, help="env steps between test phases")
    p.add_argument("--test-nepisode", type=int, default=3, help="test episodes per test phase")
    p.add_argument("--threads", type=int, help="torch threads in the child (default: the host's, 1)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per child process")
    p.add_argument("--verbose", action="store_true", help="show the children's output")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one algorithm in this process
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--base-dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- the child: one instrumented host run -------------------------------------------------------
class Clock:
    """Exclusive wall time per part: entering a part pauses the part it is nested in."""

    def __init__(self):
        self.totals = defaultdict(float)
        self.calls = defaultdict(int)
        self.stack = []  # [part, started]

    @contextlib.contextmanager
    def part(self, name):
        now = time.perf_counter()
        if self.stack:
            self.totals[self.stack[-1][0]] += now - self.stack[-1][1]
        self.stack.append([name, now])
        self.calls[name] += 1
        try:
            yield
        finally:
            now = time.perf_counter()
            part, started = self.stack.pop()
            self.totals[part] += now - started
            if self.stack:
                self.stack[-1][1] = now

    def snapshot(self):
        return dict(self.totals), dict(self.calls)


class Window:
    def __init__(self, opts):
        self.opts = opts
        self.clock = Clock()
        self.process_start = time.perf_counter()
        self.start = None  # (time, t_env, totals, calls)
        self.done = False
        self.runner = None
        self.first_update_s = None

    def after_update(self, t_env):
        if self.done:
            return
        now = time.perf_counter()
        if self.start is None:
            self.start = (now, t_env, *self.clock.snapshot())
            return
        if t_env - self.start[1] >= self.opts.steps:
            self.finish(now, t_env)

    def finish(self, now, t_env):
        self.done = True
        t0, t_env0, totals0, calls0 = self.start
        totals, calls = self.clock.snapshot()
        wall = now - t0
        seconds = {part: totals.get(part, 0.0) - totals0.get(part, 0.0) for part in PARTS}
        count = {part: calls.get(part, 0) - calls0.get(part, 0) for part in ("acting", "testing", "learning")}
        result = {
            "algorithm": self.opts.child, "map": self.opts.map, "steps": t_env - t_env0, "wall_s": wall,
            "steps_per_s": (t_env - t_env0) / wall, "warmup_s": t0 - self.process_start,
            "t_env_start": t_env0, "first_update_s": self.first_update_s, "episodes": count["acting"], "updates": count["learning"],
            "test_episodes": count["testing"], "seconds": seconds,
            "share": {**{p: s / wall for p, s in seconds.items()}, "other": 1 - sum(seconds.values()) / wall},
            "torch_threads": __import__("torch").get_num_threads(),
        }
        Path(self.opts.result).write_text(json.dumps(result))
        if self.runner is not None:
            self.runner.args.t_max = -1  # the host's loop ends after this iteration


class Instrumented:
    """A registry lookalike: `REGISTRY[key](...)` builds the real object, then `instrument(obj)`."""

    def __init__(self, base, instrument):
        self.base, self.instrument = base, instrument

    def __getitem__(self, key):
        cls = self.base[key]

        def build(*args, **kwargs):
            return self.instrument(cls(*args, **kwargs))

        return build

    def __contains__(self, key):
        return key in self.base

    def __getattr__(self, name):
        return getattr(self.base, name)


def instrument_host(window: Window):
    import pymarlzooplus.run as zoo_run
    import torch

    clock = window.clock

    def timed(method, part):
        def wrapper(*args, **kwargs):
            with clock.part(part):
                return method(*args, **kwargs)
        return wrapper

    def runner(obj):
        window.runner = obj
        if window.opts.threads:
            torch.set_num_threads(window.opts.threads)
        run = obj.run

        def run_timed(*args, **kwargs):
            test = kwargs.get("test_mode", args[0] if args else False)
            with clock.part("testing" if test else "acting"):
                return run(*args, **kwargs)

        obj.run = run_timed
        return obj

    def learner(obj):
        train = obj.train

        def train_timed(batch, t_env, *args, **kwargs):
            start = time.perf_counter()
            with clock.part("learning"):
                out = train(batch, t_env, *args, **kwargs)
            if window.first_update_s is None:
                window.first_update_s = time.perf_counter() - start
            window.after_update(t_env)
            return out

        obj.train = train_timed
        return obj

    logger_cls = zoo_run.Logger

    def logger(*args, **kwargs):
        obj = logger_cls(*args, **kwargs)
        obj.log_stat = timed(obj.log_stat, "logging")
        obj.print_recent_stats = timed(obj.print_recent_stats, "logging")
        console = obj.console_logger
        for level in ("info", "warning"):
            setattr(console, level, timed(getattr(console, level), "logging"))
        return obj

    zoo_run.r_REGISTRY = Instrumented(zoo_run.r_REGISTRY, runner)
    zoo_run.le_REGISTRY = Instrumented(zoo_run.le_REGISTRY, learner)
    zoo_run.Logger = logger
    # After the loop: no 10 s sleep and no plots (outside the window anyway; they only cost time).
    zoo_run.plot_single_experiment_results = lambda *args, **kwargs: None
    zoo_run.time = type("NoSleep", (), {"time": staticmethod(time.time), "sleep": staticmethod(lambda s: None)})


def algorithm_config(name: str) -> dict:
    import yaml
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.launcher import find_config

    path = find_config(get_host("pymarlzooplus"), "algs", name)
    return yaml.safe_load(path.read_text()) if path else {}


def split_variant(name: str) -> tuple[str, list[str]]:
    """`r3dm-padded` -> ("r3dm", ["wm_skip_padding=False"]); any other name -> (name, [])."""
    if name.endswith(PADDED):
        base = name[: -len(PADDED)]
        if "wm_skip_padding" not in algorithm_config(base):
            raise SystemExit(f"--algos {name}: {base} has no wm_skip_padding key, so no padded variant")
        return base, ["wm_skip_padding=False"]
    return name, []


def child(opts):
    window = Window(opts)
    instrument_host(window)
    from r3dm_epymarl.launcher import launch

    config, extra = split_variant(opts.child)
    argv = [f"--config={config}", "--env-config=smax", "with", f"env_args.map_name={opts.map}",
            f"seed={opts.seed}", "t_max=1000000000", f"use_cuda={opts.cuda}", "save_model=False",
            f"log_interval={opts.log_interval}", f"runner_log_interval={opts.log_interval}",
            f"learner_log_interval={opts.log_interval}", f"test_interval={opts.test_interval}",
            f"test_nepisode={opts.test_nepisode}"]
    if not opts.pretrain and "pretrain_encoder_steps" in algorithm_config(config):
        argv += ["pretrain_encoder_steps=0", "pretrain_contrastive_steps=0"]
    if "precision" in algorithm_config(config):
        argv.append(f"precision={opts.precision}")
    argv += extra
    launch(argv, host_name="pymarlzooplus", base_dir=opts.base_dir)
    if not window.done:
        raise SystemExit("the run ended before the measurement window closed")


# --- the parent: one child per algorithm, then the table ----------------------------------------
def run_child(algorithm, opts):
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", algorithm, "--result", str(result),
               "--base-dir", tmp, "--map", opts.map, "--steps", str(opts.steps), "--seed", str(opts.seed),
               "--log-interval", str(opts.log_interval), "--test-interval", str(opts.test_interval),
               "--test-nepisode", str(opts.test_nepisode), "--precision", opts.precision]
        if opts.cuda:
            cmd.append("--cuda")
        if opts.threads:
            cmd += ["--threads", str(opts.threads)]
        if opts.pretrain:
            cmd.append("--pretrain")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=not opts.verbose, text=True, env=env, cwd=tmp,
                                  timeout=opts.timeout)
            code, out, err = proc.returncode, proc.stdout or "", proc.stderr or ""
        except subprocess.TimeoutExpired as exc:
            code, out, err = "timeout", str(exc.stdout or ""), str(exc.stderr or "")
        total = time.perf_counter() - start
        if not result.is_file():
            raise SystemExit(f"{algorithm}: child failed ({code}) after {total:.0f} s\n--- stdout\n{out[-3000:]}"
                             f"\n--- stderr\n{err[-3000:]}")
        data = json.loads(result.read_text())
        data["process_s"] = total
        return data


def main(argv=None):
    opts = parse(argv)
    if opts.child:
        return child(opts)
    print(f"SMAX {opts.map} through PyMARLzoo+ (r3dm_epymarl.launcher), seed {opts.seed}; window of "
          f"{opts.steps} env steps after the first learner update; logging every {opts.log_interval} steps, "
          f"{opts.test_nepisode} test episodes every {opts.test_interval} steps; {opts.rounds} round(s); "
          f"plug-in algorithms in {opts.precision}{' on cuda' if opts.cuda else ''}; "
          f"pre-training {'on' if opts.pretrain else 'off'}", flush=True)
    runs = defaultdict(list)
    for round_ in range(opts.rounds):
        for algorithm in opts.algos:
            data = run_child(algorithm, opts)
            runs[algorithm].append(data)
            print(f"  round {round_ + 1} {algorithm}: {data['steps_per_s']:.0f} env steps/s ({data['steps']} steps, "
                  f"{data['updates']} updates in {data['wall_s']:.1f} s; warm-up {data['warmup_s']:.1f} s incl. first "
                  f"update {data['first_update_s']:.1f} s, "
                  f"process {data['process_s']:.0f} s, torch threads {data['torch_threads']})", flush=True)
    base = opts.algos[0]
    print(f"\n{'algorithm':10s} {'env steps/s':>11s} {'(range)':>13s} {'x ' + base.upper():>8s} {'(range)':>13s} "
          f"{'ep len':>6s} {'upd/s':>6s} {'% acting':>8s} {'% testing':>9s} {'% learning':>10s} {'% logging':>9s} "
          f"{'% other':>7s}")
    for algorithm in opts.algos:
        data = runs[algorithm]
        sps = [d["steps_per_s"] for d in data]
        ratios = [d["steps_per_s"] / b["steps_per_s"] for d, b in zip(data, runs[base])]
        share = {p: statistics.median(d["share"][p] for d in data) for p in (*PARTS, "other")}
        ep_len = statistics.median(d["steps"] / max(1, d["episodes"]) for d in data)
        ups = statistics.median(d["updates"] / d["wall_s"] for d in data)
        print(f"{algorithm:10s} {statistics.median(sps):11.0f} {f'({min(sps):.0f}-{max(sps):.0f})':>13s} "
              f"{statistics.median(ratios):8.2f} {f'({min(ratios):.2f}-{max(ratios):.2f})':>13s} {ep_len:6.1f} "
              f"{ups:6.2f} {100 * share['acting']:8.1f} {100 * share['testing']:9.1f} {100 * share['learning']:10.1f} "
              f"{100 * share['logging']:9.1f} {100 * share['other']:7.1f}")
    print("(medians over rounds; x = env steps/s over the baseline's in the same round; shares of the window's "
          "wall time, exclusive)")
    for algorithm in opts.algos:
        if algorithm + PADDED in runs:
            ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(runs[algorithm], runs[algorithm + PADDED])]
            print(f"skipping padding: {algorithm} / {algorithm}{PADDED} env steps/s = {statistics.median(ratios):.2f}x "
                  f"(median of {len(ratios)} round(s), {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()

"""Do an algorithm's roles shape its agents' futures? A probe of saved ACORM / R3DM checkpoints.

Each PATH is a Sacred run folder or a checkpoint folder, as for `roles`; `--steps` picks checkpoints
(default: each run's newest). For each checkpoint, M greedy test episodes (`--episodes`, default 200) are
rolled out through the real host with the run's own config, episode m of every checkpoint starting
from the same env seed (`--seed` + m; SMAX: the same initial states for every checkpoint compared).
Recorded per agent and step: the role z_t, the trajectory embedding e_t, the observation and the action.

On a split of the episodes into training and held-out ones, fresh predictors of the same size are fit
from (h), (h, z) and (h, e), h being the agent's observation and previous action, to the next k actions
and observations (k from `--horizons`, default 1 and 5); the role's held-out gain (nats per action,
nats per observation step under a Gaussian, and the MSE ratio) estimates I(role; future | h), with 95%
CIs from a bootstrap over held-out episodes (experiments/probe_fit.py says how). Also: how often agents
that start an episode alike (close first observations) get different role clusters, and how often
their actions then differ.

Written under --out: per checkpoint a JSON of its numbers, an .npz of its roll-out and its analysis (both
reused by a later call with the same checkpoint, episodes, seed and options); probe.csv (one row per checkpoint, horizon and
measure), probe.txt (the table, and for checkpoints of two algorithms at the same map, step and seed,
their differences with CIs, then over seeds) and probe.png.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from r3dm_epymarl.errors import UserError

HELP = "measure how much each agent's role tells about its future (ACORM/R3DM checkpoints), with CIs"
MEASURES = (("actions", "gain_z", "nats/action"), ("obs", "gain_z", "nats/step"), ("obs", "mse_ratio_z", "MSE ratio"))


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="Sacred run folders (results/sacred/<name>/<map>/<id>) or checkpoint folders")
    parser.add_argument("--steps", nargs="+", type=int, metavar="T_ENV",
                        help="checkpoints to probe in each run (the nearest intact one to each; default: the newest)")
    parser.add_argument("--episodes", type=int, default=200, help="greedy test episodes per checkpoint (default: 200)")
    parser.add_argument("--seed", type=int, default=100000,
                        help="episode m starts from env seed SEED+m, the same for every checkpoint (default: 100000)")
    parser.add_argument("--horizons", nargs="+", type=int, default=[1, 5], metavar="K",
                        help="predict the next K actions and observations (default: 1 5)")
    parser.add_argument("--held-out", type=float, default=0.3, help="share of episodes held out (default: 0.3)")
    parser.add_argument("--hidden", type=int, default=128, help="units per hidden layer of the predictors (default: 128)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    parser.add_argument("--alike-quantile", type=float, default=0.1,
                        help="agent pairs whose first observations are this close (a quantile of all pairs) "
                             "count as starting alike (default: 0.1)")
    parser.add_argument("--out", metavar="DIR", default="probe", help="output folder (default: ./probe)")
    parser.add_argument("--host", choices=["epymarl", "pymarlzooplus"],
                        help="host to roll out through (default: the host that made the run)")
    parser.add_argument("--epymarl", metavar="PATH",
                        help="an EPyMARL checkout (default: the run's own checkout, then $EPYMARL_PATH)")


def check_arguments(args) -> None:
    """Every bad number in one line, before any host starts."""
    if args.episodes < 4:
        raise UserError(f"--episodes {args.episodes}: the probe needs at least 4 episodes (held-out and "
                        "validation ones among them); 200 is the default")
    if any(k < 1 for k in args.horizons):
        raise UserError(f"--horizons {' '.join(map(str, args.horizons))}: each K must be >= 1 (steps ahead)")
    if not 0 < args.held_out < 1:
        raise UserError(f"--held-out {args.held_out}: give the share of episodes held out, between 0 and 1")
    if not 0 < args.alike_quantile <= 1:
        raise UserError(f"--alike-quantile {args.alike_quantile}: give a quantile in (0, 1]")
    if args.hidden < 1 or args.reps < 100:
        raise UserError("--hidden must be >= 1 and --reps >= 100")


# --- the roll-out (one fresh interpreter per checkpoint: a host run per process) ------------------
class ProbeRecorder:
    """Keeps, per episode, the batch the host's episode runner fills and the role controller's e and z
    at every acting step (row 0: the episode runner runs one env)."""

    def __init__(self):
        self.episodes: list[dict] = []

    def record(self, t, e, z, batch=None):
        if t == 0 or not self.episodes:
            self.episodes.append({"batch": batch, "e": [], "z": []})
        self.episodes[-1]["e"].append(e[0].float().cpu().numpy().copy())
        self.episodes[-1]["z"].append(z[0].float().cpu().numpy().copy())

    def arrays(self) -> dict:
        """The episodes as flat arrays with offsets: step rows of episode m are offsets[m]:offsets[m+1];
        its last row is the terminal observation (its action is never executed)."""
        import numpy as np

        parts = {name: [] for name in ("e", "z", "obs", "actions", "avail")}
        offsets = [0]
        for episode in self.episodes:
            batch = episode["batch"]
            steps = int(batch["filled"][0].sum())  # executed steps + the terminal observation
            steps = min(steps, len(episode["e"]))
            parts["e"].append(np.stack(episode["e"][:steps]))
            parts["z"].append(np.stack(episode["z"][:steps]))
            parts["obs"].append(batch["obs"][0, :steps].float().cpu().numpy())
            parts["actions"].append(batch["actions"][0, :steps, :, 0].long().cpu().numpy())
            parts["avail"].append(batch["avail_actions"][0, :steps].long().cpu().numpy())
            offsets.append(offsets[-1] + steps)
        return {**{k: np.concatenate(v) for k, v in parts.items()}, "offsets": np.asarray(offsets)}


def collect(run_dir: str, step_dir: str, episodes: int, seed: int, host: str | None, epymarl: str | None,
            out: str) -> None:
    """Roll out one checkpoint and save its arrays to `out` (.npz). Runs in its own process."""
    import itertools

    import numpy as np

    from r3dm_epymarl.envs.smax import SMAXEnv
    from r3dm_epymarl.experiments.roles import evaluate_checkpoint, rollout_host
    from r3dm_epymarl.experiments.roles_source import find_source

    os.environ.setdefault("MPLBACKEND", "Agg")
    source = find_source(Path(step_dir), Path(run_dir))
    host_name, epymarl_path = rollout_host(source, host, epymarl)
    recorder = ProbeRecorder()
    SMAXEnv.episode_seeds = itertools.count(seed)
    try:
        stats = evaluate_checkpoint(source, seed, host_name, epymarl_path, recorder, episodes)
    finally:
        SMAXEnv.episode_seeds = None
    if len(recorder.episodes) != episodes:
        raise UserError(f"the evaluation of {source.step_dir} ran {len(recorder.episodes)} episodes, not {episodes}")
    np.savez_compressed(out, **recorder.arrays(), t_env=source.t_env, episodes=episodes, seed=seed,
                        algorithm=str(source.config.get("name")), map_name=source.map_name,
                        run_seed=int(source.config.get("seed", -1)), run_dir=str(source.run_dir),
                        checkpoint=str(source.step_dir), role_clusters=int(source.config["role_clusters"]),
                        stats=json.dumps(stats))


def _collect_in_a_fresh_process(*arguments) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(collect, arguments)


# --- from episodes to samples ---------------------------------------------------------------------
def one_hot(actions, n_actions: int):
    import numpy as np

    return np.eye(n_actions, dtype=np.float32)[actions]


def build_samples(data: dict, k: int, n_actions: int):
    """Samples for horizon k: every agent alive at t (more than one action available) at every step t
    whose k future actions were executed (t + k <= executed steps). h = [o_t, onehot(a_{t-1})]."""
    import numpy as np

    from r3dm_epymarl.experiments.probe_fit import Samples

    rows = {name: [] for name in ("h", "z", "e", "actions", "obs", "episode")}
    offsets = data["offsets"]
    for m in range(len(offsets) - 1):
        lo, hi = offsets[m], offsets[m + 1]
        executed = hi - lo - 1  # the last row is the terminal observation
        if executed < k:
            continue
        obs, acts, avail = data["obs"][lo:hi], data["actions"][lo:hi], data["avail"][lo:hi]  # [T+1, N, .]
        previous = np.concatenate([np.zeros_like(acts[:1]), acts[:-1]])  # a_{t-1}, a_{-1} = none
        prev_onehot = one_hot(previous, n_actions)
        prev_onehot[0] = 0.0
        T = executed - k + 1  # start steps t = 0 .. executed-k
        alive = avail[:T].sum(-1) > 1  # [T, N]
        t_idx, agent = np.nonzero(alive)
        future = t_idx[:, None] + np.arange(k)  # [S, k]
        rows["h"].append(np.concatenate([obs[t_idx, agent], prev_onehot[t_idx, agent]], axis=1))
        rows["z"].append(data["z"][lo:hi][t_idx, agent])
        rows["e"].append(data["e"][lo:hi][t_idx, agent])
        rows["actions"].append(acts[future, agent[:, None]])
        rows["obs"].append(obs[future + 1, agent[:, None]])
        rows["episode"].append(np.full(len(t_idx), m))
    if not rows["h"]:
        raise UserError(f"no episode lasted {k} steps: lower --horizons")
    stacked = {name: np.concatenate(parts) for name, parts in rows.items()}
    return Samples(stacked["h"].astype(np.float32), stacked["z"].astype(np.float32), stacked["e"].astype(np.float32),
                   stacked["actions"].astype(np.int64), stacked["obs"].astype(np.float32), stacked["episode"],
                   n_actions)


def starts(data: dict, clusters: int, steps: int = 5) -> dict:
    """The first observation, the role cluster (K-means over the agents' e at t=0, as training
    clusters them) and the first `steps` actions (-1 past the end) of every agent and episode."""
    import numpy as np
    import torch as th

    from r3dm_epymarl.roles.kmeans import batched_kmeans

    offsets = data["offsets"]
    first = offsets[:-1]
    n_agents = data["obs"].shape[1]
    actions = np.full((len(first), n_agents, steps), -1)
    for m, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
        executed = min(hi - lo - 1, steps)
        actions[m, :, :executed] = data["actions"][lo:lo + executed].T
    labels = batched_kmeans(th.from_numpy(data["e"][first]).float(), clusters, n_init=10,
                            generator=th.Generator().manual_seed(0)).labels.numpy()
    return {"obs0": data["obs"][first], "labels0": labels, "actions": actions}


# --- one checkpoint ------------------------------------------------------------------------------
def checkpoint_label(data: dict) -> str:
    return f"{data['algorithm']} {data['map_name']} seed {data['run_seed']} t={int(data['t_env'])}"


def analyse(data: dict, args) -> dict:
    """Every number of one checkpoint: per horizon the role gains, and the alike-start shares."""
    from r3dm_epymarl.experiments.probe_fit import FitOptions, alike_starts, role_gains

    n_actions = int(data["avail"].shape[-1])
    options = FitOptions(held_out=args.held_out, hidden=args.hidden, reps=args.reps)
    result = {"label": checkpoint_label(data), "algorithm": str(data["algorithm"]), "map": str(data["map_name"]),
              "run_seed": int(data["run_seed"]), "t_env": int(data["t_env"]), "checkpoint": str(data["checkpoint"]),
              "episodes": int(data["episodes"]), "env_seed": int(data["seed"]),
              "test_stats": json.loads(str(data["stats"])), "horizons": {}}
    for k in args.horizons:
        result["horizons"][k] = role_gains(build_samples(data, k, n_actions), options)
    first = starts(data, int(data["role_clusters"]))
    result["alike_starts"] = alike_starts(first["obs0"], first["labels0"], first["actions"], args.alike_quantile)
    return result


def _rollout_file(out: Path, source, args) -> Path:
    import hashlib

    key = json.dumps([str(source.step_dir), args.episodes, args.seed, args.host, args.epymarl])
    return out / "rollouts" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def load_rollout(source, out: Path, args) -> dict:
    """The checkpoint's roll-out: from an earlier call's file when there is one, else rolled out now."""
    import numpy as np

    file = _rollout_file(out, source, args)
    if not file.is_file():
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(file.stem + ".part.npz")
        print(f"probe: rolling out {args.episodes} episodes of {source.step_dir}", file=sys.stderr, flush=True)
        _collect_in_a_fresh_process(str(source.run_dir), str(source.step_dir), args.episodes, args.seed,
                                    args.host, args.epymarl, str(partial))
        partial.replace(file)
    with np.load(file) as saved:
        return {name: saved[name] for name in saved.files}


ANALYSIS_VERSION = 2  # bump when analyse() computes something else: older cached analyses are not reused


def cached_analysis(source, out: Path, args) -> dict:
    """analyse() of the checkpoint's roll-out, from an earlier call with the same roll-out and options
    when there is one (the fits take minutes; a report over more checkpoints redoes only the new ones)."""
    import hashlib
    import pickle

    rollout = _rollout_file(out, source, args)
    options = [ANALYSIS_VERSION, args.horizons, args.held_out, args.hidden, args.reps, args.alike_quantile]
    key = hashlib.sha1(json.dumps([rollout.name, options]).encode()).hexdigest()[:16]
    cached = out / "analyses" / f"{key}.pkl"
    if cached.is_file() and rollout.is_file():
        with open(cached, "rb") as handle:
            return pickle.load(handle)
    result = analyse(load_rollout(source, out, args), args)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(cached.stem + ".part")
    with open(partial, "wb") as handle:
        pickle.dump(result, handle)
    partial.replace(cached)
    return result


# --- output ------------------------------------------------------------------------------------------
def _fmt(estimate) -> str:
    return f"{estimate.value:+.3f} [{estimate.lo:+.3f}, {estimate.hi:+.3f}]"


def rows_of(result: dict) -> list[dict]:
    rows = []
    for k, gains in result["horizons"].items():
        for target, key, unit in MEASURES:
            for role in ("z", "e"):
                estimate = gains[target][key.replace("_z", f"_{role}")]
                rows.append({"algorithm": result["algorithm"], "map": result["map"], "seed": result["run_seed"],
                             "step": step_of(result), "t_env": result["t_env"], "k": k, "target": target,
                             "measure": key.replace("_z", f"_{role}"), "unit": unit, "value": estimate.value,
                             "lo": estimate.lo, "hi": estimate.hi, "episodes": result["episodes"]})
    return rows


def step_of(result: dict) -> int:
    """The step a checkpoint was probed for: the `--steps` value it is the nearest checkpoint to (runs
    save at slightly different t_env, e.g. 50189 and 50212 for 50000), else its own t_env."""
    return result.get("step", result["t_env"])


def comparisons(results: list[dict]) -> list[str]:
    """For each map and step with two algorithms, their per-seed differences (seeds both have), and the
    mean over seeds with the seeds' spread: stated plainly when there are too few seeds to say more."""
    import numpy as np

    from r3dm_epymarl.experiments.probe_fit import difference

    lines = []
    keyed = {(r["map"], step_of(r), r["algorithm"], r["run_seed"]): r for r in results}
    groups = sorted({(r["map"], step_of(r)) for r in results})
    for map_name, t_env in groups:
        algorithms = sorted({a for (m, t, a, _) in keyed if (m, t) == (map_name, t_env)})
        for i, a in enumerate(algorithms):
            for b in algorithms[i + 1:]:
                seeds = sorted({s for (m, t, x, s) in keyed if (m, t, x) == (map_name, t_env, a)}
                               & {s for (m, t, x, s) in keyed if (m, t, x) == (map_name, t_env, b)})
                if not seeds:
                    continue
                at = ", ".join(f"{x} seed {s} t_env={keyed[(map_name, t_env, x, s)]['t_env']}" for s in seeds
                               for x in (a, b))
                lines.append(f"{a} - {b} on {map_name} at step {t_env} (seeds {', '.join(map(str, seeds))}; "
                             f"checkpoints {at}):")
                for k in keyed[(map_name, t_env, a, seeds[0])]["horizons"]:
                    for target, key, unit in MEASURES:
                        diffs = [difference(keyed[(map_name, t_env, a, s)]["horizons"][k][target][key],
                                         keyed[(map_name, t_env, b, s)]["horizons"][k][target][key]) for s in seeds]
                        per_seed = "; ".join(f"seed {s} {_fmt(d)}" for s, d in zip(seeds, diffs))
                        values = np.array([d.value for d in diffs])
                        above = sum(d.lo > 0 for d in diffs)
                        below = sum(d.hi < 0 for d in diffs)
                        lines.append(f"  k={k} {target} {key} ({unit}): {per_seed}")
                        lines.append(f"    over {len(seeds)} seeds: mean {values.mean():+.3f}, range "
                                     f"[{values.min():+.3f}, {values.max():+.3f}]; CI above 0 in {above}, "
                                     f"below 0 in {below} of {len(seeds)}"
                                     + ("" if len(seeds) >= 5 else "; too few seeds for a claim about the "
                                        "algorithms, only about these policies"))
    return lines


def summary(results: list[dict]) -> str:
    lines = ["Role probe: held-out gain of predicting an agent's future from (h, z) over h alone, h = its "
             "observation and previous action; 95% CIs over held-out episodes. MSE ratio < 1 and gains > 0: "
             "the role tells about the future. e (trajectory embedding) is the reference."]
    for r in results:
        stats = r["test_stats"]
        won = f", test win rate {stats['test_battle_won_mean']:.3f}" if "test_battle_won_mean" in stats else ""
        lines.append(f"\n{r['label']} ({r['episodes']} episodes{won})")
        for k, gains in r["horizons"].items():
            lines.append(f"  k={k}: actions gain z {_fmt(gains['actions']['gain_z'])} e {_fmt(gains['actions']['gain_e'])} "
                         f"nats/action (h alone {gains['actions']['nats_h']:.3f}); obs gain z "
                         f"{_fmt(gains['obs']['gain_z'])} e {_fmt(gains['obs']['gain_e'])} nats/step, MSE ratio z "
                         f"{_fmt(gains['obs']['mse_ratio_z'])}")
        alike = r["alike_starts"]
        lines.append(f"  alike starts: {alike['pairs']} pairs; different roles {alike['different_roles']:.2f}; "
                     f"actions differ in the first {alike['steps']} steps {alike['action_disagreement_different_roles']:.2f}"
                     f" (different roles) vs {alike['action_disagreement_same_role']:.2f} (same role)")
    comparison = comparisons(results)
    if comparison:
        lines += ["", "Differences between algorithms (same map, step and seed; CIs from independent bootstraps):",
                  *comparison]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """One panel per measure and horizon: each checkpoint's estimate with its CI, grouped by algorithm
    and step, seeds side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = list(results[0]["horizons"])
    groups = sorted({(r["algorithm"], step_of(r)) for r in results}, key=lambda g: (g[1], g[0]))
    fig, axes = plt.subplots(len(horizons), len(MEASURES), figsize=(4.2 * len(MEASURES), 3.2 * len(horizons)),
                             squeeze=False)
    colours = plt.get_cmap("tab10")
    algorithms = sorted({g[0] for g in groups})
    for row, k in enumerate(horizons):
        for col, (target, key, unit) in enumerate(MEASURES):
            ax = axes[row][col]
            for g, (algorithm, t_env) in enumerate(groups):
                members = sorted((r for r in results if (r["algorithm"], step_of(r)) == (algorithm, t_env)),
                                 key=lambda r: r["run_seed"])
                for j, r in enumerate(members):
                    est = r["horizons"][k][target][key]
                    x = g + (j - (len(members) - 1) / 2) * 0.15
                    ax.errorbar(x, est.value, yerr=[[est.value - est.lo], [est.hi - est.value]], fmt="o", ms=4,
                                capsize=2, color=colours(algorithms.index(algorithm) % 10))
            ax.axhline(1.0 if key.startswith("mse_ratio") else 0.0, color="0.5", lw=0.8, ls="--")
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([f"{a}\n{t // 1000}k" for a, t in groups], fontsize=8)
            ax.set_title(f"{target}, k={k}: {'MSE ratio (h,z)/(h)' if 'ratio' in key else 'gain of z'} ({unit})",
                         fontsize=9)
    fig.suptitle("Do roles shape the future? Held-out gain of the role, per checkpoint (seeds side by side, 95% CI)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _jsonable(result: dict) -> dict:
    from r3dm_epymarl.experiments.probe_fit import Estimate

    def convert(value):
        if isinstance(value, Estimate):
            return value.as_dict()
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    return convert(result)


def main(args) -> int:
    import csv

    import torch as th

    check_arguments(args)
    th.set_num_threads(1)
    out = Path(args.out).expanduser().resolve()
    # Resolve every checkpoint first: a typo in the third path is found before the first roll-out.
    from r3dm_epymarl.experiments.roles_source import find_source

    sources = {}  # checkpoint folder -> (its source, the --steps value it was found for)
    for path in args.paths:
        for step in args.steps or [None]:
            source = find_source(Path(path), None, step)
            sources.setdefault(source.step_dir, (source, step))  # two --steps nearest to one checkpoint: once
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for source, step in sources.values():
        result = dict(cached_analysis(source, out, args))
        if step is not None:  # compared with other runs' checkpoints for the same step
            result["step"] = step
        results.append(result)
        name = f"{result['algorithm']}_{result['map']}_seed{result['run_seed']}_t{result['t_env']}"
        (out / f"{name}.json").write_text(json.dumps(_jsonable(result), indent=1))
        print(f"probe: {result['label']} done", file=sys.stderr, flush=True)
    with open(out / "probe.csv", "w", newline="") as handle:
        rows = [row for r in results for row in rows_of(r)]
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = summary(results)
    (out / "probe.txt").write_text(text)
    plot(results, out / "probe.png")
    print(text)
    print(f"probe: {out / 'probe.csv'}, {out / 'probe.txt'}, {out / 'probe.png'}")
    return 0

"""Role plots for a saved ACORM or R3DM checkpoint: the paper's qualitative view of the roles.

PATH is a Sacred run folder (results/sacred/<name>/<map>/<id>/, its newest intact checkpoint is used
unless --step says otherwise; a half-written one is skipped, as `run` skips it) or a checkpoint folder
(PyMARLzoo+: <run>/models[/<t_env>]; EPyMARL: results/models/<token>[/<t_env>]). The run's own config
is launched again through the real host with `checkpoint_path=... evaluate=True test_nepisode=1`: one
greedy test episode, no training, the host's runner and env. While it acts, the role controller reports
each agent's trajectory embedding e and role embedding z at every step; the agents of each step are
then clustered into `role_clusters` roles with the learner's own batched K-means (over e, as in
training). Written: a PNG with (a) the PCA (2 components) of every agent's z over the episode, one
marker and track per agent, coloured by cluster, and (b) the cluster of each agent at each step; and an
.npz beside it with the arrays (z [T, N, R], e [T, N, E], labels [T, N], ...). T counts the acting
steps, including the final one at the terminal observation (the host selects an action there that is
never executed).
"""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from r3dm_epymarl.config import flatten
from r3dm_epymarl.errors import UserError
from r3dm_epymarl.experiments.roles_source import RUN_HINT, Source, _read_json, find_source  # noqa: F401

HELP = "plot the role embeddings and role clusters of a saved ACORM/R3DM checkpoint over one test episode"

# Keys the roll-out sets itself; the run's own values of these are dropped from its updates.
ROLLOUT_KEYS = ("checkpoint_path", "load_step", "evaluate", "test_nepisode", "save_model", "save_model_interval",
                "save_replay", "render", "runner", "batch_size_run", "use_tensorboard", "use_wandb", "seed")
# PyMARLzoo+ names its Sacred experiment "pymarlzooplus", upstream EPyMARL "pymarl".
EPYMARL_EXPERIMENT = "pymarl"


def add_arguments(parser) -> None:
    parser.add_argument("path", metavar="PATH", help=f"a Sacred run folder ({RUN_HINT}) or a checkpoint folder "
                                     "(<run>/models[/<t_env>] or results/models/<token>[/<t_env>])")
    parser.add_argument("--run", metavar="DIR",
                        help="the Sacred run that saved the checkpoint, when PATH is a checkpoint folder "
                             "whose run is not found next to it")
    parser.add_argument("--step", type=int, metavar="T_ENV",
                        help="the checkpoint's t_env (default: the newest; the nearest intact one is used)")
    parser.add_argument("--out", metavar="PATH",
                        help="a folder, or a .png file (the .npz goes beside it); default: <run>/roles/")
    parser.add_argument("--seed", type=int, help="seed of the test episode (default: the run's seed)")
    parser.add_argument("--host", choices=["epymarl", "pymarlzooplus"],
                        help="host to roll out through (default: the host that made the run)")
    parser.add_argument("--epymarl", metavar="PATH",
                        help="an EPyMARL checkout (default: the run's own checkout, then $EPYMARL_PATH)")


def main(args) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")  # no display needed, for the host's own plots too
    source = find_source(Path(args.path), Path(args.run) if args.run else None, args.step)
    print(f"r3dm-epymarl roles: {source.config.get('name')} run {source.run_dir}, checkpoint "
          f"{source.step_dir} (t_env={source.t_env})", file=sys.stderr, flush=True)
    seed = args.seed if args.seed is not None else source.config.get("seed", 1)
    host_name, epymarl_path = rollout_host(source, args.host, args.epymarl)
    episode, test_stats = rollout(source, seed, host_name, epymarl_path)
    roles = analyse(episode["e"], episode["z"], source.config, seed)
    png, npz = output_paths(source, args.out)
    title = plot_title(source, roles["z"].shape[0], test_stats)
    save_arrays(npz, roles, source, seed)
    plot_roles(png, roles, int(source.config["role_clusters"]), title)
    print(f"role plot: {png}")
    print(f"role data: {npz} (z [T, N, R], e [T, N, E], labels [T, N], pca [T, N, 2]; "
          f"T={roles['z'].shape[0]}, N={roles['z'].shape[1]})")
    return 0


# --- the roll-out through the host ---------------------------------------------------------------
def rollout_host(source: Source, host: str | None, epymarl: str | None) -> tuple[str | None, str | None]:
    """(host name, EPyMARL checkout) for the roll-out: what the user says, else the run's own host."""
    experiment = source.run_info.get("experiment") or {}
    made_by_epymarl = experiment.get("name") == EPYMARL_EXPERIMENT
    if host is None:
        host = "epymarl" if (made_by_epymarl or epymarl) else "pymarlzooplus"
    if host == "epymarl" and epymarl is None:
        checkout = Path(experiment.get("base_dir") or "/nonexistent").parent
        if made_by_epymarl and (checkout / "src" / "main.py").is_file():
            epymarl = str(checkout)
        elif not os.environ.get("EPYMARL_PATH"):
            raise UserError(f"run {source.run_dir} was made by EPyMARL and its checkout ({checkout}) is gone: "
                            "pass --epymarl PATH (or set EPYMARL_PATH), or --host pymarlzooplus")
    return host, epymarl


def _sacred_value(value) -> str:
    """`value` as Sacred's `with key=value` parses it back (a literal when it parses as one, else a
    string). Strings go bare unless they would parse as something else: the hosts read some values
    (env_args.key names the results folder) straight from the command line."""
    if isinstance(value, str):
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return repr(value)


def config_names(source: Source) -> list[str]:
    config = source.config
    if not config.get("name") or not config.get("env"):
        raise UserError(f"run {source.run_dir} has no 'name' or 'env' in its config.json: cannot launch it again")
    return [f"--config={config['name']}", f"--env-config={config['env']}"]


def host_defaults(source: Source, host_name: str | None, epymarl_path: str | None) -> dict:
    """The config the host would run for the run's --config/--env-config with no `with` updates."""
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.launcher import merged_config, resolve_configs

    host = get_host(host_name, epymarl_path)
    argv, found = resolve_configs(host, config_names(source))
    return merged_config(host, argv, found)


def rollout_argv(source: Source, checkpoint_root: Path, seed: int, defaults: dict, episodes: int = 1) -> list[str]:
    """The run's own config as `episodes` evaluation episodes of the checkpoint in `checkpoint_root`: its config
    names, then as `with` updates every key of its config.json that differs from `defaults` (whatever
    set it: the command line, a preset, the Python API, a YAML edited since) plus its own updates."""
    flat_defaults = flatten(defaults)
    run_config = flatten({k: v for k, v in source.config.items() if k not in ("name", "env")})
    # Only keys under a top-level key the host declares: Sacred refuses others.
    updates = {k: v for k, v in run_config.items()
               if k.split(".")[0] in defaults and (k not in flat_defaults or flat_defaults[k] != v)}
    updates.update(flatten((source.run_info.get("meta") or {}).get("config_updates") or {}))
    updates = {k: v for k, v in updates.items() if k not in ROLLOUT_KEYS and k != "mongo_url"}
    rollout = {"checkpoint_path": str(checkpoint_root), "load_step": source.t_env, "evaluate": True,
               "test_nepisode": episodes, "save_model": False, "save_replay": False, "render": False,
               "runner": "episode", "batch_size_run": 1, "use_tensorboard": False, "use_wandb": False,
               "seed": seed}
    # Sacred declares `seed` itself; every other key here is in both hosts' default.yaml.
    updates.update({k: v for k, v in rollout.items() if k in defaults or k == "seed"})
    return [*config_names(source), "with", *(f"{k}={_sacred_value(v)}" for k, v in updates.items())]


class RoleRecorder:
    """Receives (t, e [bs, N, E], z [bs, N, R]) from the role controller at every acting step and keeps
    the first row of the batch (the episode runner runs one env), one list per episode (t == 0 opens one)."""

    def __init__(self):
        self.episodes: list[list[tuple]] = []

    def record(self, t, e, z, batch=None):
        if t == 0 or not self.episodes:
            self.episodes.append([])
        self.episodes[-1].append((e[0].float().cpu().numpy().copy(), z[0].float().cpu().numpy().copy()))

    def episode(self, index: int = 0) -> dict:
        import numpy as np

        steps = self.episodes[index]
        return {"e": np.stack([s[0] for s in steps]), "z": np.stack([s[1] for s in steps])}  # [T, N, .]


def _test_stats(base: Path) -> dict:
    """test_* means the evaluation run logged (return, battle_won, ...)."""
    stats = {}
    for path in base.glob("results/sacred/*/*/*/metrics.json"):
        for key, series in _read_json(path).items():
            if key.startswith("test_") and key.endswith("_mean") and series.get("values"):
                stats[key] = series["values"][-1]
    return stats


def rollout(source: Source, seed: int, host_name: str | None, epymarl_path: str | None) -> tuple[dict, dict]:
    """One greedy test episode of the checkpoint through the real host, recording the roles it acts with.
    Returns ({"e": [T, N, E], "z": [T, N, R]}, the evaluation run's test statistics)."""
    recorder = RoleRecorder()
    stats = evaluate_checkpoint(source, seed, host_name, epymarl_path, recorder)
    return recorder.episode(0), stats


def evaluate_checkpoint(source: Source, seed: int, host_name: str | None, epymarl_path: str | None,
                        recorder, episodes: int = 1) -> dict:
    """`episodes` greedy test episodes of the checkpoint through the real host (`evaluate=True`), the role
    controller reporting every acting step to `recorder`. Returns the evaluation run's test statistics."""
    import tempfile

    from r3dm_epymarl.controllers.role_mac import RoleMAC
    from r3dm_epymarl.launcher import launch

    with tempfile.TemporaryDirectory(prefix="r3dm-roles-") as tmp:
        # A folder with this one checkpoint: the host then loads exactly it (its load_step picks the
        # nearest, and 0 means "latest"), and EPyMARL tokens with spaces never reach the command line.
        root = Path(tmp) / "checkpoint"
        root.mkdir()
        (root / str(source.t_env)).symlink_to(source.step_dir, target_is_directory=True)
        base = Path(tmp) / "eval"  # the evaluation's own Sacred run: read for its return, then dropped
        mongo_url = os.environ.pop("MONGO_URL", None)  # an evaluation is not an experiment to log
        RoleMAC.role_recorder = recorder
        try:
            argv = rollout_argv(source, root, seed, host_defaults(source, host_name, epymarl_path), episodes)
            launch(argv, host_name=host_name, epymarl_path=epymarl_path, base_dir=str(base))
        finally:
            RoleMAC.role_recorder = None
            if mongo_url is not None:
                os.environ["MONGO_URL"] = mongo_url
        stats = _test_stats(base)
    if not recorder.episodes or len(recorder.episodes[0]) < 1:
        raise UserError("the host's evaluation ran no role-controller step (see its output above): check "
                        "that the checkpoint loads with this run's config")
    return stats


# --- roles, clusters, PCA -------------------------------------------------------------------------
def analyse(e, z, config: dict, seed: int) -> dict:
    """Cluster each step's agents as the learner does and project z on its first two principal axes.
    e [T, N, E], z [T, N, R] (numpy) -> arrays for the plot and the .npz."""
    import torch as th

    from r3dm_epymarl.roles.kmeans import batched_kmeans

    k = int(config["role_clusters"])
    T, N, _ = z.shape
    if k > N:
        raise UserError(f"role_clusters={k} but the episode has {N} agents")
    generator = th.Generator().manual_seed(int(seed))
    result = batched_kmeans(th.from_numpy(e), k, n_iter=int(config.get("kmeans_iters", 20)),
                            n_init=int(config.get("kmeans_n_init", 10)), generator=generator)
    labels = result.labels.numpy()  # [T, N], canonical per step: the cluster of agent 0 is 0, ...
    return {"e": e, "z": z, "labels": labels, "labels_tracked": track_clusters(labels, k),
            **pca_2d(z.reshape(T * N, -1), (T, N))}


def track_clusters(labels, k: int):
    """The same partitions, renumbered so that a cluster keeps its number (its colour) from one step to
    the next while it keeps its agents: per step, the assignment of this step's clusters to the
    previous step's numbers that maximises the number of agents that stay. labels [T, N] -> [T, N]."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    tracked = labels.copy()
    for t in range(1, len(labels)):
        overlap = np.zeros((k, k))  # [this step's cluster, previous step's number]
        np.add.at(overlap, (labels[t], tracked[t - 1]), 1)
        rows, cols = linear_sum_assignment(-overlap)
        mapping = np.empty(k, dtype=labels.dtype)
        mapping[rows] = cols
        tracked[t] = mapping[labels[t]]
    return tracked


def pca_2d(points, shape: tuple[int, int]) -> dict:
    """First two principal components of points [M, R] (centred SVD), returned as pca [T, N, 2], plus the
    explained-variance ratio of each component; fewer than 2 directions are padded with zeros."""
    import numpy as np

    centred = points.astype(np.float64) - points.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = min(2, vt.shape[0])
    proj = np.zeros((points.shape[0], 2))
    proj[:, :components] = centred @ vt[:components].T
    total = float((s ** 2).sum())
    ratio = np.zeros(2)
    if total > 0:
        ratio[:components] = (s[:components] ** 2) / total
    return {"pca": proj.reshape(*shape, 2), "pca_explained": ratio}


# --- output ---------------------------------------------------------------------------------------
def output_paths(source: Source, out: str | None) -> tuple[Path, Path]:
    stem = f"roles_{source.config.get('name')}_t{source.t_env}"
    if out is None:
        png = source.run_dir / "roles" / f"{stem}.png"
    else:
        out_path = Path(out).expanduser().resolve()
        png = out_path if out_path.suffix.lower() == ".png" else out_path / f"{stem}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    return png, png.with_suffix(".npz")


def plot_title(source: Source, steps: int, test_stats: dict) -> str:
    title = (f"{source.config.get('name')} on {source.map_name}: roles in one greedy test episode "
             f"(checkpoint t_env={source.t_env}, {steps} steps")
    if "test_return_mean" in test_stats:
        title += f", return {test_stats['test_return_mean']:.3g}"
    if "test_battle_won_mean" in test_stats:
        title += ", won" if test_stats["test_battle_won_mean"] > 0.5 else ", lost"
    return title + ")"


def save_arrays(path: Path, roles: dict, source: Source, seed: int) -> None:
    import numpy as np

    np.savez_compressed(
        path, z=roles["z"], e=roles["e"], labels=roles["labels"], labels_tracked=roles["labels_tracked"],
        pca=roles["pca"], pca_explained=roles["pca_explained"], t_env=source.t_env,
        role_clusters=int(source.config["role_clusters"]), seed=seed,
        algorithm=str(source.config.get("name")), map_name=source.map_name, run_dir=str(source.run_dir),
        checkpoint=str(source.step_dir))


MARKERS = "osD^vP*Xph<>"


def plot_roles(path: Path, roles: dict, k: int, title: str) -> None:
    """(a) PCA of z: each agent's track over time, points coloured by cluster; (b) cluster per agent
    and step. Clusters use the tracked numbering, so a colour follows a group of agents over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    pca, labels = roles["pca"], roles["labels_tracked"]  # [T, N, 2], [T, N]
    T, N = labels.shape
    palette = plt.get_cmap("tab10" if k <= 10 else "tab20")
    colours = [palette(i % palette.N) for i in range(k)]
    cmap, norm = ListedColormap(colours), BoundaryNorm(np.arange(k + 1) - 0.5, k)

    fig, (ax_pca, ax_map) = plt.subplots(1, 2, figsize=(14, 5.8), gridspec_kw={"width_ratios": [1, 1.25]})
    sizes = np.linspace(14, 54, T)  # later steps drawn larger: the direction of each track
    for agent in range(N):
        marker = MARKERS[agent % len(MARKERS)]
        x, y = pca[:, agent, 0], pca[:, agent, 1]
        ax_pca.plot(x, y, "-", color="0.55", lw=0.8, alpha=0.6, zorder=1)
        ax_pca.scatter(x, y, c=labels[:, agent], cmap=cmap, norm=norm, s=sizes, marker=marker,
                       edgecolors="black", linewidths=0.4, zorder=2)
        ax_pca.annotate(f"a{agent}", (x[0], y[0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    explained = roles["pca_explained"]
    ax_pca.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax_pca.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)")
    ax_pca.set_title("(a) role embeddings z, PCA; track per agent (aN = start, larger = later)", fontsize=10)
    agents = [Line2D([], [], ls="", marker=MARKERS[a % len(MARKERS)], color="0.3", label=f"agent {a}")
              for a in range(min(N, 12))]
    clusters = [Line2D([], [], ls="", marker="o", color=colours[c], label=f"cluster {c}") for c in range(k)]
    ax_pca.legend(handles=agents + clusters, fontsize=7, ncol=2 if N + k > 8 else 1, loc="best", framealpha=0.8)

    image = ax_map.imshow(labels.T, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm)
    ax_map.set_xlabel("step t of the episode")
    ax_map.set_ylabel("agent")
    ax_map.set_yticks(range(N))
    ax_map.set_title("(b) role cluster per agent and step (K-means over the agents' e at each step)", fontsize=10)
    bar = fig.colorbar(image, ax=ax_map, ticks=range(k))
    bar.set_label("role cluster")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

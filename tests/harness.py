"""One harness for the benchmarks and the tests: an algorithm's args from its YAML, a host EpisodeBatch
filled as the host's episode runner fills it, and a learner built through the host's registries.

It lives in tests/ (a package in the checkout, not in the installed plug-in) so that the parity tests,
the unit tests and `benchmarks/` (which put the repository root on sys.path) build their learners and
batches one way: what the benchmark times is what the parity test checks.

`shapes` is a dict: T (steps per episode; a batch holds T + 1 time slots), N (agents), obs, state,
actions (sizes); B (episodes) where a caller needs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch as th
import yaml


class Recorder:
    """A host logger that keeps every logged value: stats[key] -> [(t, value), ...]."""

    def __init__(self):
        self.stats = {}

    def log_stat(self, key, value, t, to_sacred=True):
        self.stats.setdefault(key, []).append((t, value))


# --- args ---------------------------------------------------------------------------------------
def _read(path) -> dict:
    return yaml.safe_load(path.read_text())


def algorithm_config(algorithm: str, host=None) -> dict:
    """The algorithm's YAML as a run gets it: with a host, the host's default.yaml updated with the algs
    YAML the launcher picks (find_config: the plug-in's for its algorithms, else the host's); without
    one, the plug-in's algs YAML alone (host-free unit tests)."""
    from r3dm_epymarl.launcher import find_config
    from r3dm_epymarl.paths import config_dir

    if host is None:
        path = config_dir() / "algs" / f"{algorithm}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown algorithm '{algorithm}': the plug-in has no algs/{algorithm}.yaml")
        return _read(path)
    path = find_config(host, "algs", algorithm)
    if path is None:
        raise ValueError(f"unknown algorithm '{algorithm}': neither {host.name} nor the plug-in has "
                         f"algs/{algorithm}.yaml")
    return {**_read(host.config_dir / "default.yaml"), **_read(path)}


def env_keys(shapes: dict) -> dict:
    """The sizes a host's run loop sets from the env's info."""
    return dict(n_agents=shapes["N"], n_actions=shapes["actions"], state_shape=shapes["state"],
                obs_shape=shapes["obs"])


def host_args(host, algorithm: str, shapes: dict, device: str = "cpu", **overrides) -> SimpleNamespace:
    """The args a host run of `algorithm` on an env of these shapes hands its learner (seed 1, a common
    reward), updated with `overrides`."""
    config = algorithm_config(algorithm, host)
    config.update(env_keys(shapes), seed=1, use_cuda=device == "cuda", device=device, common_reward=True)
    config.update(overrides)
    return SimpleNamespace(**config)


# --- batches ------------------------------------------------------------------------------------
@dataclass
class Episode:
    """One episode of n steps: state, obs, avail_actions and actions for its n + 1 slots (the last is the
    final observation's), reward for its n steps; `terminated`: it ended by termination (not time-out)."""
    state: th.Tensor  # [n+1, S]
    obs: th.Tensor  # [n+1, N, O]
    avail_actions: th.Tensor  # [n+1, N, A]
    actions: th.Tensor  # [n+1, N, 1]
    reward: th.Tensor  # [n, 1]
    terminated: bool

    @property
    def steps(self) -> int:
        return self.reward.shape[0]


def scheme_for(shapes: dict) -> tuple[dict, dict]:
    """(scheme, groups) of the host's run loop for an env of these shapes (before preprocessing)."""
    A = shapes["actions"]
    scheme = {
        "state": {"vshape": shapes["state"]}, "obs": {"vshape": shapes["obs"], "group": "agents"},
        "actions": {"vshape": (1,), "group": "agents", "dtype": th.long},
        "avail_actions": {"vshape": (A,), "group": "agents", "dtype": th.int},
        "reward": {"vshape": (1,)}, "terminated": {"vshape": (1,), "dtype": th.uint8},
    }
    return scheme, {"agents": shapes["N"]}


def episode_batch(host, shapes: dict, episodes: list[Episode], device: str = "cpu"):
    """A host EpisodeBatch of these episodes, written as the host's episode runner writes them (filled up
    to and including the final observation's slot; `terminated` at the last step only when the episode
    ended by termination; zeros beyond), truncated to its longest episode as the host does before an
    update (`max_t_filled`)."""
    EpisodeBatch = host.module("components.episode_buffer").EpisodeBatch
    OneHot = host.module("components.transforms").OneHot
    scheme, groups = scheme_for(shapes)
    preprocess = {"actions": ("actions_onehot", [OneHot(out_dim=shapes["actions"])])}
    batch = EpisodeBatch(scheme, groups, len(episodes), shapes["T"] + 1, preprocess=preprocess, device=device)
    for b, episode in enumerate(episodes):
        n = episode.steps
        batch.update({"state": episode.state, "obs": episode.obs, "avail_actions": episode.avail_actions,
                      "actions": episode.actions}, bs=b, ts=slice(0, n + 1))
        done = th.zeros(n, 1, dtype=th.uint8)
        done[-1] = int(episode.terminated)  # a time-out is not a termination (the runner's `terminated != episode_limit`)
        batch.update({"reward": episode.reward, "terminated": done}, bs=b, ts=slice(0, n))
    return batch[:, :int(batch.max_t_filled())]


def random_episodes(shapes: dict, lengths: list[int], terminated: list[bool], seed: int = 0) -> list[Episode]:
    """Episodes of these lengths of random data: uniform state and obs, about 70% of the actions
    available (the first always), an available action taken, normal rewards."""
    g = th.Generator().manual_seed(seed)
    B, T1, N, A = len(lengths), shapes["T"] + 1, shapes["N"], shapes["actions"]
    avail = (th.rand(B, T1, N, A, generator=g) > 0.3).int()
    avail[..., 0] = 1
    actions = th.multinomial(avail.float().reshape(-1, A), 1, generator=g).reshape(B, T1, N, 1)
    state, obs = th.rand(B, T1, shapes["state"], generator=g), th.rand(B, T1, N, shapes["obs"], generator=g)
    reward = th.randn(B, T1, 1, generator=g)
    return [Episode(state[b, :n + 1], obs[b, :n + 1], avail[b, :n + 1], actions[b, :n + 1], reward[b, :n], ended)
            for b, (n, ended) in enumerate(zip(lengths, terminated))]


def host_batch(host, shapes: dict, lengths: list[int], terminated: list[bool], seed: int = 0, device: str = "cpu"):
    """`episode_batch` of `random_episodes`: len(lengths) episodes with real padding."""
    return episode_batch(host, shapes, random_episodes(shapes, lengths, terminated, seed), device)


# --- learners -----------------------------------------------------------------------------------
def build_learner(host, args, batch, logger=None, seed: int | None = 0):
    """args.mac and args.learner from the host's registries (the plug-in's where it registered them),
    as the host's run loop builds them; initial weights from `seed` (None: the current RNG); moved to
    the GPU when args.use_cuda."""
    if seed is not None:
        th.manual_seed(seed)
    mac = host.registry("controllers")[args.mac](batch.scheme, {"agents": args.n_agents}, args)
    learner = host.registry("learners")[args.learner](mac, batch.scheme, logger or Recorder(), args)
    if args.use_cuda:
        learner.cuda()
    return learner

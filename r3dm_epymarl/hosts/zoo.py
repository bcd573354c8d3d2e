"""PyMARLzoo+ (PyPI `pymarlzooplus`): its registries plus the small adapter for its interface.

Differences bridged here (measured against PyMARLzoo+ 1.1.0): `mac.select_actions` returns `(actions, extras)`;
Sacred results go next to the calling script, so the launcher points them at a results dir; env
factories get only `**env_args` and envs must have the SMAC-style API (`_smac_style`).
"""
from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

from r3dm_epymarl.hosts.base import ZOO, Host


class ZooHost(Host):
    name = ZOO
    prefix = "pymarlzooplus."

    @property
    def config_dir(self) -> Path:
        # Found without importing the package (which would pull in sacred, torch and the envs).
        spec = importlib.util.find_spec("pymarlzooplus")
        return Path(next(iter(spec.submodule_search_locations))).resolve() / "config"

    def adapt(self, kind, obj):
        obj = super().adapt(kind, obj)
        if kind == "envs":
            return _smac_style(obj)
        return _returns_extras(obj) if kind == "controllers" else obj

    def on_registered(self, kind, key, obj):
        if kind == "envs":
            _list_in_availability(self.module("envs"), key)

    def run(self, argv, base_dir=None):
        import pymarlzooplus.main as zoo_main

        from r3dm_epymarl.hosts.interventions import require

        require("zoo-results-path")
        # PyMARLzoo+ writes results/ beside the outermost script (for `python -m` that is runpy's
        # frozen module path); send them where the user asked, the current directory by default.
        root = os.path.abspath(base_dir or os.getcwd())
        zoo_main.get_caller_path = lambda: root
        zoo_main.pymarlzooplus(["pymarlzooplus/main.py", *argv])


def _returns_extras(mac_cls):
    """The MAC's `select_actions` in PyMARLzoo+'s shape: `(actions, extras_dict)`."""

    class ZooMAC(mac_cls):
        def select_actions(self, *args, **kwargs):
            return super().select_actions(*args, **kwargs), {}

    ZooMAC.__name__ = ZooMAC.__qualname__ = mac_cls.__name__
    ZooMAC.__module__ = mac_cls.__module__
    return ZooMAC


def _list_in_availability(zoo_envs, key: str) -> None:
    """Name a plug-in env key in PyMARLzoo+'s `REGISTRY_availability` as well.

    Its runners call `check_env_installation(args.env, env_REGISTRY, logger)`, which passes for any key
    in `envs.REGISTRY` (where registration puts ours); the availability list only feeds the message it
    prints for a key that is missing, which should then list the plug-in's envs among the choices.
    `utils.env_utils` imported that list object itself, so appending to it reaches both modules.
    """
    available = getattr(zoo_envs, "REGISTRY_availability", None)
    if isinstance(available, list) and key not in available:
        available.append(key)


def _smac_style(env_fn):
    """An env factory in PyMARLzoo+'s shape: called with `**env_args` only (common reward), returning
    an env with the SMAC-style API (`_SMACStyleEnv`) around the plug-in's EPyMARL v2 env."""

    def zoo_env_fn(**env_args):
        env_args.setdefault("common_reward", True)
        env_args.setdefault("reward_scalarisation", "sum")
        return _SMACStyleEnv(env_fn(**env_args))

    zoo_env_fn.__name__ = zoo_env_fn.__qualname__ = getattr(env_fn, "__name__", "env_fn")
    zoo_env_fn.__module__ = getattr(env_fn, "__module__", __name__)
    zoo_env_fn.__wrapped__ = env_fn
    return zoo_env_fn


class _SMACStyleEnv:
    """The SMAC-style env API PyMARLzoo+'s runners call, over an EPyMARL v2 (gymnasium-style) env:
    `reset() -> (obs, state)`, `step(actions) -> (reward, terminated, info)` with time-outs reported
    as `terminated=True, info["episode_limit"]=True` (the runner stores them as non-terminal), plus
    `get_print_info`, `get_info`, `get_n_agents`, `sample_actions`. Every other getter is the env's."""

    def __init__(self, env):
        self.env = env
        self.n_agents = env.n_agents
        self.episode_limit = env.episode_limit
        self._info = {}
        self._rng = random.Random(getattr(env, "_seed", None))

    def reset(self, seed=None):
        self.env.reset(seed=seed)
        self._info = {}
        return self.env.get_obs(), self.env.get_state()

    def step(self, actions):
        _, reward, terminated, truncated, info = self.env.step(actions)
        self._info = info
        return reward, bool(terminated or truncated), info

    def get_print_info(self):
        return None  # nothing for the runner to print

    def get_info(self):
        return self._info

    def get_n_agents(self):
        return self.n_agents

    def sample_actions(self):
        """One random available action per agent."""
        return [self._rng.choice([a for a, ok in enumerate(avail) if ok])
                for avail in self.env.get_avail_actions()]

    def get_stats(self):
        return self.env.get_stats()

    def __getattr__(self, name):
        # get_obs, get_state, get_avail_actions, get_env_info, render, close, save_replay, seed, ...
        if name.startswith("__") or name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

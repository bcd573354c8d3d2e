"""What the scenario of a run implies, checked before the host starts (and before Sacred prints its
config): the SMAX map exists, the gymma key is a registered gymnasium env, and there are no more
role clusters than agents. The host would find each of these only once it builds the env or the
learner, inside its Sacred run (a FAILED run left behind, a traceback for the gymma key).
"""
from __future__ import annotations

import importlib

from r3dm_epymarl.errors import ConfigError, UserError

# Allied units per SMAX map (jaxmarl 0.2.0's map_name_to_scenario; a unit test checks the table).
SMAX_AGENTS: dict[str, int] = {
    "3m": 3, "8m": 8, "25m": 25, "2s3z": 5, "3s5z": 8, "5m_vs_6m": 5, "10m_vs_11m": 10, "27m_vs_30m": 27,
    "3s5z_vs_3s6z": 8, "3s_vs_5z": 3, "6h_vs_8z": 6, "smacv2_5_units": 5, "smacv2_10_units": 10,
    "smacv2_20_units": 20,
}


def gymnasium_spec(key: str):
    """The gymnasium EnvSpec of a gymma `env_args.key` ("module:Env-vN" imports the module first, as
    gymnasium.make does); UserError in one line when the module or the env does not exist."""
    import gymnasium

    module, sep, env_id = key.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(f"env_args.key '{key}': cannot import {module!r} ({exc}); install it "
                            f"(e.g. pip install 'r3dm-epymarl[lbf]' for lbforaging)") from None
    try:
        return gymnasium.spec(env_id)
    except gymnasium.error.Error as exc:
        raise UserError(f"env_args.key '{key}': gymnasium has no such env ({exc}); "
                        "e.g. env_args.key=lbforaging:Foraging-8x8-2p-3f-v3") from None


def zoo_bundled(key: str) -> bool:
    """A gymma key PyMARLzoo+ maps to an env it bundles (its gym_wrapper.py: mpe, rware v1, lbforaging
    v2), not one gymnasium knows under that name: the host checks it itself."""
    return "mpe" in key or ("rware" in key and "v1" in key) or ("lbforaging" in key and "v2" in key)


def n_agents(config: dict, host_name: str | None = None) -> int | None:
    """The number of agents the run's env will have, where it is known without building the env."""
    from r3dm_epymarl.hosts import ZOO

    env, env_args = config.get("env"), config.get("env_args") or {}
    if env == "smax":
        from r3dm_epymarl.envs.smax import check_map_name

        return SMAX_AGENTS.get(check_map_name(env_args.get("map_name")))
    key = env_args.get("key")
    # Only "module:Env-vN" keys: an id without a module may be one the host registers when its envs
    # are imported (EPyMARL's PettingZoo and VMAS wrappers), which has not happened yet.
    if env == "gymma" and isinstance(key, str) and ":" in key and not (host_name == ZOO and zoo_bundled(key)):
        kwargs = gymnasium_spec(key).kwargs or {}
        count = kwargs.get("players", kwargs.get("n_agents"))  # LBF: players
        return count if isinstance(count, int) else None
    return None


def episode_limit(config: dict) -> int | None:
    """The most steps an episode of the run's env can take, where it is known without building the env:
    SMAX's per-map limit or `env_args.time_limit` (SMAX, gymma)."""
    env, env_args = config.get("env"), config.get("env_args") or {}
    limit = env_args.get("time_limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return limit
    if env == "smax":
        from r3dm_epymarl.envs.smax import EPISODE_LIMITS

        return EPISODE_LIMITS.get(env_args.get("map_name"))
    return None


def check_scenario(config: dict, host_name: str | None = None) -> None:
    count = n_agents(config, host_name)
    clusters = config.get("role_clusters")
    if count is not None and isinstance(clusters, int) and clusters > count:
        raise ConfigError(f"config key 'role_clusters' is {clusters} but the env has only {count} agents; "
                          f"set role_clusters <= {count}")
    horizon, limit = config.get("wm_horizon"), episode_limit(config)
    uses_world_model = "world_model" in (config.get("intrinsic_terms") or [])
    if uses_world_model and isinstance(horizon, int) and limit is not None and horizon > limit:
        # Each start's imagination stops at its episode's end (K_t = min(k, steps left)): a k past the
        # longest possible episode imagines nothing more, at the cost of every step it would have.
        raise ConfigError(f"config key 'wm_horizon' is {horizon} but an episode of this env lasts at most "
                          f"{limit} steps; set wm_horizon <= {limit}")

"""SMAX (jaxmarl's JAX re-implementation of SMAC battles) as an EPyMARL v2 multi-agent env.

`SMAXEnv(map_name="3m")` runs jaxmarl's `HeuristicEnemySMAX` (allies controlled by the learner, enemies
by jaxmarl's scripted heuristic) behind the upstream EPyMARL (gymnasium-style) env interface:
`reset(seed=None, options=None) -> (obs, info)` and `step(actions) -> (obs, reward, terminated,
truncated, info)`, plus the SMAC getters. PyMARLzoo+ gets its SMAC-style API from the adapter in
`r3dm_epymarl.hosts.zoo`. No StarCraft II is needed. Install: `pip install jaxmarl==0.2.0`.

How the SMAX pitfalls listed in HOSTS.md are handled:
 1. SMAX runs one step past `max_steps`: SMAX's own limit is set far away (`_SMAX_MAX_STEPS`) and
    this wrapper counts steps itself. Reaching `episode_limit` without a win or loss is a time-out:
    `truncated=True, terminated=False, info["episode_limit"]=True`. A battle that ends (all allies
    or all enemies dead, even on the last allowed step) is `terminated=True`, `episode_limit=False`.
 2. The state returned by reset has weakly typed leaves (`step`, the heuristic's target index), which
    made the second step compile again: every state leaving a jitted function is re-typed strongly.
 3. `JAX_ENABLE_X64` breaks SMAX: the env refuses to start with it on (ConfigError).
 4. `step` auto-resets and loses the last state and win flag: `step_env` is used; the host resets.
 5. PRNG keys: the key lives on the device and is split inside the jitted reset/step (no Python-side
    splitting per step).
 6. The world state is unnormalised: see `State vector` below.
 7. The `jax` logger is set to WARNING (EPyMARL sets the root logger to DEBUG).
    Also: importing jaxmarl prints two lines and resets sys.stdout/sys.stderr to the process's
    original streams (its MABrax module does so), which would break the host's output capture; the
    import is done with stdout silenced and both streams restored afterwards.
 8. JAX is imported lazily, when the first env is built (never when this module is imported), so a
    parallel runner can fork its workers before any JAX runtime exists; the CPU platform is forced
    unless the user set `JAX_PLATFORMS`.
 9. Random policies never win: tests check that `battle_won` is reported, not its value.
10. Unit types of extra enemies are always marines in jaxmarl's SMACv2-style generation when enemies
    outnumber allies: only the named maps below are accepted (their smacv2_* maps are symmetric, the
    asymmetric maps list every unit type explicitly), and scenario-changing kwargs are refused.

Threads: XLA's CPU backend gets `--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`
(unless XLA_FLAGS already sets either). One env step is a few hundred microseconds of tiny array ops:
a multi-threaded Eigen pool only adds hand-off latency there and competes with torch (the learner)
and with the other workers of a parallel runner, each of which runs its own env in its own process.
These settings take effect only if this module is the first to import JAX in the process.

Compilation: reset and step are jitted once per process and map (shared by every SMAXEnv instance
with the same map and SMAX options). JAX's persistent compilation cache goes to
`$XDG_CACHE_HOME/r3dm_epymarl/jax` (default `~/.cache/...`) unless JAX_COMPILATION_CACHE_DIR is set,
which cuts the ~3 s first compile of later processes.

Observations: jaxmarl's per-agent unit-list observation (float32, already within [-1, 1]).

State vector (float32, length 12 * (allies + enemies), every entry in [0, 1]): SMAX's world state with
  - per unit (allies then enemies) 10 features: health fraction; x / map width; y / map height;
    weapon cooldown / that unit type's cooldown, clipped to [0, 1] (SMAX lets it run negative once
    the weapon is ready); one-hot unit type (6 bits). Dead units are all zeros (as in SMAX);
  - the team of every unit (0 ally, 1 enemy);
  - the unit type of every unit as type index / 5 (SMAX gives raw integers 0-5).

Reward: SMAX's team reward (enemy health lost / n_enemies per step, +1 for a win: at most 2 per
episode) times `reward_scale` (default 10, so an episode is worth at most 20 as in SMAC).

Episode limits (SMAC's per-map `limit`, from smac/env/starcraft2/maps/smac_maps.py; the smacv2_* maps
use SMACv2's 200 for its 10gen_* maps): see `EPISODE_LIMITS`; `time_limit` overrides them.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys

import numpy as np

from r3dm_epymarl.errors import ConfigError, UserError, for_sacred

INSTALL_HINT = "pip install jaxmarl==0.2.0"

# SMAC's episode limit per map (smac_maps.py "limit"); smacv2_* follow SMACv2's 10gen_* maps (200).
EPISODE_LIMITS: dict[str, int] = {
    "3m": 60,
    "8m": 120,
    "25m": 150,
    "2s3z": 120,
    "3s5z": 150,
    "5m_vs_6m": 70,
    "10m_vs_11m": 150,
    "27m_vs_30m": 180,
    "3s5z_vs_3s6z": 170,
    "3s_vs_5z": 250,
    "6h_vs_8z": 150,
    "smacv2_5_units": 200,
    "smacv2_10_units": 200,
    "smacv2_20_units": 200,
}
MAP_NAMES = tuple(EPISODE_LIMITS)

# SMAX options that leave shapes and scenarios alone; anything else in env_args is refused.
SMAX_OPTIONS = ("enemy_shoots", "attack_mode", "see_enemy_actions", "walls_cause_death", "won_battle_bonus")

_SMAX_MAX_STEPS = 1_000_000  # SMAX's own time limit, never reached: this wrapper counts steps itself
_XLA_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def check_map_name(map_name) -> str:
    if map_name not in EPISODE_LIMITS:
        raise ConfigError(f"env_args.map_name '{map_name}' is not a SMAX map: use one of "
                          f"{', '.join(MAP_NAMES)} (SMAX has no corridor or MMM2)")
    return map_name


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "r3dm_epymarl", "jax")


def _import_jax():
    """Import JAX and jaxmarl for SMAX: CPU platform, one XLA thread, quiet logger, persistent cache."""
    if _truthy(os.environ.get("JAX_ENABLE_X64")):
        raise ConfigError("SMAX does not work with JAX_ENABLE_X64 set: unset it (or set it to 0)")
    if "jax" not in sys.modules:
        # Only effective before JAX starts; a process that imported JAX earlier keeps its own setup.
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags and "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {_XLA_THREAD_FLAGS}".strip()
    logging.getLogger("jax").setLevel(logging.WARNING)
    # Importing jaxmarl prints to stdout, and its optional MABrax module sets sys.stdout and
    # sys.stderr to sys.__stdout__/__stderr__, which would undo any capture the host (Sacred, pytest)
    # has installed. The prints come after that reset, so sys.__stdout__ points at the sink too while
    # importing; afterwards all three streams are put back as they were.
    streams = sys.stdout, sys.stderr, sys.__stdout__
    try:
        sys.stdout = sys.__stdout__ = io.StringIO()
        import jax
        import jaxmarl
        from jaxmarl.environments.smax import map_name_to_scenario
    except ImportError as e:
        raise UserError(f"the SMAX env needs jaxmarl (JAX on CPU): {INSTALL_HINT} ({e})") from e
    finally:
        sys.stdout, sys.stderr, sys.__stdout__ = streams
    if jax.config.jax_enable_x64:
        raise ConfigError("SMAX does not work with jax_enable_x64 on: turn it off for this process")
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR") and not jax.config.jax_compilation_cache_dir:
        with contextlib.suppress(Exception):  # a cache is a speed-up only: never fail over it
            path = _cache_dir()
            os.makedirs(path, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", path)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return jax, jaxmarl, map_name_to_scenario


class _Kernel:
    """One map's SMAX env with its jitted reset and step; built once per process and map.

    `reset(key) -> (key, state, packed)` and `step(key, state, actions) -> (key, state, packed)`, where
    `packed` is one float32 vector [obs (n*obs) | state | avail (n*actions) | reward, ended, won,
    dead allies, dead enemies, actions valid]: a single device-to-host copy per step. Whether the
    actions were available is checked inside the step (it costs nothing there, ~15 us in numpy).
    """

    def __init__(self, map_name: str, options: tuple):
        jax, jaxmarl, map_name_to_scenario = _import_jax()
        jnp = jax.numpy
        self.jax = jax
        try:
            env = jaxmarl.make("HeuristicEnemySMAX", scenario=map_name_to_scenario(map_name),
                               max_steps=_SMAX_MAX_STEPS, **dict(options))
        except TypeError as e:
            raise ConfigError(f"SMAX rejected an env_args option: {e}") from e
        self.env = env
        self.n_agents = env.num_agents
        self.n_enemies = env.num_enemies
        n_units = self.n_agents + self.n_enemies
        self.n_actions = env.action_spaces[env.agents[0]].n
        self.obs_size = env.observation_spaces[env.agents[0]].shape[0]
        self.state_size = env.state_size
        n_feat = len(env.own_features)
        n_types = len(env.unit_type_names)
        if self.state_size != (n_feat + 2) * n_units:
            raise UserError(f"unexpected SMAX world-state layout (size {self.state_size}): this env is "
                            f"written for jaxmarl 0.2.0: {INSTALL_HINT}")
        agents = tuple(env.agents)
        na = self.n_agents
        map_size = jnp.array([env.map_width, env.map_height], dtype=jnp.float32)
        type_cooldowns = jnp.asarray(env.unit_type_weapon_cooldowns, dtype=jnp.float32)
        o_end = na * self.obs_size
        s_end = o_end + self.state_size
        a_end = s_end + na * self.n_actions
        self.slices = (o_end, s_end, a_end)

        def strong(tree):  # drop weak types so that every call sees the same input signature
            return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), tree)

        def world_state(ws):
            units = ws[: n_feat * n_units].reshape(n_units, n_feat)
            teams = ws[n_feat * n_units: (n_feat + 1) * n_units]
            types = ws[(n_feat + 1) * n_units:]
            cooldown_scale = type_cooldowns[types.astype(jnp.int32)]
            units = units.at[:, 1:3].set(units[:, 1:3] / map_size)
            units = units.at[:, 3].set(jnp.clip(units[:, 3] / cooldown_scale, 0.0, 1.0))
            return jnp.concatenate([units.reshape(-1), teams, types / (n_types - 1)])

        def pack(obs, smax_state, reward, valid):
            alive = smax_state.state.unit_alive
            avail = env.get_avail_actions(smax_state)
            allies_alive = jnp.sum(alive[:na])
            enemies_alive = jnp.sum(alive[na:])
            allies_dead = allies_alive == 0
            enemies_dead = enemies_alive == 0
            tail = jnp.stack([
                reward,
                (allies_dead | enemies_dead).astype(jnp.float32),
                (enemies_dead & ~allies_dead).astype(jnp.float32),
                (na - allies_alive).astype(jnp.float32),
                (self.n_enemies - enemies_alive).astype(jnp.float32),
                valid.astype(jnp.float32),
            ]).astype(jnp.float32)
            return jnp.concatenate([
                jnp.stack([obs[a] for a in agents]).astype(jnp.float32).reshape(-1),
                world_state(obs["world_state"]).astype(jnp.float32),
                jnp.stack([avail[a] for a in agents]).astype(jnp.float32).reshape(-1),
                tail,
            ])

        def reset(key):
            key, sub = jax.random.split(key)
            obs, smax_state = env.reset(sub)
            smax_state = strong(smax_state)
            return key, smax_state, pack(obs, smax_state, jnp.float32(0.0), jnp.bool_(True))

        def step(key, smax_state, actions):
            avail = env.get_avail_actions(smax_state)
            mask = jnp.stack([avail[a] for a in agents])
            in_range = (actions >= 0) & (actions < self.n_actions)
            chosen = jnp.take_along_axis(mask, jnp.clip(actions, 0, self.n_actions - 1)[:, None], axis=1)
            valid = jnp.all(in_range & (chosen[:, 0] > 0))
            key, sub = jax.random.split(key)
            obs, smax_state, rewards, _, _ = env.step_env(
                sub, smax_state, {a: actions[i] for i, a in enumerate(agents)})
            smax_state = strong(smax_state)
            return key, smax_state, pack(obs, smax_state, rewards[agents[0]], valid)

        self.reset = jax.jit(reset)
        self.step = jax.jit(step)

    def key(self, seed: int):
        return self.jax.random.PRNGKey(seed % (2 ** 32))


_KERNELS: dict[tuple, _Kernel] = {}


def _kernel(map_name: str, options: dict) -> _Kernel:
    key = (map_name, tuple(sorted(options.items())))
    if key not in _KERNELS:
        _KERNELS[key] = _Kernel(map_name, key[1])
    return _KERNELS[key]


def _random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


class SMAXEnv:
    """A SMAX battle behind EPyMARL's MultiAgentEnv interface (common reward only)."""

    # Off by default. `r3dm-epymarl probe` sets an iterator of ints here: each reset() without a seed then
    # starts from the next one, so every checkpoint it compares plays the same episodes (the key chain
    # otherwise runs on through the previous episodes' steps, whose number depends on the policy).
    episode_seeds = None

    def __init__(self, map_name="3m", seed=None, time_limit=None, reward_scale=10.0, common_reward=True,
                 reward_scalarisation="sum", **kwargs):
        check_map_name(map_name)
        if not common_reward:
            raise ConfigError("SMAX supports only a common (team) reward: set common_reward=True "
                              "(SMAX gives every ally the same reward)")
        if reward_scalarisation not in ("sum", "mean"):
            raise ConfigError(f"reward_scalarisation '{reward_scalarisation}' is not one of sum, mean")
        unknown = sorted(set(kwargs) - set(SMAX_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown SMAX env_args {', '.join(unknown)}: the SMAX env takes map_name, seed, "
                              f"time_limit, reward_scale and the SMAX options {', '.join(SMAX_OPTIONS)}")
        if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, int)
                                       or time_limit < 1):
            raise ConfigError(f"env_args.time_limit must be a positive integer or null, not {time_limit!r}")
        if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)):
            raise ConfigError(f"env_args.reward_scale must be a number, not {reward_scale!r}")
        self.map_name = map_name
        self.episode_limit = int(time_limit) if time_limit is not None else EPISODE_LIMITS[map_name]
        self.reward_scale = float(reward_scale)
        self._k = _kernel(map_name, kwargs)
        self.n_agents = self._k.n_agents
        self.n_enemies = self._k.n_enemies
        self.n_actions = self._k.n_actions
        self._seed = _random_seed() if seed is None else int(seed)
        self._key = self._k.key(self._seed)
        self._stats = {"battles_won": 0, "battles_game": 0, "battles_draw": 0, "timeouts": 0, "restarts": 0}
        self._smax_state = None
        self._t = 0
        self._over = True
        self._info = {}

    # --- episode ------------------------------------------------------------------------------------

    def reset(self, seed=None, options=None):
        """Start an episode; `seed` re-seeds the env's key chain. Returns (obs list, info)."""
        if seed is None and SMAXEnv.episode_seeds is not None:
            seed = next(SMAXEnv.episode_seeds, None)
        if seed is not None:
            self._seed = int(seed)
            self._key = self._k.key(self._seed)
        self._key, self._smax_state, packed = self._k.reset(self._key)
        self._unpack(packed)
        self._t = 0
        self._over = False
        self._info = {}
        return self.get_obs(), {}

    def step(self, actions):
        """Apply one action per agent. Returns (obs list, reward, terminated, truncated, info)."""
        if self._over:
            raise RuntimeError("SMAXEnv.step() called after the episode ended: call reset() first")
        actions = self._as_actions(actions)
        self._key, self._smax_state, packed = self._k.step(self._key, self._smax_state, actions)
        reward, ended, won, dead_allies, dead_enemies, valid = self._unpack(packed)
        if valid < 0.5:
            self._over = True
            raise ValueError(f"unavailable actions {actions.tolist()} (choose from get_avail_actions()): "
                             "the episode is void, call reset()")
        self._t += 1
        terminated = ended > 0.5
        truncated = not terminated and self._t >= self.episode_limit
        won = bool(won > 0.5)
        info = {"battle_won": won, "dead_allies": int(dead_allies), "dead_enemies": int(dead_enemies),
                "episode_limit": truncated}
        if terminated or truncated:
            self._over = True
            self._stats["battles_game"] += 1
            self._stats["battles_won"] += won
            self._stats["battles_draw"] += not won and (truncated or dead_enemies == self.n_enemies)
            self._stats["timeouts"] += truncated
        self._info = info
        return self.get_obs(), float(reward) * self.reward_scale, terminated, truncated, info

    def _as_actions(self, actions) -> np.ndarray:
        if hasattr(actions, "detach"):  # a torch tensor from the host's controller
            actions = actions.detach().cpu().numpy()
        actions = np.asarray(actions, dtype=np.int32).reshape(-1)
        if actions.shape[0] != self.n_agents:
            raise ValueError(f"expected {self.n_agents} actions (one per agent), got {actions.shape[0]}")
        return actions

    def _unpack(self, packed):
        flat = np.array(packed)  # one device-to-host copy; writable for the host's buffers
        o_end, s_end, a_end = self._k.slices
        self._obs = flat[:o_end].reshape(self.n_agents, -1)
        self._state = flat[o_end:s_end]
        self._avail = flat[s_end:a_end].reshape(self.n_agents, self.n_actions).astype(np.int64)
        self._avail_list = None
        return flat[a_end:]

    # --- getters ------------------------------------------------------------------------------------

    def get_obs(self):
        return list(self._obs)

    def get_obs_agent(self, agent_id):
        return self._obs[agent_id]

    def get_obs_size(self):
        return self._k.obs_size

    def get_state(self):
        return self._state

    def get_state_size(self):
        return self._k.state_size

    def get_avail_actions(self):
        if self._avail_list is None:
            self._avail_list = self._avail.tolist()
        return self._avail_list

    def get_avail_agent_actions(self, agent_id):
        return self.get_avail_actions()[agent_id]

    def get_total_actions(self):
        return self.n_actions

    def get_env_info(self):
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "n_actions": self.get_total_actions(), "n_agents": self.n_agents,
                "episode_limit": self.episode_limit}

    def get_stats(self):
        stats = dict(self._stats)
        stats["win_rate"] = stats["battles_won"] / max(stats["battles_game"], 1)
        return stats

    # --- the rest of the interface ----------------------------------------------------------------

    def render(self):
        """No live renderer: jaxmarl's SMAXVisualizer draws recorded state sequences offline."""
        return None

    def close(self):
        self._smax_state = None
        self._over = True

    def seed(self, seed=None):
        """Re-seed the env (from the next reset on) when given a seed; return the current seed."""
        if seed is not None:
            self._seed = int(seed)
            self._key = self._k.key(self._seed)
        return self._seed

    def get_rng_state(self) -> dict:
        """The key chain and counters, for an exact resume (episodes end before a checkpoint)."""
        return {"seed": self._seed, "key": np.asarray(self._key), "stats": dict(self._stats)}

    def set_rng_state(self, state: dict) -> None:
        self._seed = int(state["seed"])
        self._key = self._k.jax.numpy.asarray(state["key"])
        self._stats.update(state["stats"])

    def save_replay(self):
        """SMAX writes no StarCraft II replays; nothing to save."""
        return None


def smax_fn(**kwargs) -> SMAXEnv:
    """EPyMARL env-registry factory: `REGISTRY["smax"](**env_args, common_reward=..., reward_scalarisation=...)`.

    Runs inside the host's Sacred experiment: a UserError (bad map, missing jaxmarl) reaches the user
    as its one-line message, without a traceback."""
    try:
        return SMAXEnv(**kwargs)
    except UserError as e:
        raise for_sacred(e) from None

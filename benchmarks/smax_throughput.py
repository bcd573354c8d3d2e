"""Env steps per second of the SMAX wrapper against the raw jitted SMAX loop it is built on.

    python benchmarks/smax_throughput.py                       # 3s5z_vs_3s6z
    python benchmarks/smax_throughput.py --map 3m --steps 5000

wrapper: `SMAXEnv` driven the way a host's episode runner drives it: pick random *available* actions
    (numpy, from `get_avail_actions()`), `step`, then `get_obs`, `get_state`, `get_avail_actions`;
    `reset` when the episode ends (win, loss or time-out).
raw:     one jitted function around the same `HeuristicEnemySMAX.step_env` that samples random
    available actions and resets on episode end inside JAX and returns step_env's outputs (obs,
    world state, team reward, done) and the next avail masks as five arrays, called once per step
    from Python and waited for, but never copied to the host: the floor for stepping one SMAX env
    at a time from Python.
Both run after warm-up (compilation excluded), in short rounds that alternate between the two; the
best round of each is reported (on a shared machine, other processes only ever slow a round down),
with the median round, and the wrapper's overhead relative to the raw loop.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--map", default="3s5z_vs_3s6z")
    p.add_argument("--steps", type=int, default=500, help="env steps per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def wrapper_loop(env, steps, rng):
    env.reset()
    t0 = time.perf_counter()
    for _ in range(steps):
        avail = np.asarray(env.get_avail_actions())
        actions = (avail * rng.random(avail.shape)).argmax(axis=1)  # uniform over available actions
        _, _, terminated, truncated, _ = env.step(actions)
        env.get_obs(), env.get_state(), env.get_avail_actions()
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - t0


def make_raw(kernel, episode_limit):
    jax = kernel.jax
    jnp = jax.numpy
    env = kernel.env
    agents = tuple(env.agents)

    def strong(tree):
        return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), tree)

    def reset(key):
        return strong(env.reset(key)[1])

    def step(key, state):
        key, k_act, k_step, k_reset = jax.random.split(key, 4)
        avail = env.get_avail_actions(state)
        mask = jnp.stack([avail[a] for a in agents])
        actions = jax.random.categorical(k_act, jnp.where(mask > 0, 0.0, -jnp.inf))
        obs, state, rewards, dones, _ = env.step_env(k_step, state, {a: actions[i] for i, a in enumerate(agents)})
        state = strong(state)
        done = dones["__all__"] | (state.state.step >= episode_limit)
        next_avail = env.get_avail_actions(state)  # what the next action choice needs
        state = jax.lax.cond(done, lambda: reset(k_reset), lambda: state)
        # Returned (not copied to the host) so that XLA cannot drop the observation work; stacked,
        # as any consumer would, since every separate output buffer costs dispatch time.
        return key, state, (jnp.stack([obs[a] for a in agents]), obs["world_state"], rewards[agents[0]],
                            done, jnp.stack([next_avail[a] for a in agents]))

    return jax.jit(reset), jax.jit(step)


def raw_loop(kernel, reset, step, steps, seed):
    key = kernel.key(seed)
    state = reset(key)
    jax = kernel.jax
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        key, state, out = step(key, state)
        jax.block_until_ready((state, out))
    return time.perf_counter() - t0


def main():
    opts = parse()
    from r3dm_epymarl.envs.smax import SMAXEnv

    t0 = time.perf_counter()
    env = SMAXEnv(map_name=opts.map, seed=opts.seed)
    t_import = time.perf_counter() - t0
    rng = np.random.default_rng(opts.seed)
    t0 = time.perf_counter()
    wrapper_loop(env, opts.warmup, rng)
    t_compile = time.perf_counter() - t0
    raw_reset, raw_step = make_raw(env._k, env.episode_limit)
    raw_loop(env._k, raw_reset, raw_step, opts.warmup, opts.seed)

    wrapper_times, raw_times = [], []
    for _ in range(opts.rounds):
        wrapper_times.append(wrapper_loop(env, opts.steps, rng))
        raw_times.append(raw_loop(env._k, raw_reset, raw_step, opts.steps, opts.seed))
    assert env._k.step._cache_size() == 1 and env._k.reset._cache_size() == 1, "the wrapper recompiled"

    info = env.get_env_info()
    wrapper_sps = opts.steps / min(wrapper_times)
    raw_sps = opts.steps / min(raw_times)
    wrapper_med = opts.steps / statistics.median(wrapper_times)
    raw_med = opts.steps / statistics.median(raw_times)
    print(f"map {opts.map}: {info['n_agents']} agents, obs {info['obs_shape']}, state {info['state_shape']}, "
          f"{info['n_actions']} actions, episode limit {info['episode_limit']}")
    print(f"first env (import + jaxmarl setup): {t_import:.1f} s; warm-up incl. compile: {t_compile:.1f} s")
    for name, best, median in (("wrapper", wrapper_sps, wrapper_med), ("raw    ", raw_sps, raw_med)):
        print(f"{name}: {best:8.0f} steps/s  ({1e6 / best:6.0f} us/step; median round {median:.0f} steps/s)")
    print(f"overhead: {100 * (raw_sps / wrapper_sps - 1):.1f}% more time per step than the raw loop "
          f"(best of {opts.rounds} rounds of {opts.steps} steps each)")


if __name__ == "__main__":
    main()

"""Real SMAX episode lengths for the learner benchmark: record them once, then sample batches of them.

    python benchmarks/learner_update.py --record-lengths --map 2s3z   # (re)write this map's entry

Two phases of training, each a list of episodes (length in env steps, and whether the episode ended
by termination rather than by the time limit), played with the plug-in's own SMAX env
(r3dm_epymarl/envs/smax.py: its episode limit and termination rules):
  early  random valid actions (uniform over each agent's available actions), what an epsilon = 1
         learner plays at the start of training;
  late   a competent policy: jaxmarl's own scripted heuristic (the one that plays the enemy team,
         `create_heuristic_policy`) playing the allied team; an action it picks that is not
         available (e.g. for a dead unit) becomes the always-available stop action.
The entries live in benchmarks/data/smax_episode_lengths.json with the env's shapes, the policies,
seeds, episode counts, win rates and the date, so that the benchmark needs no JAX.

Padding: the host pads every episode of a batch to the batch's longest (EpisodeBatch, `max_t_filled`),
so a batch of lengths L_1..L_B holds B * max(L) agent-step slots of which sum(L) are steps: padding
fraction = 1 - sum(L) / (B * max(L)) (the same for every agent).
"""
from __future__ import annotations

import datetime
import json
import random
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "smax_episode_lengths.json"
PHASES = ("early", "late")
DEFAULT_EPISODES = 300


def padding_fraction(batches) -> float:
    """Share of the agent-step slots of the padded batches that are padding (batches: lists of lengths)."""
    slots = sum(len(lengths) * max(lengths) for lengths in batches)
    return 1.0 - sum(sum(lengths) for lengths in batches) / slots


def load(map_name: str, path: Path = DATA) -> dict:
    entries = json.loads(path.read_text()) if path.is_file() else {}
    if map_name not in entries:
        raise SystemExit(f"--map {map_name}: no recorded episode lengths in {path} (maps: "
                         f"{', '.join(sorted(entries)) or 'none'}); record them with "
                         f"`python benchmarks/learner_update.py --record-lengths --map {map_name}`")
    return entries[map_name]


def sample(phase: dict, B: int, seed: int) -> tuple[list[int], list[bool]]:
    """B episodes drawn with replacement from a recorded phase: (lengths, terminated)."""
    rng = random.Random(seed)
    picks = [rng.randrange(len(phase["lengths"])) for _ in range(B)]
    return [phase["lengths"][i] for i in picks], [bool(phase["terminated"][i]) for i in picks]


# --- recording (needs jaxmarl) -------------------------------------------------------------------
def _random_policy(env, seed):
    import numpy as np

    rng = np.random.default_rng(seed)

    def act():
        avail = np.asarray(env.get_avail_actions(), dtype=float)  # [N, A]
        return [int(rng.choice(len(row), p=row / row.sum())) for row in avail]

    return act, lambda: None


def _heuristic_policy(env, seed):
    """jaxmarl's scripted SMAX policy (team 0 = allies) on the allies' unit-list observations."""
    import numpy as np
    from jaxmarl.environments.smax.heuristic_enemy import (create_heuristic_policy,
                                                          get_heuristic_policy_initial_state)

    kernel = env._k
    jax, jnp = kernel.jax, kernel.jax.numpy
    policy = jax.jit(jax.vmap(create_heuristic_policy(kernel.env, 0, shoot=True, attack_mode="closest")))
    n = env.n_agents
    box = {"key": jax.random.PRNGKey(seed), "state": None, "replaced": 0, "actions": 0}

    def reset():
        box["state"] = jax.tree.map(lambda *xs: jnp.stack(xs), *([get_heuristic_policy_initial_state()] * n))

    def act():
        box["key"], sub = jax.random.split(box["key"])
        actions, box["state"] = policy(jax.random.split(sub, n), box["state"], jnp.asarray(np.stack(env.get_obs())))
        actions = np.asarray(actions).astype(int)
        avail = np.asarray(env.get_avail_actions())
        ok = avail[np.arange(n), actions] > 0
        box["replaced"] += int((~ok).sum())
        box["actions"] += n
        return np.where(ok, actions, kernel.env.num_movement_actions - 1).tolist()  # stop: always available

    reset.box = box
    return act, reset


POLICIES = {
    "early": ("random valid actions (uniform over each agent's available actions)", _random_policy),
    "late": ("jaxmarl 0.2.0 heuristic (create_heuristic_policy, team 0, attack_mode=closest, shoot=True) "
             "for the allies; unavailable picks -> stop", _heuristic_policy),
}


def play(map_name: str, phase: str, episodes: int, seed: int) -> dict:
    from r3dm_epymarl.envs.smax import SMAXEnv

    env = SMAXEnv(map_name=map_name, seed=seed)
    what, make = POLICIES[phase]
    act, reset = make(env, seed)
    lengths, terminated, won = [], [], 0
    for _ in range(episodes):
        env.reset()
        reset()
        while True:
            _, _, term, trunc, info = env.step(act())
            if term or trunc:
                break
        lengths.append(env._t)
        terminated.append(int(term))
        won += info["battle_won"]
    entry = {"policy": what, "env_seed": seed, "policy_seed": seed, "episodes": episodes,
             "win_rate": won / episodes, "mean_length": sum(lengths) / episodes,
             "timeouts": episodes - sum(terminated), "lengths": lengths, "terminated": terminated}
    box = getattr(reset, "box", None)
    if box:
        entry["replaced_actions"] = box["replaced"] / max(1, box["actions"])
    return entry, env


def record(map_name: str, episodes: int = DEFAULT_EPISODES, seed: int = 0, path: Path = DATA) -> dict:
    import jaxmarl

    phases = {}
    for i, phase in enumerate(PHASES):
        phases[phase], env = play(map_name, phase, episodes, seed + i)
        p = phases[phase]
        print(f"{map_name} {phase}: {episodes} episodes, mean length {p['mean_length']:.1f}, win rate "
              f"{p['win_rate']:.2f}, {p['timeouts']} time-outs", flush=True)
    info = env.get_env_info()
    entry = {"recorded": datetime.date.today().isoformat(), "jaxmarl": getattr(jaxmarl, "__version__", "?"),
             "env": "r3dm_epymarl.envs.smax.SMAXEnv (HeuristicEnemySMAX, default options)",
             "episode_limit": info["episode_limit"], "n_agents": info["n_agents"], "obs": info["obs_shape"],
             "state": info["state_shape"], "actions": info["n_actions"], "phases": phases}
    entries = json.loads(path.read_text()) if path.is_file() else {}
    entries[map_name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    # one line per list keeps the file small and its diffs readable
    text = json.dumps(entries, indent=1)
    path.write_text(re.sub(r"\[[\d,\s]*\]", lambda m: json.dumps(json.loads(m.group(0))), text) + "\n")
    return entry

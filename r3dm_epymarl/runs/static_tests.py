"""Static evaluation: every test phase of every run plays the same episodes.

Left alone, a test episode starts wherever the env's random stream has got to, which depends on how many
steps the run's earlier episodes took, so two algorithms (or two seeds) are tested on different battles
and the comparison carries that noise too (BenchMARL's `evaluation_static` removes it the same way).
With R3DM_EPYMARL_TEST_SEED=N in the environment (`compare` sets it), the j-th test episode of every test
phase starts from env seed N + j, and the env's training stream is put back after it, so test phases
change nothing that training sees. An env option, not a Sacred key: the host's own algorithms (QMIX)
have no plug-in keys, and every row of a grid must be tested alike. The run logs `test_env_seed` = N
once (at t_env 0), so `report` can see which runs were tested this way.

Possible where the runner holds its env in this process and the env's next episode is a function of a
seed: the plug-in's SMAX env. Elsewhere (LBF, whose resets also depend on the previous episode; the
parallel runner; StarCraft II) the run says so in one line and tests as the host does.
"""
from __future__ import annotations

import os
import sys

from r3dm_epymarl.runs.state import env_state, set_env_state

TEST_SEED = "R3DM_EPYMARL_TEST_SEED"


def _say(message: str) -> None:
    print(f"r3dm-epymarl: {message}", file=sys.stderr, flush=True)


def requested() -> int | None:
    """The base seed from the environment, None when unset; ValueError for a value that is no integer."""
    value = os.environ.get(TEST_SEED, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{TEST_SEED}={value!r}: give an integer (the first test episode's env seed)") from None


def check(config: dict) -> None:
    """Before Sacred: a bad value, or static tests with a runner that keeps its envs in subprocesses."""
    from r3dm_epymarl.errors import UserError

    try:
        base = requested()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if base is not None and config.get("runner") == "parallel":
        raise UserError(f"{TEST_SEED} (static tests) needs runner=episode: the parallel runner's envs live in "
                        f"subprocesses whose streams cannot be set; use the episode runner or unset {TEST_SEED}")


def _reseeder(runner):
    """A function seed -> None that makes the runner's env start its next episode from `seed`, or None
    when that cannot be done from here. Only envs whose next episode is a function of a seed alone: the
    plug-in's SMAX env (its JAX key chain; also behind the PyMARLzoo+ adapter). Not LBF: its reset
    places players and food depending on the previous episode's end as well as on its generator, so
    one seed gives different episodes after different episodes (tests/unit/test_static_tests.py)."""
    env = getattr(runner, "env", None)
    if env is not None and hasattr(env, "get_rng_state") and hasattr(env, "seed"):
        return env.seed
    return None


def install(runner, logger) -> bool:
    """Wrap `runner.run` so its test episodes play the fixed seeds; True when installed."""
    base = requested()
    if base is None:
        return False
    reseed = _reseeder(runner)
    if reseed is None:
        _say(f"{TEST_SEED} is set, but {type(runner).__name__} with env "
             f"{type(getattr(runner, 'env', None)).__name__} has no seedable episode start this process can set: test "
             "phases play the env's own episodes (static tests: the episode runner on SMAX)")
        return False
    original = runner.run
    phase = {"t_env": None, "episode": 0}

    def run(test_mode=False, **kwargs):
        if not test_mode:
            return original(test_mode=test_mode, **kwargs)
        if phase["t_env"] != runner.t_env:  # no training step between the episodes of one test phase
            phase.update(t_env=runner.t_env, episode=0)
        saved, _ = env_state(runner)
        reseed(base + phase["episode"])
        phase["episode"] += 1
        try:
            return original(test_mode=True, **kwargs)
        finally:
            if saved is not None and saved["kind"] == "own":  # SMAX: the key chain back, its battle counts kept
                saved["state"]["stats"] = runner.env.get_rng_state()["stats"]
            set_env_state(runner, saved)  # training goes on from where its own stream was

    runner.run = run
    logger.log_stat("test_env_seed", base, 0)
    _say(f"static tests: the j-th test episode of every test phase starts from env seed {base} + j")
    return True

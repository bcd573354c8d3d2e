"""What a checkpoint keeps of a gymnasium env (runs/state.py): enough that the resumed run's next reset
is the uninterrupted run's. LBF places each agent away from where the previous episode left the others,
so its random stream alone is not enough: a resumed LBF run said "resumed exactly" and was not."""
import types

import numpy as np
import pytest

from r3dm_epymarl.runs.state import env_state, inexact_parts, set_env_state
from tests.unit.test_static_tests import GymmaLike


def _runner(seed: int):
    return types.SimpleNamespace(env=GymmaLike(seed))


def _play(runner, steps: int, rng) -> None:
    for _ in range(steps):
        runner.env.step([int(a) for a in rng.integers(0, 6, size=2)])


@pytest.mark.parametrize("steps", [3, 25])
def test_a_fresh_lbf_env_given_the_saved_state_resets_as_the_running_one(steps):
    running = _runner(seed=3)
    _play(running, steps, np.random.default_rng(0))  # an episode that ends where the checkpoint is taken
    saved, note = env_state(running)
    assert note == "restored (gymnasium env: np_random and attributes)" and not inexact_parts({"env": note})
    expected = [running.env.reset()[0] for _ in range(3)]  # the uninterrupted run's next starts
    resumed = _runner(seed=99)  # a new process: the env built anew, from another seed
    set_env_state(resumed, saved)
    got = [resumed.env.reset()[0] for _ in range(3)]
    assert all(np.array_equal(a, b) for e, g in zip(expected, got) for a, b in zip(e, g))


def test_the_saved_state_is_a_copy_the_running_env_cannot_change():
    running = _runner(seed=3)
    saved, _ = env_state(running)
    first = running.env.reset()[0]
    _play(running, 10, np.random.default_rng(1))
    running.env.reset()
    set_env_state(running, saved)  # twice from the same state: the same start both times
    again = running.env.reset()[0]
    set_env_state(running, saved)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(np.array_equal(a, b) for a, b in zip(first, running.env.reset()[0]))


def test_an_env_holding_state_pickle_cannot_save_is_called_inexact():
    running = _runner(seed=3)
    running.env._env.unwrapped.callback = lambda: None  # e.g. a renderer's handle
    saved, note = env_state(running)
    assert note.startswith("partly restored: the gymnasium np_random only; ForagingEnv holds state")
    assert inexact_parts({"env_rng": note}) == {"env_rng": note}  # the resume says it is not exact
    set_env_state(_runner(seed=5), saved)  # what it has is still put back

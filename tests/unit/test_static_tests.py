"""Static evaluation (issue #36 item 6): with R3DM_EPYMARL_TEST_SEED every test phase of every SMAX run
plays the same episodes, whatever the policy did before, and training's own env stream is left as it was."""
import numpy as np
import pytest

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.runs import static_tests
from r3dm_epymarl.runs.static_tests import TEST_SEED


class Logger:
    def __init__(self):
        self.stats = []

    def log_stat(self, key, value, t):
        self.stats.append((key, value, t))


class Runner:
    """The episode runner's shape: `env`, `t_env`, `run(test_mode)`. An episode takes `length` random
    steps (a stand-in for a policy: runs of two algorithms differ in how long their episodes are) and
    records its first observation, per mode."""

    def __init__(self, env, length: int, seed: int):
        self.env, self.length, self.t_env = env, length, 0
        self.rng = np.random.default_rng(seed)
        self.first = {True: [], False: []}

    def run(self, test_mode=False):
        obs = self.env.reset()[0]
        self.first[test_mode].append(np.asarray(obs, dtype=float).copy())
        for _ in range(self.length):
            done = self.step()
            if done:
                break
        if not test_mode:
            self.t_env += self.length

    def step(self) -> bool:
        avail = np.asarray(self.env.get_avail_actions())
        actions = [int(self.rng.choice(np.flatnonzero(a))) for a in avail]
        out = self.env.step(actions)
        return bool(out[2] or out[3])


def _smax():
    pytest.importorskip("jaxmarl", reason="SMAX needs jaxmarl")
    from r3dm_epymarl.envs.smax import SMAXEnv

    return SMAXEnv(map_name="3m", seed=7)


class GymmaLike:
    """What EPyMARL's gymma wrapper exposes here: the gymnasium env as `_env`."""

    def __init__(self, seed):
        import gymnasium as gym
        pytest.importorskip("lbforaging")

        self._env = gym.make("lbforaging:Foraging-8x8-2p-3f-v3")
        self._env.reset(seed=seed)

    def reset(self):
        return self._env.reset()

    def get_avail_actions(self):
        return [[1] * 6, [1] * 6]

    def step(self, actions):
        return self._env.step(tuple(actions))


def _grid(make_env, monkeypatch, static: bool):
    """Two 'algorithms' (episode lengths 3 and 9) x 3 phases of (2 training episodes, 2 test episodes)."""
    if static:
        monkeypatch.setenv(TEST_SEED, "1000")
    else:
        monkeypatch.delenv(TEST_SEED, raising=False)
    runners = []
    for length in (3, 9):
        runner = Runner(make_env(), length, seed=length)
        logger = Logger()
        assert static_tests.install(runner, logger) is static
        assert logger.stats == ([("test_env_seed", 1000, 0)] if static else [])
        for _ in range(3):
            runner.run()
            runner.run()
            runner.run(test_mode=True)
            runner.run(test_mode=True)
        runners.append(runner)
    return runners


def test_every_test_phase_of_every_run_plays_the_same_episodes(monkeypatch):
    make_env = _smax
    a, b = _grid(make_env, monkeypatch, static=True)
    tests_a, tests_b = np.stack(a.first[True]), np.stack(b.first[True])  # [phases * 2, ...]
    np.testing.assert_array_equal(tests_a, tests_b)  # the two algorithms: the same test episodes
    np.testing.assert_array_equal(tests_a[0::2], np.repeat(tests_a[:1], 3, 0))  # phase after phase
    np.testing.assert_array_equal(tests_a[1::2], np.repeat(tests_a[1:2], 3, 0))
    assert not np.array_equal(tests_a[0], tests_a[1]), "the j-th episode of a phase has its own seed"
    # Training saw exactly what it sees with no test phases at all: its stream was put back each time.
    plain = Runner(make_env(), 3, seed=3)
    for _ in range(6):
        plain.run()
    np.testing.assert_array_equal(np.stack(a.first[False]), np.stack(plain.first[False]))


def test_without_the_option_the_test_episodes_follow_each_runs_own_stream(monkeypatch):
    a, b = _grid(_smax, monkeypatch, static=False)
    assert not np.array_equal(np.stack(a.first[True]), np.stack(b.first[True]))


def test_bad_values_and_the_parallel_runner_are_refused_before_sacred(monkeypatch):
    monkeypatch.setenv(TEST_SEED, "abc")
    with pytest.raises(UserError, match="R3DM_EPYMARL_TEST_SEED='abc': give an integer"):
        static_tests.check({"runner": "episode"})
    monkeypatch.setenv(TEST_SEED, "5")
    static_tests.check({"runner": "episode"})
    with pytest.raises(UserError, match="needs runner=episode"):
        static_tests.check({"runner": "parallel"})


def test_lbf_is_not_static_by_seed_so_the_run_says_so(monkeypatch, capsys):
    """LBF's reset depends on the previous episode as well as on the generator: the same seed after
    episodes of different lengths gives different starts. Static tests are not offered there."""
    from gymnasium.utils import seeding

    starts = []
    for steps in (0, 3):
        env = GymmaLike(7)
        for _ in range(steps):
            env.step([1, 2])
        env._env.unwrapped._np_random, _ = seeding.np_random(1001)
        starts.append(env.reset()[0][0])
    assert not np.array_equal(*starts)
    monkeypatch.setenv(TEST_SEED, "5")
    runner = Runner(GymmaLike(7), 3, seed=0)
    assert static_tests.install(runner, Logger()) is False
    assert "has no seedable episode start" in capsys.readouterr().err


def test_a_runner_without_a_settable_env_says_so_and_tests_as_the_host_does(monkeypatch, capsys):
    monkeypatch.setenv(TEST_SEED, "5")

    class ParallelLike:
        t_env = 0

        def run(self, test_mode=False):
            return "ran"

    runner = ParallelLike()
    assert static_tests.install(runner, Logger()) is False
    assert "has no seedable episode start" in capsys.readouterr().err
    assert runner.run(test_mode=True) == "ran"

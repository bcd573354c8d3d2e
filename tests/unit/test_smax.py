"""The SMAX env (EPyMARL v2 API), its PyMARLzoo+ adapter, and the SMACv2 install check."""
import math
import sys
import types

import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from r3dm_epymarl.envs.sc2v2 import check_sc2v2  # noqa: E402
from r3dm_epymarl.envs.smax import EPISODE_LIMITS, MAP_NAMES, SMAXEnv, smax_fn  # noqa: E402
from r3dm_epymarl.errors import ConfigError, UserError  # noqa: E402
from r3dm_epymarl.hosts.zoo import ZooHost  # noqa: E402

STOP = 4  # SMAX action index of "stop", the only action of a dead agent


def random_actions(env, rng):
    return [int(rng.choice(np.flatnonzero(avail))) for avail in env.get_avail_actions()]


def check_step_data(env):
    info = env.get_env_info()
    obs, state, avail = env.get_obs(), env.get_state(), np.array(env.get_avail_actions())
    assert len(obs) == info["n_agents"] and all(o.shape == (info["obs_shape"],) for o in obs)
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in obs)
    assert state.shape == (info["state_shape"],) and state.dtype == np.float32
    assert state.min() >= 0.0 and state.max() <= 1.0  # normalised world state
    assert avail.shape == (info["n_agents"], info["n_actions"]) and set(np.unique(avail)) <= {0, 1}
    assert (avail[:, STOP] == 1).all()
    own_health = np.array([o[-10] for o in obs])  # first of the 10 own features
    dead = own_health == 0
    assert (avail[dead].sum(axis=1) == 1).all(), "a dead agent can only stop"
    assert (avail[~dead, :STOP] == 1).all(), "a live agent can always move"
    return int(dead.sum())


def play(env, rng, seed=None):
    """One episode with random available actions; returns (rewards, last info, obs trace, flags)."""
    obs, info = env.reset(seed=seed)
    assert info == {} and len(obs) == env.n_agents
    check_step_data(env)
    rewards, trace = [], [np.stack(obs)]
    while True:
        obs, reward, terminated, truncated, info = env.step(random_actions(env, rng))
        assert isinstance(reward, float) and math.isfinite(reward) and 0.0 <= reward <= 2 * env.reward_scale
        rewards.append(reward)
        trace.append(np.stack(obs))
        dead = check_step_data(env)
        assert info["dead_allies"] == dead
        if terminated or truncated:
            return rewards, info, trace, (terminated, truncated)
        assert not info["episode_limit"] and len(rewards) < env.episode_limit


@pytest.mark.parametrize("map_name", ["3m", "2s3z"])
def test_random_episodes(map_name):
    env = smax_fn(map_name=map_name, seed=3, common_reward=True, reward_scalarisation="sum")
    info = env.get_env_info()
    assert info["episode_limit"] == EPISODE_LIMITS[map_name] == env.episode_limit
    assert info["n_agents"] == env.n_agents == (3 if map_name == "3m" else 5)
    assert info["n_actions"] == env.get_total_actions() == env.n_agents + 5  # symmetric maps
    assert info["state_shape"] == 12 * 2 * env.n_agents
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(4):
        rewards, last, trace, (terminated, truncated) = play(env, rng)
        assert len(rewards) <= env.episode_limit
        assert isinstance(last["battle_won"], bool) and "dead_enemies" in last
        if terminated:  # a battle that ended: win, loss or draw, never a time-out
            ended += 1
            assert not truncated and last["episode_limit"] is False
            assert last["dead_allies"] == env.n_agents or last["dead_enemies"] == env.n_enemies
        else:
            assert truncated and last["episode_limit"] is True and len(rewards) == env.episode_limit
    assert ended, "random play should end some battles within SMAC's limit"
    # One compile of reset and of step for the whole run (no retracing on the second step).
    assert env._k.step._cache_size() == 1 and env._k.reset._cache_size() == 1
    stats = env.get_stats()
    assert stats["battles_game"] == 4 and 0.0 <= stats["win_rate"] <= 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step([STOP] * env.n_agents)


def test_time_out_is_truncated_not_terminated():
    env = SMAXEnv("3m", seed=0, time_limit=5)
    assert env.get_env_info()["episode_limit"] == 5
    env.reset()
    for t in range(5):
        _, _, terminated, truncated, info = env.step([STOP] * 3)  # nobody fights: no battle end
        assert not terminated
        assert truncated == info["episode_limit"] == (t == 4)
    assert info["battle_won"] is False
    assert env.get_stats()["timeouts"] == 1


def test_same_seed_same_episode_and_seeds_differ():
    first, second, other = (SMAXEnv("3m", seed=s) for s in (11, 11, 12))
    a = play(first, np.random.default_rng(5))
    b = play(second, np.random.default_rng(5))
    assert a[0] == b[0] and a[1] == b[1]
    assert all(np.array_equal(x, y) for x, y in zip(a[2], b[2]))
    # reset(seed=...) restarts the key chain: the same start as a fresh env with that seed.
    assert np.array_equal(np.stack(first.reset(seed=12)[0]), np.stack(other.reset()[0]))
    assert not np.array_equal(np.stack(first.reset(seed=11)[0]), np.stack(other.reset(seed=12)[0]))
    assert first.seed() == 11


def test_state_is_normalised_world_state():
    env = SMAXEnv("2s3z", seed=1)
    env.reset()
    n_units = 10
    state = env.get_state()
    units = state[: 10 * n_units].reshape(n_units, 10)
    assert np.allclose(units[:, 0], 1.0)  # full health at the start
    assert ((units[:, 1:3] > 0) & (units[:, 1:3] < 1)).all()  # positions / map size
    assert (units[:, 4:].sum(axis=1) == 1).all()  # one-hot unit type
    teams = state[10 * n_units: 11 * n_units]
    assert teams.tolist() == [0.0] * 5 + [1.0] * 5
    types = state[11 * n_units:]
    assert np.allclose(types * 5, [2, 2, 3, 3, 3] * 2)  # stalkers and zealots, scaled by 1/5


def test_config_errors():
    with pytest.raises(ConfigError) as e:
        SMAXEnv("corridor")
    for name in MAP_NAMES:
        assert name in str(e.value)
    assert isinstance(e.value, UserError)
    with pytest.raises(ConfigError, match="common"):
        SMAXEnv("3m", common_reward=False)
    with pytest.raises(ConfigError, match="unknown SMAX env_args num_allies"):
        SMAXEnv("3m", num_allies=4)
    with pytest.raises(ConfigError, match="time_limit"):
        SMAXEnv("3m", time_limit=0)


def test_unavailable_action_is_refused():
    env = SMAXEnv("3m", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="unavailable actions"):
        env.step([STOP + 1] * 3)  # attacks on enemies out of range at the start
    env.reset()  # the refused step voided that episode
    with pytest.raises(ValueError, match="3 actions"):
        env.step([STOP] * 2)


def test_zoo_adapter_smac_style_api():
    host = ZooHost()
    env_fn = host.adapt("envs", smax_fn)
    env = env_fn(map_name="3m", time_limit=4, seed=2)  # PyMARLzoo+ passes env_args only
    assert env.episode_limit == 4 and env.get_n_agents() == env.n_agents == 3
    assert env.get_print_info() is None
    assert env.get_env_info()["episode_limit"] == 4
    obs, state = env.reset()
    assert len(obs) == 3 and state.shape == (env.get_state_size(),)
    terminated, steps = False, 0
    while not terminated:
        actions = env.sample_actions()
        avail = env.get_avail_actions()
        assert all(avail[i][a] for i, a in enumerate(actions))
        reward, terminated, info = env.step(np.array(actions))
        assert isinstance(reward, float) and env.get_info() is info
        assert env.get_print_info() is None
        steps += 1
    assert steps == 4 and info["episode_limit"] is True  # time-out: terminated for the runner
    assert env.get_obs_agent(0).shape == (env.get_obs_size(),)
    assert env.get_avail_agent_actions(0)[STOP] == 1 and env.get_total_actions() == 8
    assert env.get_stats()["timeouts"] == 1
    env.save_replay(), env.render(), env.close()


def test_zoo_registry_passes_check_env_installation():
    pytest.importorskip("pymarlzooplus")
    from r3dm_epymarl.registry import register

    host = ZooHost()
    zoo_envs = host.module("envs")
    if "smax" in zoo_envs.REGISTRY_availability:  # an earlier test's registration
        zoo_envs.REGISTRY_availability.remove("smax")
    register(host)
    registry = host.registry("envs")
    try:
        assert zoo_envs.REGISTRY_availability.count("smax") == 1
        register(host)  # registering again lists it once
        assert zoo_envs.REGISTRY_availability.count("smax") == 1
        assert getattr(registry["smax"], "__wrapped__", None) is smax_fn
        from pymarlzooplus.utils.env_utils import check_env_installation
        logger = types.SimpleNamespace(console_logger=None)  # touched only on failure
        check_env_installation("smax", registry, logger)  # returns (a failure calls exit(0))
    finally:
        if "smax" in zoo_envs.REGISTRY_availability:
            zoo_envs.REGISTRY_availability.remove("smax")


# --- SMACv2 install check ---------------------------------------------------------------------------

def test_check_sc2v2_without_smacv2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "smacv2", None)  # import smacv2 -> ImportError
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    with pytest.raises(UserError) as e:
        check_sc2v2()
    message = str(e.value)
    assert "\n" not in message
    assert "smacv2 package is not importable" in message and "no Versions/ folder" in message
    assert "pip install git+https://github.com/oxwhirl/smacv2.git" in message
    assert "StarCraft II 4.10" in message and "s2client-proto" in message and "SC2PATH" in message


def test_check_sc2v2_with_smacv2_but_no_starcraft(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "smacv2", types.ModuleType("smacv2"))
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"no StarCraft II install at SC2PATH=.*no Versions/ folder") as e:
        check_sc2v2()
    assert "not importable" not in str(e.value)
    monkeypatch.delenv("SC2PATH")
    monkeypatch.setenv("HOME", str(tmp_path))  # the default ~/StarCraftII does not exist either
    with pytest.raises(UserError, match="SC2PATH is not set"):
        check_sc2v2()


def test_check_sc2v2_passes_with_both(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "smacv2", types.ModuleType("smacv2"))
    (tmp_path / "Versions").mkdir()
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    check_sc2v2()

"""epsilon_coin (issue #37 item 6): the joint coin flips one coin per env and step for all agents (the
published ACORM / R3DM runner), at the host's scheduled rate; per_agent is the host's selector exactly."""
from types import SimpleNamespace

import pytest
import torch as th

from r3dm_epymarl.controllers.exploration import EpsilonCoinSelector
from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.preflight import check_exploration

host_selectors = pytest.importorskip("pymarlzooplus.components.action_selectors")
HOST = host_selectors.REGISTRY["epsilon_greedy"]


def selector(coin):
    args = SimpleNamespace(epsilon_start=1.0, epsilon_finish=0.05, epsilon_anneal_time=1000,
                           evaluation_epsilon=0.0, action_selector_strategy="", epsilon_coin=coin)
    cls = type("Selector", (EpsilonCoinSelector,), {"_host_registry": staticmethod(lambda kind: {"epsilon_greedy": HOST})})
    return cls(args), args


def inputs(bs=4000, N=5, A=60):
    q = th.zeros(bs, N, A)
    q[..., 0] = 1.0  # greedy: action 0; a random action is one of A (1/A chance of 0)
    return q, th.ones(bs, N, A)


def test_joint_coin_explores_with_all_agents_together_at_the_scheduled_rate():
    sel, _ = selector("joint")
    q, avail = inputs()
    th.manual_seed(0)
    actions = sel.select_action(q, avail, t_env=500)  # epsilon 1 - 0.95 / 2 = 0.525
    assert sel.epsilon == pytest.approx(0.525)
    off_greedy = (actions != 0).sum(1)  # [bs]: agents of each env that took a random non-greedy action
    none, most = (off_greedy == 0).float().mean(), (off_greedy >= 4).float().mean()
    # joint: P(no agent off greedy) = 1 - eps (+ eps / 60^5), P(>= 4 of 5 off) = eps * P(>= 4 of 5 random != 0)
    assert none.item() == pytest.approx(1 - 0.525, abs=0.025)
    assert none.item() + most.item() > 0.99  # an env explores with all its agents or with none
    # the per-agent coin at the same rate: P(no agent off greedy) = (1 - eps (59/60))^5, about 0.03
    per_agent, _ = selector("per_agent")
    th.manual_seed(0)
    off = (per_agent.select_action(q, avail, t_env=500) != 0).sum(1)
    assert (off == 0).float().mean().item() < 0.06
    assert (actions != 0).float().mean().item() == pytest.approx((off / 5).float().mean().item(), abs=0.03)


def test_joint_coin_is_greedy_in_test_mode_and_respects_availability():
    sel, _ = selector("joint")
    q, avail = inputs(bs=200)
    assert (sel.select_action(q, avail, t_env=0, test_mode=True) == 0).all() and sel.epsilon == 0.0
    avail[..., 0] = 0  # the greedy action unavailable: never picked, by either branch
    avail[..., 1] = 1
    actions = sel.select_action(q, avail, t_env=0)
    assert (actions != 0).all()


def test_per_agent_coin_is_the_hosts_selector_bit_for_bit():
    sel, args = selector("per_agent")
    host = HOST(args)
    q, avail = th.randn(64, 3, 7), (th.rand(64, 3, 7) > 0.3).float()
    avail[..., 0] = 1
    for t in (0, 300, 2000):
        th.manual_seed(t)
        ours = sel.select_action(q, avail, t_env=t)
        th.manual_seed(t)
        assert th.equal(ours, host.select_action(q, avail, t_env=t)) and sel.epsilon == host.epsilon


def test_epsilon_coin_is_checked_before_the_run():
    check_exploration({"epsilon_coin": "joint", "action_selector": "r3dm_epsilon_greedy"}, "run")
    with pytest.raises(ConfigError, match="config key 'epsilon_coin' is 'both'; choose one of"):
        check_exploration({"epsilon_coin": "both", "action_selector": "r3dm_epsilon_greedy"}, "run")
    with pytest.raises(ConfigError, match="set action_selector=r3dm_epsilon_greedy"):
        check_exploration({"epsilon_coin": "joint", "action_selector": "epsilon_greedy"}, "run")

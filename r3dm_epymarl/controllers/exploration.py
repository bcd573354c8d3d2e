"""Epsilon-greedy with a choice of how the exploration coin is flipped (`epsilon_coin`).

`per_agent`: the host's own `epsilon_greedy` selector, called as it is (one coin per agent and env;
the same random draws, so a run is bit-identical to one with the host's selector).
`joint`: one coin per env and step for all its agents together, as the published ACORM / R3DM runner
flips it: either every agent of an env takes a uniformly random available action, or none does.
Both use the host's epsilon schedule, test-mode epsilon and action masking.
"""
from __future__ import annotations

import torch as th
from torch.distributions import Categorical

from r3dm_epymarl.config import Key

EPSILON_COINS = ("per_agent", "joint")
KEYS = {
    "epsilon_coin": Key(str, "exploration coin: per_agent (one per agent, the host's) or joint (one per env "
                             "and step for all agents, published ACORM / R3DM)", choices=EPSILON_COINS,
                        default="per_agent"),
}
SELECTOR = "r3dm_epsilon_greedy"  # this selector's registry key


class EpsilonCoinSelector:
    _host_registry = None  # bound per host by Host.adapt

    def __init__(self, args):
        self.host_selector = self._host_registry("action_selectors")["epsilon_greedy"](args)
        self.coin = getattr(args, "epsilon_coin", KEYS["epsilon_coin"].default)
        self.args = args

    @property
    def epsilon(self) -> float:  # the runners log it
        return self.host_selector.epsilon

    def select_action(self, agent_inputs, avail_actions, t_env, test_mode=False):
        """agent_inputs [bs, N, A] Q-values, avail_actions [bs, N, A] -> actions [bs, N]."""
        if self.coin == "per_agent":
            return self.host_selector.select_action(agent_inputs, avail_actions, t_env, test_mode=test_mode)
        host = self.host_selector
        host.epsilon = self.args.evaluation_epsilon if test_mode else host.schedule.eval(t_env)
        masked_q = agent_inputs.clone()
        masked_q[avail_actions == 0.0] = -float("inf")
        coin = th.rand_like(agent_inputs[:, :1, 0])  # [bs, 1]: one coin per env, shared by its agents
        pick_random = (coin < host.epsilon).long().expand(-1, agent_inputs.shape[1])  # [bs, N]
        random_actions = Categorical(avail_actions.float()).sample().long()
        return pick_random * random_actions + (1 - pick_random) * masked_q.max(dim=2)[1]

"""A controller for recurrent agents that can also unroll whole episodes in one call.

Same interface as the hosts' BasicMAC. The agent class and the action selector come from the host's
registries (`_host_registry`, bound by the host adapter), so the epsilon schedule and the evaluation
protocol are exactly the host's. The agent sees [o_t, a_{t-1}] plus whatever a subclass appends.
"""
from __future__ import annotations

from typing import NamedTuple

import torch as th

from r3dm_epymarl.modules.recurrent import last_actions


class Unroll(NamedTuple):
    q: th.Tensor  # [B, T, N, A]
    extras: dict  # what else the unroll produced, e.g. "e", "z" (roles) or "hidden", "q_local" (CDS)


class RecurrentMAC:
    _host_registry = None  # kind -> registry dict; bound per host by Host.adapt

    def __init__(self, scheme, groups, args):
        self.n_agents = args.n_agents
        self.args = args
        obs_shape = scheme["obs"]["vshape"]
        self.obs_dim = obs_shape if isinstance(obs_shape, int) else int(th.tensor(obs_shape).prod())
        self.trajectory_input_dim = self.obs_dim + args.n_actions  # [o_t, a_{t-1}]
        self.build_networks(args)
        agent_cls = self._host_registry("agents")[args.agent]
        self.agent = agent_cls(self.trajectory_input_dim + self.extra_agent_inputs(args), args)
        self.agent_output_type = args.agent_output_type
        self.action_selector = self._host_registry("action_selectors")[args.action_selector](args)
        self.hidden_states = None

    # --- what subclasses extend -------------------------------------------------------------------
    @classmethod
    def provides(cls, agent_cls) -> tuple:
        """Names of the unroll outputs (Unroll.extras, and "z" for roles) this controller gives with
        agents of `agent_cls`, for the intrinsic terms' `needs` (intrinsic/contract.py)."""
        return tuple(getattr(agent_cls, "unroll_outputs", ()))

    def build_networks(self, args):
        """Networks besides the agent (built before it)."""

    def extra_agent_inputs(self, args) -> int:
        return 0

    def networks(self) -> dict:
        """Every network this controller owns, by name (saved as <name>.th)."""
        return {"agent": self.agent}

    def target_networks(self) -> dict:
        """The networks a target copy of this controller uses (updated and saved as target_<name>)."""
        return self.networks()

    # --- acting -------------------------------------------------------------------------------
    def select_actions(self, ep_batch, t_ep, t_env, bs=slice(None), test_mode=False):
        avail_actions = ep_batch["avail_actions"][:, t_ep]
        agent_outputs = self.forward(ep_batch, t_ep, test_mode=test_mode)
        return self.action_selector.select_action(agent_outputs[bs], avail_actions[bs], t_env, test_mode=test_mode)

    def step_inputs(self, batch, t):
        obs = batch["obs"][:, t]  # [bs, N, O]
        prev = batch["actions_onehot"][:, t - 1] if t > 0 else th.zeros_like(batch["actions_onehot"][:, 0])
        return th.cat([obs, prev], dim=-1).reshape(batch.batch_size * self.n_agents, -1)  # [bs*N, O+A]

    def forward(self, ep_batch, t, test_mode=False):
        q, self.hidden_states = self.agent(self.step_inputs(ep_batch, t), self.hidden_states)
        return q.view(ep_batch.batch_size, self.n_agents, -1)

    def init_hidden(self, batch_size):
        self.hidden_states = self.agent.init_hidden().expand(batch_size * self.n_agents, -1)

    # --- training -----------------------------------------------------------------------------
    def trajectory_inputs(self, batch):
        """[o_t, a_{t-1}] for whole episodes: [B, T, N, O+A]."""
        return th.cat([batch["obs"], last_actions(batch["actions_onehot"])], dim=-1)

    def unroll_agent(self, agent_in):
        """agent_in [B, T, N, in] -> (q [B, T, N, A], agent extras), one recurrence over T."""
        B, T, N, _ = agent_in.shape
        q, extras = self.agent.unroll(agent_in.transpose(1, 2).reshape(B * N, T, -1))  # streams [B*N, T, .]
        back = lambda x: x.reshape(B, N, T, *x.shape[2:]).transpose(1, 2)  # noqa: E731  [B, T, N, .]
        return back(q), {k: back(v) for k, v in extras.items()}

    def unroll(self, batch) -> Unroll:
        q, extras = self.unroll_agent(self.trajectory_inputs(batch))
        return Unroll(q, extras)

    def unroll_target(self, batch, online: Unroll) -> Unroll:
        """The unroll of this controller used as a TD target, given the online controller's unroll."""
        return self.unroll(batch)

    # --- host plumbing ------------------------------------------------------------------------
    def parameters(self):
        return [p for net in self.networks().values() for p in net.parameters()]

    def load_state(self, other_mac):
        for name, net in self.networks().items():
            net.load_state_dict(other_mac.networks()[name].state_dict())

    def cuda(self):
        for net in self.networks().values():
            net.cuda()

    def to(self, *args, **kwargs):
        for net in self.networks().values():
            net.to(*args, **kwargs)

    def save_models(self, path):
        for name, net in self.networks().items():
            th.save(net.state_dict(), f"{path}/{name}.th")

    def load_models(self, path):
        for name, net in self.networks().items():
            net.load_state_dict(th.load(f"{path}/{name}.th", map_location="cpu"))

"""The role MAC: computes each agent's role online while acting, then its role-conditioned Q.

Same interface as the hosts' BasicMAC. The agent class and the action selector come from the
host's registries (`_host_registry`, bound by the host adapter), so the epsilon schedule and the
evaluation protocol are exactly the host's.
"""
import torch as th

from r3dm_epymarl.modules.recurrent import last_actions
from r3dm_epymarl.roles.encoders import RoleNetwork


class RoleMAC:
    _host_registry = None  # kind -> registry dict; bound per host by Host.adapt

    def __init__(self, scheme, groups, args):
        self.n_agents = args.n_agents
        self.args = args
        obs_dim = scheme["obs"]["vshape"]
        obs_dim = obs_dim if isinstance(obs_dim, int) else int(th.tensor(obs_dim).prod())
        self.trajectory_input_dim = obs_dim + args.n_actions  # [o_t, a_{t-1}]
        self.roles = RoleNetwork(self.trajectory_input_dim, args.traj_embed_dim, args.role_embed_dim)
        agent_cls = self._host_registry("agents")[args.agent]
        self.agent = agent_cls(self.trajectory_input_dim + args.role_embed_dim, args)
        self.agent_output_type = args.agent_output_type
        self.action_selector = self._host_registry("action_selectors")[args.action_selector](args)
        self.hidden_states = None
        self.role_hidden = None
        self.last_roles = None  # z_t of the last acting step, [bs, N, R]

    # --- acting -------------------------------------------------------------------------------
    def select_actions(self, ep_batch, t_ep, t_env, bs=slice(None), test_mode=False):
        avail_actions = ep_batch["avail_actions"][:, t_ep]
        agent_outputs = self.forward(ep_batch, t_ep, test_mode=test_mode)
        return self.action_selector.select_action(agent_outputs[bs], avail_actions[bs], t_env, test_mode=test_mode)

    def _step_inputs(self, batch, t):
        obs = batch["obs"][:, t]  # [bs, N, O]
        prev = batch["actions_onehot"][:, t - 1] if t > 0 else th.zeros_like(batch["actions_onehot"][:, 0])
        return th.cat([obs, prev], dim=-1).reshape(batch.batch_size * self.n_agents, -1)  # [bs*N, O+A]

    def forward(self, ep_batch, t, test_mode=False):
        x = self._step_inputs(ep_batch, t)
        _, z, self.role_hidden = self.roles.step(x, self.role_hidden)
        q, self.hidden_states = self.agent(th.cat([x, z], dim=-1), self.hidden_states)
        self.last_roles = z.detach().view(ep_batch.batch_size, self.n_agents, -1)
        return q.view(ep_batch.batch_size, self.n_agents, -1)

    def init_hidden(self, batch_size):
        rows = batch_size * self.n_agents
        self.hidden_states = self.agent.init_hidden().expand(rows, -1)
        self.role_hidden = self.roles.trajectory.init_hidden(rows)

    # --- training -----------------------------------------------------------------------------
    def trajectory_inputs(self, batch):
        """[o_t, a_{t-1}] for whole episodes: [B, T, N, O+A]."""
        return th.cat([batch["obs"], last_actions(batch["actions_onehot"])], dim=-1)

    def unroll(self, batch):
        """Whole episodes at once: (q [B, T, N, A], e [B, T, N, E], z [B, T, N, R])."""
        B, T, N = batch.batch_size, batch.max_seq_length, self.n_agents
        x = self.trajectory_inputs(batch)
        e, z = self.roles.unroll(x)
        agent_in = th.cat([x, z], dim=-1).transpose(1, 2).reshape(B * N, T, -1)  # [B*N, T, in]
        q = self.agent.unroll(agent_in).reshape(B, N, T, -1).transpose(1, 2)  # [B, T, N, A]
        return q, e, z

    # --- host plumbing ------------------------------------------------------------------------
    def parameters(self):
        return [*self.agent.parameters(), *self.roles.parameters()]

    def load_state(self, other_mac):
        self.agent.load_state_dict(other_mac.agent.state_dict())
        self.roles.load_state_dict(other_mac.roles.state_dict())

    def cuda(self):
        self.agent.cuda()
        self.roles.cuda()

    def to(self, *args, **kwargs):
        self.agent.to(*args, **kwargs)
        self.roles.to(*args, **kwargs)

    def save_models(self, path):
        th.save(self.agent.state_dict(), f"{path}/agent.th")
        th.save(self.roles.state_dict(), f"{path}/roles.th")

    def load_models(self, path):
        self.agent.load_state_dict(th.load(f"{path}/agent.th", map_location="cpu"))
        self.roles.load_state_dict(th.load(f"{path}/roles.th", map_location="cpu"))

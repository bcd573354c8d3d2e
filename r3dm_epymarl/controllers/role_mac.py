"""The role MAC: computes each agent's role online while acting, then its role-conditioned Q."""
import torch as th

from r3dm_epymarl.controllers.base import RecurrentMAC, Unroll
from r3dm_epymarl.roles.encoders import RoleNetwork


class RoleMAC(RecurrentMAC):
    # Off by default (one attribute read per step when off). `r3dm-epymarl roles` and `probe` set an
    # object here whose `record(t, e, z, batch)` gets each acting step's embeddings e [bs, N, E], roles
    # z [bs, N, R] and the episode batch being filled (obs, actions, avail_actions, filled).
    role_recorder = None

    @classmethod
    def provides(cls, agent_cls) -> tuple:
        return ("z", "trajectory_hidden")  # see unroll()

    def build_networks(self, args):
        self.roles = RoleNetwork(self.trajectory_input_dim, args.traj_embed_dim, args.role_embed_dim)
        self.role_hidden = None
        self.last_roles = None  # z_t of the last acting step, [bs, N, R]

    def extra_agent_inputs(self, args) -> int:
        return args.role_embed_dim  # the agent sees [o_t, a_{t-1}, z_t]

    def networks(self) -> dict:
        return {"agent": self.agent, "roles": self.roles}

    def target_networks(self) -> dict:
        # Published ACORM/R3DM: f_e and f_r have no target copy; the target agent reads the online roles.
        return {"agent": self.agent}

    def forward(self, ep_batch, t, test_mode=False):
        x = self.step_inputs(ep_batch, t)
        e, z, self.role_hidden = self.roles.step(x, self.role_hidden)
        q, self.hidden_states = self.agent(th.cat([x, z], dim=-1), self.hidden_states)
        self.last_roles = z.detach().view(ep_batch.batch_size, self.n_agents, -1)
        if self.role_recorder is not None:
            self.role_recorder.record(t, e.detach().view(ep_batch.batch_size, self.n_agents, -1), self.last_roles,
                                      ep_batch)
        return q.view(ep_batch.batch_size, self.n_agents, -1)

    def init_hidden(self, batch_size):
        super().init_hidden(batch_size)
        self.role_hidden = self.roles.trajectory.init_hidden(batch_size * self.n_agents)

    def unroll(self, batch) -> Unroll:
        """Whole episodes: q [B, T, N, A] with extras z [B, T, N, R] (roles) and trajectory_hidden
        [B, T, N, E] (f_e's GRU states; `self.roles.embeddings` of them gives the embeddings e)."""
        x = self.trajectory_inputs(batch)
        h, z = self.roles.unroll(x)
        return Unroll(self.agent.unroll_with_roles(x, z), {"trajectory_hidden": h, "z": z})

    def unroll_target(self, batch, online: Unroll) -> Unroll:
        """Target Q from this (target) agent with the ONLINE roles z of `online` (no gradient)."""
        z = online.extras["z"].detach()
        return Unroll(self.agent.unroll_with_roles(self.trajectory_inputs(batch), z), {"z": z})

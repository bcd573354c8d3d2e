"""CDS's agent (Li et al., NeurIPS 2021): a shared GRU trunk, a shared head and one head per agent.

Q_i(tau) = shared_head(h) + head_i(h). The per-agent heads are one [N, H, A] weight tensor applied
with a batched matmul, not N modules; their output is returned separately for the L1 penalty.
"""
import torch as th
from torch import nn

from r3dm_epymarl.modules.recurrent import unroll_cell


class CDSRNNAgent(nn.Module):
    unroll_outputs = ("hidden", "q_local")  # unroll()'s extras, for the intrinsic terms' needs

    def __init__(self, input_shape: int, args):
        super().__init__()
        self.n_agents, self.hidden_dim = args.n_agents, args.hidden_dim
        self.fc1 = nn.Linear(input_shape, args.hidden_dim)
        self.rnn = nn.GRUCell(args.hidden_dim, args.hidden_dim)
        self.shared_head = nn.Linear(args.hidden_dim, args.n_actions)
        bound = args.hidden_dim ** -0.5  # nn.Linear's default init range, per head
        self.head_weight = nn.Parameter(th.empty(args.n_agents, args.hidden_dim, args.n_actions).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(th.empty(args.n_agents, args.n_actions).uniform_(-bound, bound))

    def init_hidden(self):
        return self.fc1.weight.new_zeros(1, self.hidden_dim)

    def local_q(self, h: th.Tensor) -> th.Tensor:
        """h [..., N, H] (agent i's hidden in slot i) -> agent-specific part [..., N, A]."""
        return th.einsum("...nh,nha->...na", h, self.head_weight) + self.head_bias

    def forward(self, inputs: th.Tensor, hidden_state: th.Tensor):
        """inputs [bs*N, in] with rows ordered (episode, agent) -> (q [bs*N, A], h [bs*N, H])."""
        h = self.rnn(th.relu(self.fc1(inputs)), hidden_state.reshape(-1, self.hidden_dim))
        per_agent = h.view(-1, self.n_agents, self.hidden_dim)  # [bs, N, H]
        q = self.shared_head(per_agent) + self.local_q(per_agent)
        return q.reshape(-1, q.shape[-1]), h

    def unroll(self, inputs: th.Tensor):
        """inputs [B*N, T, in] (streams ordered (episode, agent)) ->
        (q [B*N, T, A], {"hidden": h_t [B*N, T, H], "q_local": agent-specific part [B*N, T, A]})."""
        S, T, _ = inputs.shape
        pre = th.relu(self.fc1(inputs)).transpose(0, 1)  # [T, S, H]
        hs = unroll_cell(self.rnn, pre, self.init_hidden().expand(S, -1).contiguous()).transpose(0, 1)  # [S, T, H]
        per_agent = hs.reshape(-1, self.n_agents, T, self.hidden_dim).transpose(1, 2)  # [B, T, N, H]
        local = self.local_q(per_agent).transpose(1, 2).reshape(S, T, -1)  # [S, T, A]
        return self.shared_head(hs) + local, {"hidden": hs, "q_local": local}

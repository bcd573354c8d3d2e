"""The role-conditioned agent: Q_i(tau_i, z_i) from [o_t, a_{t-1}, z_t]; no agent id, the role replaces it."""
import torch as th
from torch import nn
from torch.nn import functional as F

from r3dm_epymarl.modules.recurrent import unroll_cell


class RoleRNNAgent(nn.Module):
    """Linear(in, 64) -> ReLU -> GRUCell(64) -> Linear(64, A). The host's agent interface (`forward`, one
    step while acting) plus whole-episode unrolls for training (`unroll_with_roles`, `unroll_role_swapped`)."""

    def __init__(self, input_shape: int, args):
        super().__init__()
        self.hidden_dim = args.hidden_dim
        self.fc1 = nn.Linear(input_shape, args.hidden_dim)
        self.rnn = nn.GRUCell(args.hidden_dim, args.hidden_dim)
        self.fc2 = nn.Linear(args.hidden_dim, args.n_actions)

    def init_hidden(self):
        return self.fc1.weight.new_zeros(1, self.hidden_dim)

    def forward(self, inputs: th.Tensor, hidden_state: th.Tensor):
        """inputs [M, in], hidden [M, H] (or broadcastable) -> (q [M, A], h [M, H])."""
        h = self.rnn(th.relu(self.fc1(inputs)), hidden_state.reshape(-1, self.hidden_dim))
        return self.fc2(h), h

    def _recur(self, pre: th.Tensor) -> th.Tensor:
        """pre [T, S, H] (fc1 outputs before the ReLU) of S streams -> q [T, S, A]."""
        h0 = self.init_hidden().expand(pre.shape[1], -1).contiguous()
        return self.fc2(unroll_cell(self.rnn, th.relu(pre), h0))

    def _input_parts(self, x: th.Tensor, z: th.Tensor):
        """fc1 is linear in [x, z]: (x @ W_x^T, z @ W_z^T + b), so no [x, z] copy is made and the
        backward computes no gradient for x (observations need none)."""
        w_x, w_z = self.fc1.weight.split([x.shape[-1], z.shape[-1]], dim=1)
        return F.linear(x, w_x), F.linear(z, w_z, self.fc1.bias)

    def unroll_with_roles(self, x: th.Tensor, z: th.Tensor) -> th.Tensor:
        """Q_i(tau_i, z_i): x [B, T, N, in-R] (agent inputs without the role), z [B, T, N, R] -> q [B, T, N, A].
        The same maths as `forward` on [x, z] step by step."""
        B, T, N, _ = x.shape
        px, pz = self._input_parts(x, z)
        pre = (px + pz).transpose(0, 1).reshape(T, B * N, -1)  # [T, B*N, H]
        return self._recur(pre).reshape(T, B, N, -1).transpose(0, 1)  # [B, T, N, A]

    def unroll_role_swapped(self, x: th.Tensor, z: th.Tensor) -> th.Tensor:
        """Q_i(tau_i, z_j) for every pair: x [B, T, N, in-R] (agent inputs without the role),
        z [B, T, N, R] -> q [B, T, N_i, N_j, A].

        One batched unroll of B*N*N streams. fc1 is split into its x and z blocks and applied once per
        agent and once per role; only the sums are N*N-sized.
        """
        B, T, N, _ = x.shape
        px, pz = self._input_parts(x, z)
        pre = (px.unsqueeze(3) + pz.unsqueeze(2)).permute(1, 0, 2, 3, 4)  # [T, B, N_i, N_j, H]
        pre = pre.reshape(T, B * N * N, -1)
        return self._recur(pre).reshape(T, B, N, N, -1).transpose(0, 1)  # [B, T, N_i, N_j, A]

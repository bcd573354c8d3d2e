"""ACORM's role networks: trajectory encoder f_e and role encoder f_r (spec section 1)."""
import torch as th
from torch import nn
from torch.nn import functional as F

from r3dm_epymarl.modules.recurrent import unroll_cell


class TrajectoryEncoder(nn.Module):
    """f_e: [o_t, a_{t-1}] -> Linear -> ReLU -> GRUCell -> Linear = e_t (the agent embedding)."""

    def __init__(self, input_dim: int, embed_dim: int = 128):
        super().__init__()
        self.embed_dim = embed_dim
        self.fc_in = nn.Linear(input_dim, embed_dim)
        self.gru = nn.GRUCell(embed_dim, embed_dim)
        self.fc_out = nn.Linear(embed_dim, embed_dim)

    def init_hidden(self, rows: int, device=None) -> th.Tensor:
        return self.fc_in.weight.new_zeros(rows, self.embed_dim, device=device)

    def step(self, x: th.Tensor, h: th.Tensor):
        """x [M, in], h [M, E] -> (e [M, E], h [M, E]); used while acting."""
        h = self.gru(th.relu(self.fc_in(x)), h)
        return self.fc_out(h), h

    def unroll_hidden(self, x: th.Tensor) -> th.Tensor:
        """x [B, T, N, in] -> the GRU states h [B, T, N, E] over the whole episode (e = fc_out(h))."""
        B, T, N, _ = x.shape
        pre = th.relu(self.fc_in(x)).transpose(0, 1).reshape(T, B * N, -1)  # [T, B*N, E]
        hs = unroll_cell(self.gru, pre, self.init_hidden(B * N, x.device))
        return hs.reshape(T, B, N, -1).transpose(0, 1)  # [B, T, N, E]

    def unroll(self, x: th.Tensor) -> th.Tensor:
        """x [B, T, N, in] -> e [B, T, N, E], the same maths as `step` over the whole episode."""
        return self.fc_out(self.unroll_hidden(x))


class RoleEncoder(nn.Module):
    """f_r: e -> Linear -> LayerNorm -> sigmoid = z, a role embedding in (0, 1)."""

    def __init__(self, embed_dim: int = 128, role_dim: int = 64):
        super().__init__()
        self.fc = nn.Linear(embed_dim, role_dim)
        self.norm = nn.LayerNorm(role_dim)

    def forward(self, e: th.Tensor) -> th.Tensor:
        return th.sigmoid(self.norm(self.fc(e)))

    def after(self, readout: nn.Linear, h: th.Tensor) -> th.Tensor:
        """f_r(readout(h)) without materialising e = readout(h).

        Two linear maps in a row are one: fc(W_o h + b_o) = (W_f W_o) h + (W_f b_o + b_f). At 128 -> 128
        -> 64 that is a third of the FLOPs, forward and backward; autograd still trains W_o and W_f,
        through the small [R, E] product.
        """
        weight = self.fc.weight @ readout.weight  # [R, E]
        bias = self.fc.weight @ readout.bias + self.fc.bias
        return th.sigmoid(self.norm(F.linear(h, weight, bias)))


class RoleNetwork(nn.Module):
    """f_e followed by f_r: what the controller runs online to give each agent its role."""

    def __init__(self, input_dim: int, embed_dim: int = 128, role_dim: int = 64):
        super().__init__()
        self.trajectory = TrajectoryEncoder(input_dim, embed_dim)
        self.role = RoleEncoder(embed_dim, role_dim)

    def step(self, x, h):
        e, h = self.trajectory.step(x, h)
        return e, self.role(e), h

    def unroll(self, x):
        """x [B, T, N, in] -> (h [B, T, N, E], z [B, T, N, R]): f_e's GRU states and the roles.

        A learner update needs only z; the embeddings e = `embeddings(h)` are computed when asked
        (the contrastive step, one update in `contrastive_interval`)."""
        h = self.trajectory.unroll_hidden(x)
        return h, self.role.after(self.trajectory.fc_out, h)

    def embeddings(self, h: th.Tensor) -> th.Tensor:
        """f_e's GRU states [..., E] -> e [..., E]."""
        return self.trajectory.fc_out(h)

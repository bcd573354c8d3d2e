"""ACORM's attention-augmented QMIX mixer (spec section 1).

A recurrent state summary h_t (one 64-d query per agent) attends over the agents' role embeddings;
the attention output joins the state features as the hypernetworks' input. Monotonic in each Q_i.
"""
import torch as th
import torch.nn.functional as F
from torch import nn

from r3dm_epymarl.modules.recurrent import unroll_cell


class RoleAttention(nn.Module):
    """Multi-head attention: N queries (from the state) over N keys/values (the roles)."""

    def __init__(self, query_dim: int, role_dim: int, att_dim: int, heads: int, out_dim: int):
        super().__init__()
        assert att_dim % heads == 0, "attention dim must divide into heads"
        self.heads = heads
        self.q = nn.Linear(query_dim, att_dim, bias=False)
        self.k = nn.Linear(role_dim, att_dim, bias=False)
        self.v = nn.Linear(role_dim, att_dim, bias=False)
        self.out = nn.Linear(att_dim, out_dim)

    def forward(self, queries: th.Tensor, roles: th.Tensor) -> th.Tensor:
        """queries [M, N, Dq], roles [M, N, R] -> [M, N, out]."""
        M, N, _ = queries.shape
        split = lambda x: x.reshape(M, N, self.heads, -1).transpose(1, 2)  # [M, heads, N, d]
        keys, values = F.linear(roles, th.cat([self.k.weight, self.v.weight])).chunk(2, dim=-1)  # one matmul
        att = F.scaled_dot_product_attention(split(self.q(queries)), split(keys), split(values))
        return self.out(att.transpose(1, 2).reshape(M * N, -1)).view(M, N, -1)


class AttentionQMixer(nn.Module):
    needs_roles = True  # the learner passes the role embeddings z [B, T, N, R]

    def __init__(self, args):
        super().__init__()
        self.n_agents = args.n_agents
        self.state_dim = int(th.tensor(args.state_shape).prod())
        self.query_dim = args.role_embed_dim  # h_t splits into N queries of the role's width (64)
        embed = args.mixing_embed_dim
        self.state_fc = nn.Linear(self.state_dim, self.state_dim)
        self.state_gru = nn.GRUCell(self.state_dim, self.n_agents * self.query_dim)
        self.attention = RoleAttention(self.query_dim, args.role_embed_dim, args.att_embed_dim,
                                       args.att_heads, args.att_out_dim)
        hyper_in = self.state_dim + self.n_agents * args.att_out_dim
        hyper = args.hypernet_embed

        def hypernet(out):
            return nn.Sequential(nn.Linear(hyper_in, hyper), nn.ReLU(), nn.Linear(hyper, out))

        self.hyper_w1 = hypernet(self.n_agents * embed)
        self.hyper_b1 = nn.Linear(hyper_in, embed)
        self.hyper_w2 = hypernet(embed)
        self.value = nn.Sequential(nn.Linear(hyper_in, embed), nn.ReLU(), nn.Linear(embed, 1))
        self.embed = embed

    def forward(self, agent_qs: th.Tensor, states: th.Tensor, roles: th.Tensor) -> th.Tensor:
        """agent_qs [B, T, N], states [B, T, S], roles [B, T, N, R] -> Q_tot [B, T, 1].

        The state GRU runs from t = 0 of whatever sequence it is given, so pass whole episodes
        and slice the output.
        """
        return self.mix(agent_qs, self.state_features(states), roles)

    # The learner computes the state features once per update and hands them to this mixer and to
    # its target copy (published: the target mixer reads the online state features and roles).
    shares_state_features = True

    def state_features(self, states: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """states [B, T, S] -> (fs [B, T, S] = ReLU(state_fc(s)), h [B, T, N*Dq] = the state GRU from t = 0)."""
        B, T = states.shape[:2]
        fs = th.relu(self.state_fc(states.reshape(B, T, -1)))  # [B, T, S]
        h0 = fs.new_zeros(B, self.n_agents * self.query_dim)
        h = unroll_cell(self.state_gru, fs.transpose(0, 1), h0).transpose(0, 1)  # [B, T, N*Dq]
        return fs, h

    def mix(self, agent_qs: th.Tensor, features, roles: th.Tensor) -> th.Tensor:
        """agent_qs [B, T, N], features (fs, h) from `state_features` (the same T steps), roles
        [B, T, N, R] -> Q_tot [B, T, 1]; per step (nothing recurrent here)."""
        fs, h = features
        B, T, N = agent_qs.shape
        att = self.attention(h.reshape(B * T, N, self.query_dim), roles.reshape(B * T, N, -1))  # [B*T, N, out]
        u = th.cat([fs.reshape(B * T, -1), att.reshape(B * T, -1)], dim=-1)  # [B*T, hyper_in]
        w1_hidden, b1, w2_hidden, value_hidden = self._first_layers(u)
        w1 = self.hyper_w1[2](th.relu(w1_hidden)).abs().view(B * T, N, self.embed)
        hidden = F.elu(th.bmm(agent_qs.reshape(B * T, 1, N), w1) + b1.view(B * T, 1, self.embed))  # [B*T, 1, embed]
        w2 = self.hyper_w2[2](th.relu(w2_hidden)).abs().view(B * T, self.embed, 1)
        q_tot = th.bmm(hidden, w2) + self.value[2](th.relu(value_hidden)).view(B * T, 1, 1)
        return q_tot.view(B, T, 1)

    def _first_layers(self, u: th.Tensor):
        """The four layers that read u (hyper_w1[0], hyper_b1, hyper_w2[0], value[0]) as one matmul."""
        layers = [self.hyper_w1[0], self.hyper_b1, self.hyper_w2[0], self.value[0]]
        out = F.linear(u, th.cat([layer.weight for layer in layers]), th.cat([layer.bias for layer in layers]))
        return out.split([layer.out_features for layer in layers], dim=-1)

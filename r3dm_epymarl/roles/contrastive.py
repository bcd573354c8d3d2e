"""ACORM's supervised contrastive role loss with a momentum key encoder (spec section 1).

Positives of agent i are the agents in i's K-means cluster (i included). Score s_ij = q_i^T W k_j with
q = f_r(e) (trained) and k = f_r'(e) (an EMA copy, no gradient); no temperature.
"""
import copy

import torch as th
from torch import nn

from r3dm_epymarl.roles.encoders import RoleEncoder


class ContrastiveRoleLoss(nn.Module):
    name = "loss_contrastive"

    def __init__(self, role_encoder: RoleEncoder, role_dim: int, momentum_tau: float):
        super().__init__()
        self.momentum_tau = momentum_tau
        self.key_encoder = copy.deepcopy(role_encoder).requires_grad_(False)
        self.bilinear = nn.Parameter(th.rand(role_dim, role_dim))  # W ~ uniform [0, 1), as published

    def forward(self, role_encoder: RoleEncoder, e: th.Tensor, labels: th.Tensor) -> th.Tensor:
        """e [G, N, E] (no gradient reaches it), labels [G, N] cluster ids -> mean loss over G*N."""
        e = e.detach()
        query = role_encoder(e)  # [G, N, R]
        with th.no_grad():
            key = self.key_encoder(e)  # [G, N, R]
        scores = th.einsum("gir,rs,gjs->gij", query, self.bilinear, key)  # [G, N, N]
        scores = scores - scores.max(dim=-1, keepdim=True).values.detach()  # stability only
        positive = labels.unsqueeze(2) == labels.unsqueeze(1)  # [G, N, N], diagonal always True
        log_positive = th.logsumexp(scores.masked_fill(~positive, float("-inf")), dim=-1)
        log_all = th.logsumexp(scores, dim=-1)
        return (log_all - log_positive).mean()

    @th.no_grad()
    def momentum_update(self, role_encoder: RoleEncoder) -> None:
        for key_param, param in zip(self.key_encoder.parameters(), role_encoder.parameters()):
            key_param.lerp_(param, self.momentum_tau)

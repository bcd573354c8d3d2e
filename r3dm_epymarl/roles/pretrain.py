"""Pre-training of the trajectory encoder: predict the next observation and the agent's identity."""
import torch as th
from torch import nn


class TrajectoryDecoder(nn.Module):
    """e_t -> [o_{t+1}, one-hot(agent id)]: Linear -> ReLU -> Linear."""

    def __init__(self, embed_dim: int, obs_dim: int, n_agents: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, obs_dim + n_agents))

    def forward(self, e: th.Tensor) -> th.Tensor:
        return self.net(e)


class PretrainLoss(nn.Module):
    name = "loss_pretrain"

    def __init__(self, embed_dim: int, obs_dim: int, n_agents: int):
        super().__init__()
        self.decoder = TrajectoryDecoder(embed_dim, obs_dim, n_agents)

    def forward(self, e: th.Tensor, obs: th.Tensor, mask: th.Tensor) -> th.Tensor:
        """e [B, T, N, E] from steps 0..T-1, obs [B, T+1, N, O], mask [B, T, 1] -> masked MSE."""
        B, T, N, _ = e.shape
        ids = th.eye(N, device=e.device, dtype=obs.dtype).expand(B, T, N, N)
        target = th.cat([obs[:, 1:T + 1], ids], dim=-1)  # [B, T, N, O + N]
        err = (self.decoder(e) - target).pow(2).mean(-1)  # [B, T, N]
        weights = mask.expand(B, T, N)
        return (err * weights).sum() / weights.sum().clamp(min=1)

"""A new intrinsic-reward term in one file: random network distillation (RND) on each agent's next observation.

Use it without changing the plug-in:
    PYTHONPATH=docs/examples r3dm-epymarl run --config=r3dm --env-config=smax \
        with env_args.map_name=3m 'intrinsic_terms=["rnd_term:RNDReward"]'
(that is ACORM + this reward; add "policy_kl" / "world_model" to the list to combine them).
"""
import torch as th
from torch import nn

from r3dm_epymarl.config import Key
from r3dm_epymarl.intrinsic.base import IntrinsicTerm, UpdateContext
from r3dm_epymarl.modules.optim import adam


class RNDReward(IntrinsicTerm):
    name = "rnd"  # its module key in checkpoints and its time_rnd_* metrics
    log_name = "r_int_rnd"  # logged as r_int_rnd_mean / r_int_rnd_std
    keys = {  # read as args.rnd_*; a config without them gets these defaults
        "rnd_hidden": Key(int, "width of the random target and the predictor", minimum=1, default=64),
        "rnd_lr": Key(float, "Adam lr of the predictor", minimum=0.0, default=1e-3),
    }

    def __init__(self, args, obs_dim: int):
        super().__init__(args, obs_dim)  # checks `keys`, fills in defaults
        def mlp():
            return nn.Sequential(nn.Linear(obs_dim, args.rnd_hidden), nn.ReLU(), nn.Linear(args.rnd_hidden, args.rnd_hidden))
        self.target = mlp().requires_grad_(False)  # fixed random features: never trained
        self.predictor = mlp()
        self.optimiser = adam(self.predictor.parameters(), args.rnd_lr)

    def optimisers(self):  # so its state travels with checkpoints and resumes exactly
        return [self.optimiser]

    def _error(self, ctx: UpdateContext) -> th.Tensor:
        """[B, T-1, N]: the predictor's squared error on the features of o_{t+1}."""
        next_obs = ctx.batch["obs"][:, 1:].float()  # [B, T-1, N, O]
        return (self.predictor(next_obs) - self.target(next_obs)).pow(2).mean(-1)

    def update(self, ctx: UpdateContext) -> dict:
        """One step of the predictor on this update's valid steps (the learner calls it before `reward`)."""
        weights = ctx.mask  # [B, T-1, 1]
        error = self._error(ctx)
        loss = (error * weights).sum() / (weights.sum() * error.shape[-1]).clamp(min=1)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        return {"loss_rnd": loss.detach()}  # a tensor: it becomes a float only at a log step

    def reward(self, ctx: UpdateContext) -> th.Tensor:
        """[B, T-1, 1]: mean over agents of how novel o_{t+1} still is (called under no_grad)."""
        return self._error(ctx).mean(-1, keepdim=True) * ctx.mask

"""The intrinsic-reward hook: one small module per reward term, composed by config.

A term reads one update's context (the batch plus what the learner already computed: Q, roles),
returns a reward [B, T-1, 1] aligned with `batch["reward"][:, :-1]` (no gradient, never stored),
trains its own parameters once per update, and logs under its own names. The learner sums the
terms and adds `alpha * r_int.detach()` to the TD target in exactly one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch as th
from torch import nn


def action_softmax(x: th.Tensor) -> th.Tensor:
    """softmax over the last dim (actions), for rewards computed without gradient.

    th.softmax has no vectorised CPU path for a last dim that is not a multiple of the vector width
    (SMAC's 15 actions): it was 4x slower than this on [32, 76, 8, 8, 15] here."""
    e = (x - x.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def action_log_softmax(x: th.Tensor) -> th.Tensor:
    """log of `action_softmax`, over the last dim."""
    shifted = x - x.amax(-1, keepdim=True)
    return shifted.sub_(shifted.exp().sum(-1, keepdim=True).log_())


@dataclass
class UpdateContext:
    """What a term may read during one learner update; tensors are shared, never recomputed."""

    batch: Any  # the host's EpisodeBatch: obs [B,T,N,O], actions_onehot [B,T,N,A], avail_actions, ...
    q: th.Tensor  # [B, T, N, A] online agent Q-values (carries gradient: detach before use)
    z: th.Tensor | None  # [B, T, N, R] role embeddings from the same unroll (detach before use); None without roles
    mask: th.Tensor  # [B, T-1, 1] steps that are filled and not after a terminal
    mac: Any  # the learner's controller: re-evaluate the agent, e.g. with swapped roles
    t_env: int
    extras: dict = field(default_factory=dict)  # the rest of the controller's unroll (e.g. CDS's hidden states)


class IntrinsicTerm(nn.Module):
    """Base class. Subclasses set `name` (registry key) and `log_name` (e.g. "r_int_policy")."""

    name = ""
    log_name = ""
    keys: dict = {}  # config key -> r3dm_epymarl.config.Key (type, default, range, doc) this term reads
    # What else it reads (intrinsic/contract.py): unroll outputs ("z", extras keys such as "hidden"),
    # "agent.<method>", "args.<key>" outside `keys`; checked against the controller before Sacred starts.
    needs: tuple = ()

    def __init__(self, args, obs_dim: int):
        super().__init__()
        from r3dm_epymarl.config import validate

        # The learner checked these already (before building anything); a term built on its own, e.g. in
        # a test, gets the same check, and the declared defaults for what `args` lacks.
        validate(args, self.keys, where=f"intrinsic term '{self.name}'", fill_defaults=True)
        self.args = args
        self.obs_dim = obs_dim
        # Parts of the last reward worth logging on their own, name -> [B, T-1, 1] (e.g. r_int_obs).
        self.reward_parts: dict[str, th.Tensor] = {}

    def reward(self, ctx: UpdateContext) -> th.Tensor:
        """[B, T-1, 1] reward for each step; the learner calls this under torch.no_grad()."""
        raise NotImplementedError

    def update(self, ctx: UpdateContext) -> dict[str, th.Tensor]:
        """Train this term's own parameters once per learner update (before `reward` is computed);
        return its named losses as 0-dim tensors, detached and left on the device (the learner reads
        them at its log steps: no host sync here; floats are accepted too)."""
        return {}

    def pretrain_update(self, ctx: UpdateContext, hard_target: bool) -> dict[str, th.Tensor]:
        """One step during the learner's role pre-training (ctx.q is None then); hard_target: the phase
        whose targets are hard copies (f_e pre-training) rather than EMA (contrastive pre-training)."""
        return {}

    # Optimisers live inside the term; their state travels with `state_dict()` through these hooks,
    # so one `term.state_dict()` round-trips everything the term owns.
    def optimisers(self) -> list[th.optim.Optimizer]:
        return []

    def get_extra_state(self):
        return {"optimisers": [o.state_dict() for o in self.optimisers()]}

    def set_extra_state(self, state):
        for optimiser, saved in zip(self.optimisers(), state.get("optimisers", [])):
            optimiser.load_state_dict(saved)

"""R3DM's dynamics term: how much better a role-conditioned world model predicts the future.

Two RSSMs, each shared across agents (B * N streams, no agent id):
    p(o_{t+1} | tau_t, a_t)        role-agnostic (`model`)
    q(o_{t+1} | tau_t, z_t, a_t)   role-conditioned (`role_model`; z_t enters the sequence model that
                                   steps to t+1 AND the decoder of o_{t+1}, i.e. o_t is decoded with
                                   z_{t-1}: z_t is computed from o_t and must not see its own target)
Both are trained once per learner update (before the reward, as published); their EMA target copies
compute the reward

    r_obs_t = mean_i 1/K_t sum_j [ ||o_hat_j - symlog o_{t+j}||^2 - beta1 ||o_hat_role_j - symlog o_{t+j}||^2 ]
    r_lat_t = mean_i beta3/K_t sum_j [ -log p_prior(s_hat_j) + beta1 log p_prior_role(s_hat_role_j) ]

with k-step open-loop imagination from the filtered state at t using the logged actions and
K_t = min(k, steps left in the episode). As in the published code the latents are SAMPLED while
filtering and imagining (a stochastic reward); `wm_reward_sample: False` uses modes instead.

`wm_action` chooses the action the step t -> t+1 is fed (training, filtering and imagination alike):
`current` a_t (the paper); `published` what the published code feeds, its buffer's "last action" of
index t+1: a_{t-1} (zeros at t = 0), except a_t on each episode's final transition (`published_actions`).
"""
from __future__ import annotations

import copy

import torch as th

from r3dm_epymarl.config import Key
from r3dm_epymarl.intrinsic.base import IntrinsicTerm, UpdateContext
from r3dm_epymarl.intrinsic.policy_kl import BETA1
from r3dm_epymarl.modules.sync import host_read
from r3dm_epymarl.modules.optim import adam
from r3dm_epymarl.world_model import accel
from r3dm_epymarl.world_model.predict import PLAIN_LOOPS, predict as predict_k_steps
from r3dm_epymarl.world_model.rssm import RSSM

LOSS_NAMES = ("recon", "dyn", "rep")
WM_ACTIONS = ("current", "published")


def observed(batch) -> th.Tensor:
    """[B, T]: 1 where an observation exists, i.e. filled and no later than one step after the first
    terminal (the final observation after a terminal is a valid prediction target; nothing beyond)."""
    valid = batch["filled"][..., 0].float()  # [B, T]
    ended = batch["terminated"][..., 0].float().cummax(1).values  # [B, T]: 1 from the first terminal on
    valid = valid.clone()
    valid[:, 2:] = valid[:, 2:] * (1 - ended[:, :-2])
    return valid


def published_actions(actions: th.Tensor, obs_valid: th.Tensor) -> th.Tensor:
    """actions [B, T, N, A] (a_t at t), obs_valid [B, T] -> the actions the published world models are fed
    at the step t -> t+1, [B, T, N, A]: the buffer's stored "last action" of index t+1.

    The published runner stores, with step t's transition, the previous step's one-hot at index t+1
    (so index t holds a_{t-2}, zeros at indices 0 and 1), and the episode's last store writes a_{L-1}
    at the final index L. Hence: a_{t-1} for t >= 1, zeros at t = 0, and a_t at t = L-1.
    """
    fed = th.cat([th.zeros_like(actions[:, :1]), actions[:, :-1]], 1)  # a_{t-1}
    prefix = obs_valid.cumprod(1)
    # final transition t: o_{t+1} is the episode's last observation
    final = prefix[:, 1:] - th.cat([prefix[:, 2:], prefix.new_zeros(prefix.shape[0], 1)], 1)  # [B, T-1]
    final = th.cat([final, final.new_zeros(final.shape[0], 1)], 1).bool()[..., None, None]  # [B, T, 1, 1]
    return th.where(final, actions, fed)


def imagination_steps(obs_valid: th.Tensor, start_mask: th.Tensor, k: int) -> tuple[th.Tensor, th.Tensor]:
    """obs_valid [B, T], start_mask [B, T-1] -> (steps [k, B, T-1], K [B, T-1]).

    steps[j-1, b, t] = 1 if step t is a valid start and o_{t+1}, ..., o_{t+j} all exist;
    K[b, t] = sum_j steps = min(k, last valid index - t) on valid starts, 0 elsewhere.
    """
    B, T = obs_valid.shape
    padded = th.cat([obs_valid, obs_valid.new_zeros(B, k)], 1)  # [B, T+k]
    steps = th.stack([padded[:, j:j + T - 1] for j in range(1, k + 1)], 0)  # [k, B, T-1]
    steps = steps.cumprod(0) * start_mask.unsqueeze(0)
    return steps, steps.sum(0)


class WorldModelReward(IntrinsicTerm):
    needs = ("z", "args.role_embed_dim")  # the role-conditioned model reads z_t
    name = "world_model"
    log_name = "r_int_world_model"

    keys = {  # defaults: the published values (config_overrides/algs/r3dm.yaml comments each)
        "r3dm_beta1": BETA1,
        "r3dm_beta3": Key(float, "beta3: weight of the latent (prior log-prob) term", minimum=0.0, default=0.0),
        "wm_horizon": Key(int, "k: imagination steps", minimum=1, default=1),
        "wm_hidden": Key(int, "world-model MLP width", minimum=1, default=128),
        "wm_deter": Key(int, "deterministic state width", minimum=1, default=128),
        "wm_stoch": Key(int, "number of categorical latents", minimum=1, default=16),
        "wm_classes": Key(int, "classes per latent", minimum=2, default=16),
        "wm_unimix": Key(float, "uniform mix of the latent categoricals", minimum=0.0, default=0.01),
        "wm_free_bits": Key(float, "free bits of both KL terms", minimum=0.0, default=1.0),
        "wm_dyn_scale": Key(float, "weight of the dynamics KL", minimum=0.0, default=0.5),
        "wm_rep_scale": Key(float, "weight of the representation KL", minimum=0.0, default=0.1),
        "wm_lr": Key(float, "world-model Adam lr", minimum=0.0, default=1e-4),
        "wm_eps": Key(float, "world-model Adam eps", minimum=0.0, default=1e-8),
        "wm_grad_clip": Key(float, "world-model gradient-norm clip", minimum=0.0, default=1000.0),
        "wm_target_tau": Key(float, "EMA rate of the reward-computing target models (two steps per update)",
                             above=0.0, maximum=1.0, default=0.005),
        "wm_reward_sample": Key(bool, "sample the latents when computing the reward (published) or use modes",
                                default=True),
        "wm_fused": Key(bool, "train the world models and compute their reward through the accelerator (both "
                              "models in one loop, a hand-written backward); false: RSSM's plain step-by-step "
                              "recurrence with autograd (the reference; padded, so wm_skip_padding is not read)",
                        default=True),
        "wm_action": Key(str, "action fed at the world models' step t -> t+1: current = a_t (paper), published = "
                              "a_{t-1}, a_t on an episode's last step (the published buffer's last action)",
                         choices=WM_ACTIONS, default="current"),
        "wm_skip_padding": Key(bool, "the accelerated world models skip the batch's padded steps (same values to "
                                     "float rounding); false computes every padded slot", default=True),
    }

    def __init__(self, args, obs_dim: int):
        super().__init__(args, obs_dim)  # `keys` validated, any missing ones set to their defaults
        self.beta1, self.beta3, self.horizon = args.r3dm_beta1, args.r3dm_beta3, args.wm_horizon
        self.grad_clip, self.tau, self.reward_sample = args.wm_grad_clip, args.wm_target_tau, args.wm_reward_sample
        self.skip_padding, self.fused, self.action_input = args.wm_skip_padding, args.wm_fused, args.wm_action
        self._packed_for = None  # (ctx, Packing): one per update, shared by training and the reward
        kwargs = dict(
            obs_dim=obs_dim, act_dim=int(args.n_actions), hidden=args.wm_hidden, deter=args.wm_deter,
            stoch=args.wm_stoch, classes=args.wm_classes, unimix=args.wm_unimix, free_bits=args.wm_free_bits,
            dyn_scale=args.wm_dyn_scale, rep_scale=args.wm_rep_scale,
        )
        self.model = RSSM(role_dim=0, **kwargs)
        self.role_model = RSSM(role_dim=int(args.role_embed_dim), **kwargs)
        self.target_model = copy.deepcopy(self.model).requires_grad_(False)
        self.target_role_model = copy.deepcopy(self.role_model).requires_grad_(False)
        self.optimiser = adam(self.model.parameters(), args.wm_lr, eps=args.wm_eps)
        self.role_optimiser = adam(self.role_model.parameters(), args.wm_lr, eps=args.wm_eps)

    def optimisers(self) -> list[th.optim.Optimizer]:
        return [self.optimiser, self.role_optimiser]

    # --- inputs -------------------------------------------------------------------------------
    def _streams(self, ctx: UpdateContext):
        """Time-major agent streams: obs [T, M, O], actions [T, M, A] (the action fed at the step leaving
        t, per `wm_action`), z [T, M, R] (detached), M = B * N. Built padded, before any packing, so the
        padded and padding-free paths read the same actions."""
        batch = ctx.batch
        obs = batch["obs"]
        B, T, N, _ = obs.shape
        actions = batch["actions_onehot"]
        if self.action_input == "published":
            actions = published_actions(actions, observed(batch))
        to_streams = lambda x: x.float().transpose(0, 1).reshape(T, B * N, -1)  # noqa: E731
        return to_streams(obs), to_streams(actions), to_streams(ctx.z.detach()), (B, T, N)

    # --- training -----------------------------------------------------------------------------
    def losses(self, ctx: UpdateContext) -> tuple[dict[str, th.Tensor], dict[str, th.Tensor]]:
        """(agnostic, role) loss dicts (recon, dyn, rep, total; scalars with gradient); computes, never steps.

        Through the accelerator (`wm_fused`, one graph for both models; with `wm_skip_padding` on the
        valid steps only, the same values to float rounding) or each model's RSSM.loss in turn (the same
        values and sampling draws)."""
        obs, actions, z, (B, T, N) = self._streams(ctx)
        packing = self._packing(ctx)
        valid = None if packing is not None else observed(ctx.batch).t().unsqueeze(-1).expand(T, B, N).reshape(T, B * N)
        if not self.fused:
            return self.model.loss(obs, actions, None, valid), self.role_model.loss(obs, actions, z, valid)
        return tuple(accel.loss_many([self.model, self.role_model], obs, actions, [None, z], valid, packing=packing))

    def _packing(self, ctx: UpdateContext) -> accel.Packing | None:
        """The valid rows of this update's agent streams (the accelerator with wm_skip_padding), or None
        (every padded slot).

        In a host batch each episode's observed steps are a prefix (`filled` is one, and `observed` cuts
        at the first terminal), so one length per episode describes them; reading the B lengths is this
        term's one device sync per update (the loops over steps need them on the host)."""
        if not (self.skip_padding and self.fused):
            return None
        if self._packed_for is not None and self._packed_for[0] is ctx:
            return self._packed_for[1]
        valid = observed(ctx.batch)  # [B, T]
        B, T = valid.shape
        N = ctx.batch["obs"].shape[2]
        lengths = host_read(valid.cumprod(1).sum(1).long(), "episode lengths bound the padding-free world-model loops")
        packing = accel.Packing.from_lengths([n for n in lengths for _ in range(N)], T, valid.device)  # stream b * N + i
        self._packed_for = (ctx, packing)
        return packing

    def update(self, ctx: UpdateContext) -> dict[str, th.Tensor]:
        """One Adam step on each model, then the EMA target update; returns the loss parts (0-dim tensors).

        One backward of the sum of both losses gives each model exactly the gradient of its own loss
        (disjoint parameters); each model then clips its own gradient and takes its own step."""
        losses = self._train_step(ctx)
        # Published: one EMA step inside world-model training and one more after it, i.e. the targets
        # follow at about twice the nominal rate (1 - (1 - tau)^2); kept as published.
        self._update_targets()
        self._update_targets()
        return losses

    def _train_step(self, ctx: UpdateContext) -> dict[str, th.Tensor]:
        """One Adam step on each model (no target update); the loss parts (0-dim, on the device)."""
        agnostic, role = self.losses(ctx)
        self.optimiser.zero_grad(set_to_none=True)
        self.role_optimiser.zero_grad(set_to_none=True)
        (agnostic["total"] + role["total"]).backward()
        logged = []
        for model, optimiser, loss in ((self.model, self.optimiser, agnostic),
                                       (self.role_model, self.role_optimiser, role)):
            th.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
            optimiser.step()
            logged += [loss[name].detach() for name in LOSS_NAMES]
        names = [f"loss_wm_{n}" for n in LOSS_NAMES] + [f"loss_wm_role_{n}" for n in LOSS_NAMES]
        return dict(zip(names, logged))  # no device sync: they become floats at the learner's log step

    def pretrain_update(self, ctx: UpdateContext, hard_target: bool) -> dict[str, th.Tensor]:
        """One pre-training step (published: during f_e pre-training the targets are hard copies,
        during contrastive pre-training they take one EMA step)."""
        losses = self._train_step(ctx)
        if hard_target:
            self.target_model.load_state_dict(self.model.state_dict())
            self.target_role_model.load_state_dict(self.role_model.state_dict())
        else:
            self._update_targets()
        return losses

    @th.no_grad()
    def _update_targets(self):
        for target, online in ((self.target_model, self.model), (self.target_role_model, self.role_model)):
            for tp, p in zip(target.parameters(), online.parameters()):
                tp.lerp_(p, self.tau)

    # --- reward -------------------------------------------------------------------------------
    def predict(self, models: list[RSSM], obs: th.Tensor, actions: th.Tensor, roles_list, sample: bool = False,
                with_logp: bool = True, packing: accel.Packing | None = None):
        """k-step prediction from every start t = 0..T-2 (world_model/predict.py), per model
        (err [k, T-1, M], logp [k, T-1, M] or None), through the configured path: the accelerator
        (padding-free with `packing`) or each model's plain recurrence."""
        if not self.fused:
            return predict_k_steps(models, obs, actions, roles_list, self.horizon, sample, with_logp, PLAIN_LOOPS)
        if packing is not None:
            return accel.predict_packed(models, obs, actions, roles_list, self.horizon, packing, sample, with_logp)
        return predict_k_steps(models, obs, actions, roles_list, self.horizon, sample, with_logp, accel.FUSED_LOOPS)

    def reward(self, ctx: UpdateContext) -> th.Tensor:
        """[B, T-1, 1] r_obs + r_lat from the target models; sets reward_parts."""
        with th.no_grad():
            obs, actions, z, (B, T, N) = self._streams(ctx)
            steps, K = imagination_steps(observed(ctx.batch), ctx.mask[..., 0].float(), self.horizon)
            models, packing = [self.target_model, self.target_role_model], self._packing(ctx)
            self._packed_for = None  # the update's last use
            # beta3 = 0 (the published runs): the latent term is not computed (published: computed, times 0)
            with_logp = self.beta3 != 0
            (err, logp), (err_role, logp_role) = self.predict(models, obs, actions, [None, z], self.reward_sample,
                                                              with_logp, packing)
            k = self.horizon
            per_step = lambda x: x.reshape(k, T - 1, B, N).permute(0, 2, 1, 3)  # [k, B, T-1, N]  # noqa: E731
            on = (steps > 0).unsqueeze(-1)  # [k, B, T-1, 1]
            scale = 1.0 / K.clamp(min=1.0)  # [B, T-1]
            r_obs = th.where(on, per_step(err - self.beta1 * err_role), 0.0).sum(0).mean(-1) * scale  # [B, T-1]
            if with_logp:
                lat_term = per_step(-logp + self.beta1 * logp_role)
                r_lat = self.beta3 * th.where(on, lat_term, 0.0).sum(0).mean(-1) * scale
            else:
                r_lat = th.zeros_like(r_obs)
            r_obs, r_lat = r_obs.unsqueeze(-1), r_lat.unsqueeze(-1)  # [B, T-1, 1]
            self.reward_parts = {"r_int_obs": r_obs, "r_int_lat": r_lat}
            return r_obs + r_lat

"""The shared role-aware Q learner; as configured by acorm.yaml it is ACORM (spec section 1).

One update: unroll roles and Q once over whole episodes, double-Q TD through the (attention) mixer,
then every `contrastive_interval` updates one contrastive role step on the same embeddings, then the
target and schedule bookkeeping. Each loss is its own module and is logged under its own name.
"""
from __future__ import annotations

import copy
import time

import torch as th
from torch.optim import Adam
from torch.optim.lr_scheduler import StepLR

from r3dm_epymarl.config import Key, validate
from r3dm_epymarl.errors import ConfigError, TrainingDiverged, for_sacred
from r3dm_epymarl.intrinsic import build_terms
from r3dm_epymarl.intrinsic.base import UpdateContext
from r3dm_epymarl.roles.contrastive import ContrastiveRoleLoss
from r3dm_epymarl.roles.kmeans import batched_kmeans
from r3dm_epymarl.roles.pretrain import PretrainLoss

# Every key this learner (with RoleMAC, RoleRNNAgent, AttentionQMixer) reads, with its type.
ROLE_Q_KEYS = {
    "hidden_dim": Key(int, "agent GRU width", minimum=1),
    "traj_embed_dim": Key(int, "trajectory embedding e width", minimum=1),
    "role_embed_dim": Key(int, "role embedding z width", minimum=1),
    "role_clusters": Key(int, "|M|, K-means clusters per (episode, step)", minimum=1),
    "kmeans_iters": Key(int, "Lloyd iterations", minimum=1),
    "kmeans_n_init": Key(int, "K-means restarts, best inertia kept", minimum=1),
    "contrastive_interval": Key(int, "learner updates between contrastive steps; 0 disables", minimum=0),
    "role_momentum_tau": Key(float, "EMA rate of the key encoder", minimum=0.0),
    "pretrain_encoder_steps": Key(int, "f_e + decoder pre-training updates; 0 disables", minimum=0),
    "pretrain_contrastive_steps": Key(int, "contrastive pre-training updates; 0 disables", minimum=0),
    "lr": Key(float, "Adam lr, agent Q + mixer", minimum=0.0),
    "role_lr": Key(float, "Adam lr, f_e + f_r under the TD loss", minimum=0.0),
    "contrastive_lr": Key(float, "Adam lr, f_r + W under the contrastive loss", minimum=0.0),
    "pretrain_lr": Key(float, "Adam lr, f_e + decoder pre-training", minimum=0.0),
    "lr_decay_interval": Key(int, "StepLR step size in updates", minimum=1),
    "lr_decay_rate": Key(float, "StepLR factor", minimum=0.0),
    "grad_norm_clip": Key(float, "gradient-norm clip per parameter group", minimum=0.0),
    "target_update_interval_or_tau": Key(float, ">1 hard-update interval, <=1 soft rate", minimum=0.0),
    "double_q": Key(bool, "double Q-learning"),
    "gamma": Key(float, "discount", minimum=0.0),
    "standardise_rewards": Key(bool, "not supported here", choices=(False,)),
    "standardise_returns": Key(bool, "not supported here", choices=(False,)),
    "obs_agent_id": Key(bool, "unused: the role replaces the agent id", choices=(False,)),
    "mixer": Key(str, "mixer registry key"),
    "att_heads": Key(int, "attention heads in attn_qmix", minimum=1),
    "att_embed_dim": Key(int, "attention width in attn_qmix", minimum=1),
    "att_out_dim": Key(int, "attention output width per agent in attn_qmix", minimum=1),
    "mixing_embed_dim": Key(int, "mixing network width", minimum=1),
    "hypernet_embed": Key(int, "hypernetwork width", minimum=1),
}


class RoleQLearner:
    _host_registry = None  # kind -> registry dict; bound per host by Host.adapt
    schema = ROLE_Q_KEYS

    def __init__(self, mac, scheme, logger, args):
        try:
            self.check_args(args)
        except ConfigError as error:  # inside a host's Sacred run: one line, no traceback
            raise for_sacred(error) from None
        self.args, self.mac, self.logger = args, mac, logger
        self.n_agents = args.n_agents

        self.mixer = self._host_registry("mixers")[args.mixer](args)
        self.target_mixer = copy.deepcopy(self.mixer)
        self.target_mac = copy.deepcopy(mac)  # target f_e, f_r and agent, updated together
        obs_dim = mac.trajectory_input_dim - args.n_actions
        self.contrastive = ContrastiveRoleLoss(mac.roles.role, args.role_embed_dim, args.role_momentum_tau)
        self.pretrain = PretrainLoss(args.traj_embed_dim, obs_dim, args.n_agents)
        self.intrinsic = build_terms(args, obs_dim)  # empty for ACORM

        # Parameter groups, each with its own optimiser and its own gradient clip (published ACORM).
        self.q_params = [*mac.agent.parameters(), *self.mixer.parameters()]
        self.role_params = [*mac.roles.parameters()]
        self.contrastive_params = [*mac.roles.role.parameters(), self.contrastive.bilinear]
        self.pretrain_params = [*mac.roles.trajectory.parameters(), *self.pretrain.parameters()]
        self.optimiser = Adam(self.q_params, lr=args.lr)
        self.role_optimiser = Adam(self.role_params, lr=args.role_lr)
        self.contrastive_optimiser = Adam(self.contrastive_params, lr=args.contrastive_lr)
        self.pretrain_optimiser = Adam(self.pretrain_params, lr=args.pretrain_lr)
        self.schedulers = [StepLR(opt, step_size=args.lr_decay_interval, gamma=args.lr_decay_rate)
                           for opt in (self.optimiser, self.role_optimiser)]

        self.training_steps = 0
        self.last_target_update_step = 0
        self.pretrained = False
        self.log_stats_t = -args.learner_log_interval - 1
        self.kmeans_generator = None  # created on the batch's device at first use, seeded by args.seed
        self.stats: dict[str, float] = {}

    def check_args(self, args):
        validate(args, self.schema, where=f"--config={getattr(args, 'name', '?')}")
        if args.role_clusters > args.n_agents:
            raise ConfigError(f"config key 'role_clusters' is {args.role_clusters} but the env has only "
                              f"{args.n_agents} agents; set role_clusters <= {args.n_agents}")
        if not getattr(args, "state_shape", None):
            raise ConfigError("this env provides no global state (state_shape is empty) and the mixer needs "
                              "one; pick an env with a state")

    # --- one update ---------------------------------------------------------------------------
    def train(self, batch, t_env: int, episode_num: int):
        if not self.pretrained:
            self._pretrain(batch)
            self.pretrained = True
        update_start = time.perf_counter()
        rewards = batch["reward"][:, :-1]  # [B, T-1, 1]
        actions = batch["actions"][:, :-1]  # [B, T-1, N, 1]
        terminated, mask = td_mask(batch)
        avail_actions = batch["avail_actions"]

        q, e, z = self.mac.unroll(batch)  # [B, T, N, A], [B, T, N, E], [B, T, N, R]
        with th.no_grad():
            target_q, _, target_z = self.target_mac.unroll(batch)
            target_q[avail_actions == 0] = -9999999
            if self.args.double_q:
                greedy = q.detach().masked_fill(avail_actions == 0, -9999999).argmax(-1, keepdim=True)
                target_max = target_q.gather(-1, greedy).squeeze(-1)  # [B, T, N]
            else:
                target_max = target_q.max(-1).values
            # The recurrent mixer is unrolled from t = 0 for the target too; step 0 is then dropped.
            target_tot = self._mix(self.target_mixer, target_max, batch["state"], target_z)[:, 1:]

        chosen = q[:, :-1].gather(-1, actions).squeeze(-1)  # [B, T-1, N]
        q_tot = self._mix(self.mixer, chosen, batch["state"][:, :-1], z[:, :-1])

        if self.intrinsic:
            r_int = self.intrinsic_reward(UpdateContext(batch, q, z, mask, self.mac, t_env))
            rewards = rewards + self.intrinsic_alpha(t_env) * r_int.detach()
        targets = rewards + self.args.gamma * (1 - terminated) * target_tot
        td_error = (q_tot - targets.detach()) * mask
        loss_td = td_error.pow(2).sum() / mask.sum()

        self.optimiser.zero_grad()
        self.role_optimiser.zero_grad()
        loss_td.backward()
        grad_norm_q = th.nn.utils.clip_grad_norm_(self.q_params, self.args.grad_norm_clip)
        grad_norm_role = th.nn.utils.clip_grad_norm_(self.role_params, self.args.grad_norm_clip)
        self.optimiser.step()
        self.role_optimiser.step()
        for scheduler in self.schedulers:
            scheduler.step()
        self.training_steps += 1

        interval = self.args.contrastive_interval
        if interval > 0 and self.training_steps % interval == 0:
            self._contrastive_step(e[:, :-1].detach(), mask)
        self._update_targets()
        self.stats["time_update_ms"] = 1000 * (time.perf_counter() - update_start)

        if t_env - self.log_stats_t >= self.args.learner_log_interval:
            n = mask.sum().item()
            self.stats.update({
                "loss_td": loss_td.item(),
                "grad_norm_q": grad_norm_q.item(),
                "grad_norm_role": grad_norm_role.item(),
                "td_error_abs": td_error.abs().sum().item() / n,
                "q_taken_mean": (chosen * mask).sum().item() / (n * self.n_agents),
                "target_mean": (targets * mask).sum().item() / n,
                "lr": self.optimiser.param_groups[0]["lr"],
            })
            self._flush_stats(t_env)
            self.log_stats_t = t_env

    # --- the intrinsic-reward hook ------------------------------------------------------------
    def intrinsic_reward(self, ctx: UpdateContext) -> th.Tensor:
        """Sum of the configured terms' rewards [B, T-1, 1]; each term then trains its own models."""
        total = th.zeros_like(ctx.mask)
        for name, term in self.intrinsic.items():
            start = time.perf_counter()
            with th.no_grad():
                reward = term.reward(ctx)
            self._check_finite(term.log_name, reward, ctx.t_env)
            total = total + reward
            self.stats[f"time_{name}_reward_ms"] = 1000 * (time.perf_counter() - start)
            for part, value in {term.log_name: reward, **term.reward_parts}.items():
                self.stats[f"{part}_mean"], self.stats[f"{part}_std"] = _masked_mean_std(value, ctx.mask)
            start = time.perf_counter()
            losses = term.update(ctx)
            for loss_name, value in losses.items():
                self._check_finite(loss_name, th.tensor(value), ctx.t_env)
            self.stats.update(losses)
            self.stats[f"time_{name}_update_ms"] = 1000 * (time.perf_counter() - start)
        return total

    def intrinsic_alpha(self, t_env: int) -> float:
        """alpha, optionally annealed linearly to 0 over `intrinsic_anneal_steps` from the start step."""
        alpha, length = self.args.intrinsic_alpha, self.args.intrinsic_anneal_steps
        if length <= 0:
            return alpha
        return alpha * min(1.0, max(0.0, 1.0 - (t_env - self.args.intrinsic_anneal_start) / length))

    def _check_finite(self, name: str, value: th.Tensor, t_env: int) -> None:
        if th.isfinite(value).all():
            return
        self.stats[name] = float("nan")
        self._flush_stats(t_env)  # what was computed so far reaches Sacred before the run stops
        raise for_sacred(TrainingDiverged(
            f"'{name}' became NaN or inf at t_env={t_env}; the run stopped (metrics so far are saved). "
            "Lower intrinsic_alpha, wm_lr or lr, or check the environment's observations"))

    def _flush_stats(self, t_env: int) -> None:
        for name, value in self.stats.items():
            self.logger.log_stat(name, value, t_env)
        self.stats.clear()

    def _mix(self, mixer, qs, states, roles):
        if getattr(mixer, "needs_roles", False):
            return mixer(qs, states, roles)
        return mixer(qs, states)

    # --- role learning ------------------------------------------------------------------------
    def _cluster(self, groups):
        if self.kmeans_generator is None:
            self.kmeans_generator = th.Generator(device=groups.device).manual_seed(int(self.args.seed))
        return batched_kmeans(groups, self.args.role_clusters, n_iter=self.args.kmeans_iters,
                              n_init=self.args.kmeans_n_init, generator=self.kmeans_generator).labels

    def _contrastive_step(self, e, mask):
        """e [B, T, N, E] (no gradient), mask [B, T, 1]: one step on f_r and W over active (b, t)."""
        groups = e[mask[..., 0] > 0]  # [G, N, E]
        labels = self._cluster(groups)  # [G, N]
        loss = self.contrastive(self.mac.roles.role, groups, labels)
        self.contrastive_optimiser.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(self.contrastive_params, self.args.grad_norm_clip)
        self.contrastive_optimiser.step()
        self.contrastive.momentum_update(self.mac.roles.role)
        sizes = th.nn.functional.one_hot(labels, self.args.role_clusters).sum(1).float()  # [G, K]
        sizes = sizes.sort(dim=-1, descending=True).values.mean(0)
        self.stats[self.contrastive.name] = loss.item()
        for k, size in enumerate(sizes.tolist()):
            self.stats[f"role_cluster_size_{k}"] = size  # mean size of the k-th largest cluster
        return loss.item()

    def _pretrain(self, batch):
        """Before the first TD update: f_e + decoder, then the contrastive head (counts from config)."""
        _, mask = td_mask(batch)
        trajectory = self.mac.roles.trajectory
        x = self.mac.trajectory_inputs(batch)  # [B, T, N, O+A]
        for _ in range(self.args.pretrain_encoder_steps):
            loss = self.pretrain(trajectory.unroll(x)[:, :-1], batch["obs"], mask)
            self.pretrain_optimiser.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.pretrain_params, self.args.grad_norm_clip)
            self.pretrain_optimiser.step()
            self.stats[self.pretrain.name] = loss.item()
        if self.args.pretrain_contrastive_steps and self.args.contrastive_interval > 0:
            with th.no_grad():
                e = trajectory.unroll(x)[:, :-1]
            for _ in range(self.args.pretrain_contrastive_steps):
                self._contrastive_step(e, mask)
        self.target_mac.load_state(self.mac)  # targets start from the pre-trained encoders

    # --- targets, devices, checkpoints --------------------------------------------------------
    def _update_targets(self):
        rate = self.args.target_update_interval_or_tau
        if rate > 1:
            if self.training_steps - self.last_target_update_step >= rate:
                self.target_mac.load_state(self.mac)
                self.target_mixer.load_state_dict(self.mixer.state_dict())
                self.last_target_update_step = self.training_steps
        else:
            with th.no_grad():
                for target, online in ((self.target_mac.agent, self.mac.agent),
                                       (self.target_mac.roles, self.mac.roles),
                                       (self.target_mixer, self.mixer)):
                    for tp, p in zip(target.parameters(), online.parameters()):
                        tp.lerp_(p, rate)

    def cuda(self):
        for module in (self.mac, self.target_mac, self.mixer, self.target_mixer, self.contrastive, self.pretrain,
                       self.intrinsic):
            module.cuda()

    def _checkpoint(self) -> dict:
        return {
            "mixer": self.mixer.state_dict(),
            "target_mixer": self.target_mixer.state_dict(),
            "target_agent": self.target_mac.agent.state_dict(),
            "target_roles": self.target_mac.roles.state_dict(),
            "contrastive": self.contrastive.state_dict(),
            "pretrain": self.pretrain.state_dict(),
            "intrinsic": self.intrinsic.state_dict(),  # each term's models, targets and optimisers
            "optimisers": [o.state_dict() for o in self._optimisers()],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "counters": {"training_steps": self.training_steps, "pretrained": self.pretrained,
                         "last_target_update_step": self.last_target_update_step},
            "kmeans_rng": None if self.kmeans_generator is None else self.kmeans_generator.get_state(),
        }

    def _optimisers(self):
        return [self.optimiser, self.role_optimiser, self.contrastive_optimiser, self.pretrain_optimiser]

    def save_models(self, path):
        self.mac.save_models(path)
        th.save(self._checkpoint(), f"{path}/learner.th")

    def load_models(self, path):
        self.mac.load_models(path)
        state = th.load(f"{path}/learner.th", map_location="cpu", weights_only=False)
        self.mixer.load_state_dict(state["mixer"])
        self.target_mixer.load_state_dict(state["target_mixer"])
        self.target_mac.agent.load_state_dict(state["target_agent"])
        self.target_mac.roles.load_state_dict(state["target_roles"])
        self.contrastive.load_state_dict(state["contrastive"])
        self.pretrain.load_state_dict(state["pretrain"])
        self.intrinsic.load_state_dict(state["intrinsic"])
        for optimiser, saved in zip(self._optimisers(), state["optimisers"]):
            optimiser.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        counters = state["counters"]
        self.training_steps = counters["training_steps"]
        self.pretrained = counters["pretrained"]
        self.last_target_update_step = counters["last_target_update_step"]
        if state["kmeans_rng"] is not None:
            device = next(self.mixer.parameters()).device
            self.kmeans_generator = th.Generator(device=device)
            self.kmeans_generator.set_state(state["kmeans_rng"])


def _masked_mean_std(value: th.Tensor, mask: th.Tensor) -> tuple[float, float]:
    """Mean and std of value [B, T-1, 1] over the unmasked steps."""
    n = mask.sum().clamp(min=1)
    mean = (value * mask).sum() / n
    var = ((value - mean).pow(2) * mask).sum() / n
    return mean.item(), var.sqrt().item()


def td_mask(batch):
    """(terminated [B, T-1, 1], mask [B, T-1, 1]): steps that are filled and not after a terminal."""
    terminated = batch["terminated"][:, :-1].float()
    mask = batch["filled"][:, :-1].float().clone()  # .float() is a view when filled is float already
    mask[:, 1:] = mask[:, 1:] * (1 - terminated[:, :-1])
    return terminated, mask

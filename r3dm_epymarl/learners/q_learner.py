"""The shared value-decomposition Q learner with the intrinsic-reward hook.

One update: unroll the controller once over whole episodes, train the configured intrinsic terms' own
models on it (`train_terms`), then compute the losses (`losses`, which steps nothing): the target
unroll, double-Q TD through the mixer with `alpha * r_int.detach()` from the terms, the controller's
auxiliary losses; then one step per parameter group (each with its own Adam, clip and StepLR) and
target bookkeeping. Subclasses add parameter groups and work before / after the TD step:
RoleQLearner (ACORM, R3DM) and CDSLearner.
"""
from __future__ import annotations

import contextlib
import copy
import time

import torch as th
from torch.optim.lr_scheduler import StepLR

from r3dm_epymarl.config import Key, validate
from r3dm_epymarl.errors import ConfigError, TrainingDiverged, for_sacred
from r3dm_epymarl.intrinsic import build_terms, term_keys
from r3dm_epymarl.intrinsic.contract import check_terms
from r3dm_epymarl.intrinsic.base import UpdateContext
from r3dm_epymarl.learners.divergence import DivergenceWatch
from r3dm_epymarl.modules.optim import adam
from r3dm_epymarl.modules.precision import PRECISIONS, at_least_fp32, autocast

# Keys every learner built on this one reads, with their types.
Q_KEYS = {
    "hidden_dim": Key(int, "agent GRU width", minimum=1),
    "lr": Key(float, "Adam lr, agent Q + mixer", minimum=0.0),
    "lr_decay_interval": Key(int, "StepLR step size in updates", minimum=1),
    "lr_decay_rate": Key(float, "StepLR factor", minimum=0.0),
    "grad_norm_clip": Key(float, "gradient-norm clip per parameter group", minimum=0.0),
    "target_update_interval_or_tau": Key(float, ">1 hard-update interval, <=1 soft rate", minimum=0.0),
    "double_q": Key(bool, "double Q-learning"),
    "gamma": Key(float, "discount", minimum=0.0),
    "standardise_rewards": Key(bool, "not supported here", choices=(False,)),
    "standardise_returns": Key(bool, "not supported here", choices=(False,)),
    "mixer": Key(str, "mixer registry key"),
    "mixing_embed_dim": Key(int, "mixing network width", minimum=1),
    "hypernet_embed": Key(int, "hypernetwork width", minimum=1),
    "precision": Key(str, "fp32, or bf16: forward passes under autocast(bf16), fp32 master weights "
                          "(modules/precision.py)", choices=PRECISIONS),
}

# Keys of the intrinsic-reward hook, for learners whose YAML configures terms.
INTRINSIC_KEYS = {
    "intrinsic_terms": Key(list, "intrinsic reward terms ([] = none): names in intrinsic/__init__.py's TERMS "
                                 "or 'package.module:Class' of your own (checked by term_keys)"),
    "intrinsic_alpha": Key(float, "alpha: weight of r_int in the TD target", minimum=0.0),
    "intrinsic_anneal_start": Key(int, "t_env where alpha starts its linear decay to 0", minimum=0),
    "intrinsic_anneal_steps": Key(int, "length of that decay in env steps; 0 = no anneal", minimum=0),
}


class HookedQLearner:
    _host_registry = None  # kind -> registry dict; bound per host by Host.adapt
    schema = Q_KEYS
    # A probe for benchmarks: each part of an update ("<term> update", "<term> reward") runs inside
    # `profile_part(part)`; set it on an instance to time or count a part. A no-op by default.
    profile_part = staticmethod(lambda part: contextlib.nullcontext())

    def __init__(self, mac, scheme, logger, args):
        try:
            self.check_args(args)
        except ConfigError as error:  # inside a host's Sacred run: one line, no traceback
            raise for_sacred(error) from None
        self.args, self.mac, self.logger = args, mac, logger
        self.n_agents = args.n_agents
        self.device_type = "cuda" if getattr(args, "use_cuda", False) else "cpu"
        self.mixer = self._host_registry("mixers")[args.mixer](args)
        self.target_mixer = copy.deepcopy(self.mixer)
        self.target_mac = copy.deepcopy(mac)  # every network of the controller, updated together
        self.intrinsic = build_terms(self.term_entries(args), args, mac.obs_dim)
        self.build(args)

        # One Adam, one gradient clip and one StepLR per parameter group of the TD loss.
        self.td_groups = self.td_parameter_groups(args)
        self.td_optimisers = {name: adam(params, lr) for name, (params, lr) in self.td_groups.items()}
        self.schedulers = [StepLR(opt, step_size=args.lr_decay_interval, gamma=args.lr_decay_rate)
                           for opt in self.td_optimisers.values()]
        self.training_steps = 0
        self.last_target_update_step = 0
        self.ready = False  # set at the first TD update (after any pre-training)
        self.log_stats_t = -args.learner_log_interval - 1
        # name -> float or 0-dim tensor: values stay on the device until a log step reads them all at once
        self.stats: dict[str, float | th.Tensor] = {}
        self._context = None  # (unrolled, UpdateContext) of the update in progress
        self.divergence = DivergenceWatch()  # NaN / inf of the losses, gradients and intrinsic terms, read at log steps

    # --- what subclasses extend -------------------------------------------------------------------
    def check_args(self, args):
        where = f"--config={getattr(args, 'name', '?')}"
        validate(args, self.schema, where=where)
        # The configured terms' own keys; a key the config lacks gets the term's declared default.
        validate(args, term_keys(self.term_entries(args)), where=where, fill_defaults=True)
        check_terms(vars(args), self.term_entries(args), where)  # what each term reads, against the controller
        if not getattr(args, "state_shape", None):
            raise ConfigError("this env provides no global state (state_shape is empty) and the mixer needs "
                              "one; pick an env with a state")

    @staticmethod
    def term_entries(args) -> list:
        """The configured intrinsic terms; a learner whose schema has no `intrinsic_terms` (ACORM) has none."""
        return getattr(args, "intrinsic_terms", None) or []

    def build(self, args):
        """Modules of the subclass (built before the optimisers)."""

    def td_parameter_groups(self, args) -> dict:
        """name -> (parameters, lr) of everything the TD loss trains."""
        return {"q": ([*self.mac.agent.parameters(), *self.mixer.parameters()], args.lr)}

    def pretraining(self) -> bool:
        """True while `train` calls are pre-training steps (no TD update): e.g. ACORM's role pre-training."""
        return False

    def pretrain_step(self, batch, t_env: int):
        """One pre-training step on this (freshly sampled) batch."""

    def before_update(self, batch):
        """Runs before the TD losses of each update (e.g. the contrastive role step, as published)."""

    def auxiliary_losses(self, unrolled, mask) -> dict:
        """name -> weighted loss added to the TD loss (e.g. CDS's L1 on agent-specific heads)."""
        return {}

    def after_update(self, unrolled, mask):
        """Runs after each TD step (e.g. the key encoder's EMA step)."""

    def extra_modules(self) -> dict:
        """name -> module whose state the checkpoint carries besides controller, mixers, terms."""
        return {}

    def extra_optimisers(self) -> dict:
        return {}

    # --- one update ---------------------------------------------------------------------------
    def train(self, batch, t_env: int, episode_num: int):
        if self.pretraining():  # published: one step per collected episode, each on a fresh batch, no TD
            with self.precision():
                self.pretrain_step(batch, t_env)
            if t_env - self.log_stats_t >= self.args.learner_log_interval:
                self._flush_stats(t_env)
                self.log_stats_t = t_env
            return
        if not self.ready:
            self.target_mac.load_state(self.mac)  # targets start from whatever was pre-trained
            self.ready = True
        update_start = time.perf_counter()
        with self.precision():  # the forward passes (terms train their own models in here too)
            self.before_update(batch)
            unrolled = self.mac.unroll(batch)  # q [B, T, N, A]; extras such as roles z [B, T, N, R]
            # Published R3DM order: the terms train their own models (world models, with their target EMA)
            # on this update's unroll before any reward is computed from them.
            if self.intrinsic:
                self.train_terms(self.update_context(batch, unrolled, t_env))
            losses, out = self.losses(batch, t_env, unrolled)
            self._context = None  # nothing of this update is kept past it
        self.optimise(losses)
        # the TD loss, auxiliary losses and gradient norms: NaN / inf marked on the device, read at log steps
        self.divergence.watch({**{name: loss.detach() for name, loss in losses.items()},
                               **{name: v for name, v in self.stats.items() if name.startswith("grad_norm_")}}, t_env)
        self.training_steps += 1
        self.after_update(out["unrolled"], out["mask"])
        self._update_targets()
        self.stats["time_update_ms"] = 1000 * (time.perf_counter() - update_start)

        if t_env - self.log_stats_t >= self.args.learner_log_interval:  # a log step: host reads from here on
            mask, n = out["mask"], out["mask"].sum().item()
            self.stats.update({
                **{name: value.item() for name, value in losses.items()},
                "td_error_abs": out["td_error"].abs().sum().item() / n,
                "q_taken_mean": (out["chosen"] * mask).sum().item() / (n * self.n_agents),
                "target_mean": (out["targets"] * mask).sum().item() / n,
                "lr": next(iter(self.td_optimisers.values())).param_groups[0]["lr"],
            })
            self._check_finite(t_env)
            self._flush_stats(t_env)
            self.log_stats_t = t_env

    def precision(self):
        """The context of the update's forward passes: autocast(bf16) with precision: bf16, else none."""
        return autocast(self.args.precision, self.device_type)

    def losses(self, batch, t_env: int, unrolled=None) -> tuple[dict, dict]:
        """The update's losses, name -> scalar with gradient ("loss_td" plus the auxiliary losses), and
        what logging and `after_update` read (unrolled, mask, td_error, chosen, targets).

        Computes and nothing else: no optimiser steps, the terms' included (`train_terms` is the phase
        of `train` that trains them). `unrolled`: the controller's unroll of `batch`, if already made."""
        rewards = batch["reward"][:, :-1]  # [B, T-1, 1]
        actions = batch["actions"][:, :-1]  # [B, T-1, N, 1]
        terminated, mask = td_mask(batch)
        avail_actions = batch["avail_actions"]

        if unrolled is None:
            unrolled = self.mac.unroll(batch)  # q [B, T, N, A]; extras such as roles z [B, T, N, R]
        q, z = unrolled.q, unrolled.extras.get("z")
        chosen = q[:, :-1].gather(-1, actions).squeeze(-1)  # [B, T-1, N]
        with th.no_grad():
            target = self.target_mac.unroll_target(batch, unrolled)  # published: reads the ONLINE roles
            target_q = target.q.masked_fill(avail_actions == 0, -9999999)
            if self.args.double_q:
                greedy = q.detach().masked_fill(avail_actions == 0, -9999999).argmax(-1, keepdim=True)
                target_max = target_q.gather(-1, greedy).squeeze(-1)  # [B, T, N]
            else:
                target_max = target_q.max(-1).values
        q_tot, target_tot = self._mix_online_and_target(chosen, target_max, batch["state"], z)
        q_tot, target_tot = at_least_fp32(q_tot), at_least_fp32(target_tot)  # TD maths in fp32

        if self.intrinsic:
            r_int = at_least_fp32(self.intrinsic_reward(self.update_context(batch, unrolled, t_env)))
            rewards = rewards + self.intrinsic_alpha(t_env) * r_int.detach()
        targets = rewards + self.args.gamma * (1 - terminated) * target_tot
        td_error = (q_tot - targets.detach()) * mask
        auxiliary = {name: at_least_fp32(loss) for name, loss in self.auxiliary_losses(unrolled, mask).items()}
        losses = {"loss_td": td_error.pow(2).sum() / mask.sum(), **auxiliary}
        return losses, {"unrolled": unrolled, "mask": mask, "td_error": td_error, "chosen": chosen,
                        "targets": targets}

    def optimise(self, losses: dict) -> None:
        """One step of every TD optimiser on the sum of the losses (clip per group, then StepLR)."""
        for optimiser in self.td_optimisers.values():
            optimiser.zero_grad()
        sum(losses.values()).backward()
        for name, (params, _) in self.td_groups.items():
            self.stats[f"grad_norm_{name}"] = th.nn.utils.clip_grad_norm_(params, self.args.grad_norm_clip)
        for optimiser in self.td_optimisers.values():
            optimiser.step()
        for scheduler in self.schedulers:
            scheduler.step()

    def _mix_online_and_target(self, chosen, target_max, states, z):
        """(Q_tot [B, T-1, 1] with gradient, target Q_tot [B, T-1, 1] without).

        chosen [B, T-1, N], target_max [B, T, N], states [B, T, S], z [B, T, N, R] or None.
        A mixer with `shares_state_features` (attn_qmix) computes its recurrent state features once,
        over the whole episode, and the target mixer reads them (published ACORM/R3DM: the target's
        attention and hypernetworks see the online state features and the online roles)."""
        mixer, target_mixer = self.mixer, self.target_mixer
        if getattr(mixer, "shares_state_features", False):
            features = mixer.state_features(states)  # each [B, T, .], with gradient
            q_tot = mixer.mix(chosen, [f[:, :-1] for f in features], z[:, :-1])
            with th.no_grad():
                target_tot = target_mixer.mix(target_max[:, 1:], [f[:, 1:] for f in features], z[:, 1:])
            return q_tot, target_tot
        roles = lambda x: (x,) if getattr(mixer, "needs_roles", False) else ()  # noqa: E731
        q_tot = mixer(chosen, states[:, :-1], *roles(None if z is None else z[:, :-1]))
        with th.no_grad():
            # A recurrent mixer is unrolled from t = 0 for the target too; step 0 is then dropped.
            target_tot = target_mixer(target_max, states, *roles(z))[:, 1:]
        return q_tot, target_tot

    # --- the intrinsic-reward hook ------------------------------------------------------------
    def update_context(self, batch, unrolled, t_env: int) -> UpdateContext:
        """What the terms read in one update: the batch and the controller's unroll of it. One object per
        unroll, so training and reward share what a term caches on it (the world models' packing)."""
        cached = self._context
        if cached is not None and cached[0] is unrolled and cached[1].batch is batch and cached[1].t_env == t_env:
            return cached[1]
        ctx = UpdateContext(batch, unrolled.q, unrolled.extras.get("z"), td_mask(batch)[1], self.mac, t_env,
                            unrolled.extras)
        self._context = (unrolled, ctx)
        return ctx

    def train_terms(self, ctx: UpdateContext) -> None:
        """One training step of each configured term's own models (its own optimisers), losses watched for
        NaN / inf on the device (`_check_finite` reads that at log steps)."""
        for name, term in self.intrinsic.items():
            start = time.perf_counter()
            with self.profile_part(f"{name} update"):
                losses = term.update(ctx)
            self.divergence.watch(losses, ctx.t_env)
            self.stats.update(losses)
            self.stats[f"time_{name}_update_ms"] = 1000 * (time.perf_counter() - start)

    def intrinsic_reward(self, ctx: UpdateContext) -> th.Tensor:
        """Sum of the configured terms' rewards [B, T-1, 1], computed without gradient from the terms as
        `train_terms` left them; each reward watched for NaN / inf like the losses."""
        total = th.zeros_like(ctx.mask)
        for name, term in self.intrinsic.items():
            start = time.perf_counter()
            with th.no_grad(), self.profile_part(f"{name} reward"):
                reward = term.reward(ctx)
            self.divergence.watch({term.log_name: reward}, ctx.t_env)
            total = total + reward
            self.stats[f"time_{name}_reward_ms"] = 1000 * (time.perf_counter() - start)
            for part, value in {term.log_name: reward, **term.reward_parts}.items():
                self.stats[f"{part}_mean"], self.stats[f"{part}_std"] = _masked_mean_std(value, ctx.mask)
        return total

    def intrinsic_alpha(self, t_env: int) -> float:
        """alpha, optionally annealed linearly to 0 over `intrinsic_anneal_steps` from the start step."""
        alpha, length = self.args.intrinsic_alpha, self.args.intrinsic_anneal_steps
        if length <= 0:
            return alpha
        return alpha * min(1.0, max(0.0, 1.0 - (t_env - self.args.intrinsic_anneal_start) / length))

    def _check_finite(self, t_env: int) -> None:
        """At a log step: stop the run if a watched term became NaN or inf since the last check."""
        diverged = self.divergence.check(t_env)
        if diverged is None:
            return
        name, first, since = diverged
        self.stats[name] = float("nan")
        self._flush_stats(t_env)  # what was computed so far reaches Sacred before the run stops
        checked = f"checked on the device and read at the log step t_env={t_env}" + (
            f", the previous one at t_env={since}" if since is not None else "")
        raise for_sacred(TrainingDiverged(
            f"'{name}' became NaN or inf at t_env={first} ({checked}); the run stopped (metrics so far are "
            "saved). Lower lr (or intrinsic_alpha, wm_lr), or check the environment's observations"))

    def _flush_stats(self, t_env: int) -> None:
        """Log every stat as a float: the tensors among them in one host read per dtype and device."""
        groups: dict[tuple, list[str]] = {}
        for name, value in self.stats.items():
            if isinstance(value, th.Tensor):
                groups.setdefault((value.dtype, value.device), []).append(name)
        floats = {}
        for names in groups.values():
            floats.update(zip(names, th.stack([self.stats[n].detach().reshape(()) for n in names]).tolist()))
        for name, value in self.stats.items():
            self.logger.log_stat(name, float(floats.get(name, value)), t_env)
        self.stats.clear()

    # --- targets, devices, checkpoints --------------------------------------------------------
    def _target_pairs(self):
        online, target = self.mac.networks(), self.target_mac.target_networks()
        return [(target[name], online[name]) for name in target] + [(self.target_mixer, self.mixer)]

    def _update_targets(self):
        rate = self.args.target_update_interval_or_tau
        if rate > 1:
            if self.training_steps - self.last_target_update_step >= rate:
                for target, online in self._target_pairs():
                    target.load_state_dict(online.state_dict())
                self.last_target_update_step = self.training_steps
        else:
            with th.no_grad():
                for target, online in self._target_pairs():
                    for tp, p in zip(target.parameters(), online.parameters()):
                        tp.lerp_(p, rate)

    def _modules(self) -> dict:
        modules = {"mixer": self.mixer, "target_mixer": self.target_mixer, "intrinsic": self.intrinsic}
        modules.update({f"target_{name}": net for name, net in self.target_mac.target_networks().items()})
        return {**modules, **self.extra_modules()}

    def _optimisers(self) -> dict:
        return {**{f"td_{name}": opt for name, opt in self.td_optimisers.items()}, **self.extra_optimisers()}

    def cuda(self):
        self.mac.cuda()
        self.target_mac.cuda()
        for module in self._modules().values():
            module.cuda()

    def _checkpoint(self) -> dict:
        return {
            "modules": {name: module.state_dict() for name, module in self._modules().items()},
            "optimisers": {name: opt.state_dict() for name, opt in self._optimisers().items()},
            "schedulers": [s.state_dict() for s in self.schedulers],
            "counters": {"training_steps": self.training_steps, "ready": self.ready,
                         "last_target_update_step": self.last_target_update_step},
            **self.extra_state(),
        }

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def save_models(self, path):
        self.mac.save_models(path)
        th.save(self._checkpoint(), f"{path}/learner.th")

    def load_models(self, path):
        self.mac.load_models(path)
        state = th.load(f"{path}/learner.th", map_location="cpu", weights_only=False)
        for name, module in self._modules().items():
            module.load_state_dict(state["modules"][name])
        for name, optimiser in self._optimisers().items():
            optimiser.load_state_dict(state["optimisers"][name])
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        counters = state["counters"]
        self.training_steps = counters["training_steps"]
        self.ready = counters["ready"]
        self.last_target_update_step = counters["last_target_update_step"]
        self.load_extra_state(state)


def _masked_mean_std(value: th.Tensor, mask: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Mean and std (0-dim, on the device) of value [B, T-1, 1] over the unmasked steps."""
    n = mask.sum().clamp(min=1)
    mean = (value * mask).sum() / n
    var = ((value - mean).pow(2) * mask).sum() / n
    return mean, var.sqrt()


def td_mask(batch):
    """(terminated [B, T-1, 1], mask [B, T-1, 1]): steps that are filled and not after a terminal."""
    terminated = batch["terminated"][:, :-1].float()
    mask = batch["filled"][:, :-1].float().clone()  # .float() is a view when filled is float already
    mask[:, 1:] = mask[:, 1:] * (1 - terminated[:, :-1])
    return terminated, mask

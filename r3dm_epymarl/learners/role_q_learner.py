"""The role-aware Q learner; as configured by acorm.yaml it is ACORM (spec section 1).

On top of the shared Q learner: a second TD parameter group for the role networks (f_e, f_r);
pre-training as published (each of the first `pretrain_encoder_steps` + `pretrain_contrastive_steps`
`train` calls, i.e. one per collected episode, takes one f_e + decoder step, then one contrastive
step, on its own freshly sampled batch, with no TD update; R3DM's world models train on the same
batches); every `contrastive_interval` updates one contrastive role step before the TD step; and the
momentum key encoder's EMA step after every update.
"""
from __future__ import annotations

import torch as th

from r3dm_epymarl.config import Key
from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.intrinsic.base import UpdateContext
from r3dm_epymarl.learners.q_learner import Q_KEYS, HookedQLearner, td_mask
from r3dm_epymarl.modules.optim import adam
from r3dm_epymarl.roles.contrastive import ContrastiveRoleLoss
from r3dm_epymarl.modules.precision import at_least_fp32
from r3dm_epymarl.modules.sync import host_read
from r3dm_epymarl.roles.kmeans import batched_kmeans
from r3dm_epymarl.roles.pretrain import PretrainLoss

# Every key this learner (with RoleMAC, RoleRNNAgent, AttentionQMixer) reads, with its type.
ROLE_Q_KEYS = {
    **Q_KEYS,
    "traj_embed_dim": Key(int, "trajectory embedding e width", minimum=1),
    "role_embed_dim": Key(int, "role embedding z width", minimum=1),
    "role_clusters": Key(int, "|M|, K-means clusters per (episode, step)", minimum=1),
    "kmeans_iters": Key(int, "Lloyd iterations", minimum=1),
    "kmeans_n_init": Key(int, "K-means restarts, best inertia kept", minimum=1),
    "contrastive_interval": Key(int, "learner updates between contrastive steps; 0 disables", minimum=0),
    "role_momentum_tau": Key(float, "EMA rate of the key encoder", minimum=0.0),
    "pretrain_encoder_steps": Key(int, "f_e + decoder pre-training steps, one per train call; 0 disables", minimum=0),
    "pretrain_contrastive_steps": Key(int, "contrastive pre-training steps, one per train call; 0 disables",
                                      minimum=0),
    "role_lr": Key(float, "Adam lr, f_e + f_r under the TD loss", minimum=0.0),
    "contrastive_lr": Key(float, "Adam lr, f_r + W under the contrastive loss", minimum=0.0),
    "pretrain_lr": Key(float, "Adam lr, f_e + decoder pre-training", minimum=0.0),
    "obs_agent_id": Key(bool, "unused: the role replaces the agent id", choices=(False,)),
    "att_heads": Key(int, "attention heads in attn_qmix", minimum=1),
    "att_embed_dim": Key(int, "attention width in attn_qmix", minimum=1),
    "att_out_dim": Key(int, "attention output width per agent in attn_qmix", minimum=1),
}


class RoleQLearner(HookedQLearner):
    schema = ROLE_Q_KEYS

    def check_args(self, args):
        super().check_args(args)
        if args.role_clusters > args.n_agents:
            raise ConfigError(f"config key 'role_clusters' is {args.role_clusters} but the env has only "
                              f"{args.n_agents} agents; set role_clusters <= {args.n_agents}")

    def build(self, args):
        roles = self.mac.roles
        self.contrastive = ContrastiveRoleLoss(roles.role, args.role_embed_dim, args.role_momentum_tau)
        self.pretrain = PretrainLoss(args.traj_embed_dim, self.mac.obs_dim, args.n_agents)
        self.contrastive_params = [*roles.role.parameters(), self.contrastive.bilinear]
        self.pretrain_params = [*roles.trajectory.parameters(), *self.pretrain.parameters()]
        self.contrastive_optimiser = adam(self.contrastive_params, args.contrastive_lr)
        self.pretrain_optimiser = adam(self.pretrain_params, args.pretrain_lr)
        self.kmeans_generator = None  # created on the batch's device at first use, seeded by args.seed
        self.pretrain_done = 0  # pre-training steps taken (train calls spent on pre-training)

    def td_parameter_groups(self, args) -> dict:
        # Published ACORM: Q + mixer and f_e + f_r each have their own Adam and gradient clip.
        return {**super().td_parameter_groups(args), "role": (list(self.mac.roles.parameters()), args.role_lr)}

    def extra_modules(self) -> dict:
        return {"contrastive": self.contrastive, "pretrain": self.pretrain}

    def extra_optimisers(self) -> dict:
        return {"contrastive": self.contrastive_optimiser, "pretrain": self.pretrain_optimiser}

    def before_update(self, batch):
        # Published order: the contrastive step (on f_e's embeddings, no gradient to f_e) comes before the
        # TD step, so the TD unroll already sees the updated f_r.
        interval = self.args.contrastive_interval
        if interval > 0 and (self.training_steps + 1) % interval == 0:
            _, mask = td_mask(batch)
            with th.no_grad():
                e = self.mac.roles.trajectory.unroll(self.mac.trajectory_inputs(batch))[:, :-1]  # [B, T-1, N, E]
            self._contrastive_step(e, mask)

    def after_update(self, unrolled, mask):
        # Published: the key encoder takes an EMA step after EVERY learner update (and one more after each
        # contrastive step), always as a pure EMA (the published Adam also trains it; see docs/FIDELITY.md).
        self.contrastive.momentum_update(self.mac.roles.role)

    # --- role learning ------------------------------------------------------------------------
    def _cluster(self, groups):
        if self.kmeans_generator is None:
            self.kmeans_generator = th.Generator(device=groups.device).manual_seed(int(self.args.seed))
        groups = at_least_fp32(groups)  # distances in fp32 whatever the precision of the embeddings
        return batched_kmeans(groups, self.args.role_clusters, n_iter=self.args.kmeans_iters,
                              n_init=self.args.kmeans_n_init, generator=self.kmeans_generator).labels

    def _contrastive_step(self, e, mask):
        """e [B, T, N, E] (no gradient), mask [B, T, 1]: one step on f_r and W over active (b, t).
        No gradient clipping (published). Returns the loss (0-dim, on the device)."""
        active = (mask[..., 0] > 0).flatten()  # [B * T]
        # e[active] with the count read once: a boolean-mask index would read it implicitly.
        G = host_read(active.sum(), "the contrastive step's k-means clusters every active (episode, step): "
                                    "their number is its batch size")
        groups = e.flatten(0, 1).index_select(0, active.nonzero_static(size=G).squeeze(1))  # [G, N, E]
        labels = self._cluster(groups)  # [G, N]
        loss = self.contrastive(self.mac.roles.role, groups, labels)
        self.contrastive_optimiser.zero_grad()
        loss.backward()
        self.contrastive_optimiser.step()
        self.contrastive.momentum_update(self.mac.roles.role)
        sizes = th.nn.functional.one_hot(labels, self.args.role_clusters).sum(1).float()  # [G, K]
        sizes = sizes.sort(dim=-1, descending=True).values.mean(0)
        loss = loss.detach()
        self.stats[self.contrastive.name] = loss
        for k, size in enumerate(sizes.unbind()):
            self.stats[f"role_cluster_size_{k}"] = size  # mean size of the k-th largest cluster
        return loss

    # --- pre-training: one step per train call, as published -----------------------------------
    def _pretrain_steps(self) -> tuple[int, int]:
        contrastive = self.args.pretrain_contrastive_steps if self.args.contrastive_interval > 0 else 0
        return self.args.pretrain_encoder_steps, contrastive

    def pretraining(self) -> bool:
        return self.pretrain_done < sum(self._pretrain_steps())

    def pretrain_step(self, batch, t_env: int):
        """f_e + decoder (the first `pretrain_encoder_steps` calls), then the contrastive head; then
        every intrinsic term's pre-training step (R3DM's world models) on the same batch."""
        _, mask = td_mask(batch)
        trajectory = self.mac.roles.trajectory
        x = self.mac.trajectory_inputs(batch)  # [B, T, N, O+A]
        encoder_phase = self.pretrain_done < self._pretrain_steps()[0]
        if encoder_phase:
            loss = self.pretrain(trajectory.unroll(x)[:, :-1], batch["obs"], mask)
            self.pretrain_optimiser.zero_grad()
            loss.backward()  # no gradient clipping (published)
            self.pretrain_optimiser.step()
            self.stats[self.pretrain.name] = loss.detach()
        else:
            with th.no_grad():
                e = trajectory.unroll(x)[:, :-1]
            self._contrastive_step(e, mask)
        self.pretrain_done += 1
        self.stats["pretrain_step"] = self.pretrain_done
        if self.intrinsic:
            with th.no_grad():
                z = self.mac.roles.unroll(x)[1]  # roles after this step's update
            ctx = UpdateContext(batch, None, z, mask, self.mac, t_env)
            for term in self.intrinsic.values():
                self.stats.update(term.pretrain_update(ctx, hard_target=encoder_phase))

    # --- the k-means stream is part of the state: a resumed run clusters as the original would -----
    def extra_state(self) -> dict:
        return {"kmeans_rng": None if self.kmeans_generator is None else self.kmeans_generator.get_state(),
                "pretrain_done": self.pretrain_done}

    def load_extra_state(self, state: dict) -> None:
        self.pretrain_done = state.get("pretrain_done", sum(self._pretrain_steps()))
        if state.get("kmeans_rng") is not None:
            device = next(self.mixer.parameters()).device
            self.kmeans_generator = th.Generator(device=device)
            self.kmeans_generator.set_state(state["kmeans_rng"])

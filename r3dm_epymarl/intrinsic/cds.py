"""CDS's intrinsic reward (Li et al., NeurIPS 2021) as a term on the hook (spec section 3).

Two MLP predictors of o_{t+1} from [h_{t-1}, o_t, a_t]: p without and q with the agent id;
log-likelihood = -sum (pred - o_{t+1})^2. Per agent
    r_i = beta1 * log q - log p + beta2 * KL( softmax(beta1 * Q_i) || mean_j softmax(Q_j) )
with Q_j each agent's own Q-values at that step; the team reward gets alpha * mean_i r_i (CDS's beta
is the hook's `intrinsic_alpha`). Each softmax is over that agent's available actions.
The predictors train every update on the batch's transitions in shuffled minibatches; the reward
reads target copies of them, hard-copied every `cds_predictor_target_interval` updates (published:
every 200 episodes, one update per episode). q gets the agent id at its input and again at its
second layer (published).
"""
import copy

import torch as th
from torch import nn
from torch.nn import functional as F

from r3dm_epymarl.config import Key
from r3dm_epymarl.intrinsic.base import IntrinsicTerm, UpdateContext, action_log_softmax, action_softmax
from r3dm_epymarl.modules.precision import at_least_fp32
from r3dm_epymarl.modules.optim import adam
from r3dm_epymarl.modules.sync import host_read


class ObsPredictor(nn.Module):
    """o_{t+1} from [h_{t-1}, o_t, a_t] (plus the agent's one-hot id, if id_dim > 0, at the input AND
    again at the second layer, as published): Linear -> ReLU -> Linear -> ReLU -> Linear, Xavier-uniform
    weights and zero biases (published; no LayerNorm)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, id_dim: int = 0):
        super().__init__()
        self.id_dim = id_dim
        self.fc1 = nn.Linear(in_dim + id_dim, hidden)
        self.fc2 = nn.Linear(hidden + id_dim, hidden)
        self.out = nn.Linear(hidden, out_dim)
        for layer in (self.fc1, self.fc2, self.out):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: th.Tensor, ids: th.Tensor | None = None) -> th.Tensor:
        """x [..., in], ids [..., N] one-hot (id predictor only) -> prediction [..., O]; as declared."""
        if self.id_dim:
            x = th.cat([x, ids], -1)
        h = th.relu(self.fc1(x))
        if self.id_dim:
            h = th.cat([h, ids], -1)
        return self.out(th.relu(self.fc2(h)))


class CDSReward(IntrinsicTerm):
    needs = ("hidden", "args.hidden_dim")  # the CDS agent's GRU states h_t and their width
    name = "cds"
    log_name = "r_int_cds"
    keys = {  # defaults: the published values (config_overrides/algs/cds.yaml comments each)
        "cds_beta1": Key(float, "beta1: weight of log q and policy temperature", minimum=0.0, default=2.0),
        "cds_beta2": Key(float, "beta2: weight of the policy KL", minimum=0.0, default=1.0),
        "cds_predictor_hidden": Key(int, "predictor MLP width", minimum=1, default=128),
        "cds_predictor_lr": Key(float, "predictor Adam lr", minimum=0.0, default=1e-3),
        "cds_predictor_batch": Key(int, "predictor minibatch size", minimum=1, default=256),
        "cds_predictor_clip": Key(float, "gradient-norm clip of each predictor", minimum=0.0, default=1.0),
        "cds_predictor_target_interval": Key(int, "updates between hard copies of the reward's target predictors",
                                             minimum=1, default=200),
    }

    def __init__(self, args, obs_dim: int):
        super().__init__(args, obs_dim)
        in_dim = args.hidden_dim + obs_dim + args.n_actions
        hidden = args.cds_predictor_hidden
        self.predictor = ObsPredictor(in_dim, hidden, obs_dim)  # p(o' | h, o, a)
        self.id_predictor = ObsPredictor(in_dim, hidden, obs_dim, id_dim=args.n_agents)  # q(o' | h, o, a, i)
        # Published: the reward reads target copies, hard-copied every `cds_predictor_target_interval` updates.
        self.target_predictor = copy.deepcopy(self.predictor).requires_grad_(False)
        self.target_id_predictor = copy.deepcopy(self.id_predictor).requires_grad_(False)
        self.register_buffer("updates", th.zeros((), dtype=th.long))  # predictor updates so far (checkpointed)
        self.host_updates = 0  # the same count on the host (schedules read it without a device sync)
        self.register_load_state_dict_post_hook(lambda module, _: module._count_on_host())
        self.predictor_params = [*self.predictor.parameters(), *self.id_predictor.parameters()]
        self.optimiser = adam(self.predictor_params, args.cds_predictor_lr)

    def optimisers(self):
        return [self.optimiser]

    def _count_on_host(self):
        self.host_updates = int(self.updates)  # after loading a checkpoint (not in an update)

    def _inputs(self, ctx: UpdateContext):
        """([h_{t-1}, o_t, a_t] [B, T-1, N, in], agent index [B, T-1, N], o_{t+1} [B, T-1, N, O])."""
        batch = ctx.batch
        h = ctx.extras["hidden"].detach()  # [B, T, N, H]: h_t after consuming input t
        h_prev = th.cat([th.zeros_like(h[:, :1]), h[:, :-2]], dim=1)  # [B, T-1, N, H]: h_{t-1}
        x = th.cat([h_prev, batch["obs"][:, :-1], batch["actions_onehot"][:, :-1]], dim=-1)
        B, T1, N, _ = x.shape
        agent = th.arange(N, device=x.device).expand(B, T1, N)
        return x, agent, batch["obs"][:, 1:]

    @staticmethod
    def _log_likelihoods(p: ObsPredictor, q: ObsPredictor, x, agent, target):
        """x [..., in], agent [...] (index), target [..., O] -> (log p, log q), each [...].

        The same maths as p(x) and q(x, one_hot(agent)), in fewer kernels: both first layers read x,
        so they are one matmul, and one_hot(agent) @ W_id^T (both layers of q) is a row lookup."""
        width, in_dim = p.fc1.out_features, x.shape[-1]
        first = F.linear(x, th.cat([p.fc1.weight, q.fc1.weight[:, :in_dim]]), th.cat([p.fc1.bias, q.fc1.bias]))
        hidden_p, hidden_q = first.split(width, dim=-1)  # [..., width] each
        hidden_q = th.relu(hidden_q + q.fc1.weight[:, in_dim:].t()[agent])  # + the id's column of W1
        second_q = F.linear(hidden_q, q.fc2.weight[:, :width], q.fc2.bias) + q.fc2.weight[:, width:].t()[agent]
        log_p = -(p.out(th.relu(p.fc2(th.relu(hidden_p)))) - target).pow(2).sum(-1)
        log_q = -(q.out(th.relu(second_q)) - target).pow(2).sum(-1)
        return log_p, log_q

    def reward(self, ctx: UpdateContext) -> th.Tensor:
        beta1, beta2 = self.args.cds_beta1, self.args.cds_beta2
        log_p, log_q = self._log_likelihoods(self.target_predictor, self.target_id_predictor, *self._inputs(ctx))
        mi = beta1 * at_least_fp32(log_q) - at_least_fp32(log_p)  # [B, T-1, N], in fp32
        unavailable = ctx.batch["avail_actions"][:, :-1] == 0  # [B, T-1, N, A]
        q = at_least_fp32(ctx.q[:, :-1].detach()).masked_fill(unavailable, -1e9)  # [B, T-1, N, A]
        log_pi = action_log_softmax(beta1 * q)
        log_pi_bar = action_softmax(q).mean(2, keepdim=True).clamp_min(1e-12).log()  # [B, T-1, 1, A]
        kl = (log_pi.exp() * (log_pi - log_pi_bar)).masked_fill(unavailable, 0).sum(-1)  # [B, T-1, N]
        self.reward_parts = {"r_int_cds_mi": mi.mean(-1, keepdim=True) * ctx.mask,
                             "r_int_cds_kl": beta2 * kl.mean(-1, keepdim=True) * ctx.mask}
        return (mi + beta2 * kl).mean(-1, keepdim=True) * ctx.mask  # [B, T-1, 1]

    @th.no_grad()
    def _copy_targets(self):
        self.target_predictor.load_state_dict(self.predictor.state_dict())
        self.target_id_predictor.load_state_dict(self.id_predictor.state_dict())

    def update(self, ctx: UpdateContext) -> dict:
        """One shuffled pass over the batch's valid transitions in minibatches (published CDS).

        The target copy due after update n is taken at the start of update n + 1: the hook computes the
        reward after `update`, and the published reward of update n still reads the older copy."""
        interval = self.args.cds_predictor_target_interval
        if self.host_updates > 0 and self.host_updates % interval == 0:
            self._copy_targets()
        x, agent, target = self._inputs(ctx)
        active = (ctx.mask[..., 0] > 0).unsqueeze(-1).expand(x.shape[:3]).flatten()  # [B * (T-1) * N]
        M = host_read(active.sum(), "CDS's predictor minibatches cover the valid transitions: their number "
                                    "sets the shuffle and the minibatch loop")
        valid = active.nonzero_static(size=M).squeeze(-1)  # [M]
        # Shuffle once, with one gather per tensor; the minibatches are then contiguous slices.
        order = valid[th.randperm(M, device=x.device)]
        x, agent, target = (v.flatten(0, 2)[order] for v in (x, agent, target))  # [M, .]
        size, clip = self.args.cds_predictor_batch, self.args.cds_predictor_clip
        total, count = x.new_zeros(()), 0
        for start in range(0, x.shape[0], size):
            part = slice(start, start + size)
            log_p, log_q = self._log_likelihoods(self.predictor, self.id_predictor, x[part], agent[part], target[part])
            loss = -(at_least_fp32(log_p).mean() + at_least_fp32(log_q).mean())
            self.optimiser.zero_grad()
            loss.backward()
            for predictor in (self.predictor, self.id_predictor):  # published: each clips its own gradient
                th.nn.utils.clip_grad_norm_(predictor.parameters(), clip)
            self.optimiser.step()
            total, count = total + loss.detach(), count + 1
        self.updates += 1
        self.host_updates += 1
        return {"loss_cds_predictors": total / max(count, 1)}

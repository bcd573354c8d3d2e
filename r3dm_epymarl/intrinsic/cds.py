"""CDS's intrinsic reward (Li et al., NeurIPS 2021) as a term on the hook (spec section 3).

Two MLP predictors of o_{t+1} from [h_{t-1}, o_t, a_t]: p without and q with the agent id;
log-likelihood = -sum (pred - o_{t+1})^2. Per agent
    r_i = beta1 * log q - log p + beta2 * KL( softmax(beta1 * Q_i) || mean_j softmax(Q_j) )
with Q_j each agent's own Q-values at that step; the team reward gets alpha * mean_i r_i (CDS's beta
is the hook's `intrinsic_alpha`). Each softmax is over that agent's available actions.
The predictors train every update on the batch's transitions in shuffled minibatches.
"""
import torch as th
from torch import nn
from torch.nn import functional as F

from r3dm_epymarl.intrinsic.base import IntrinsicTerm, UpdateContext, action_log_softmax, action_softmax
from r3dm_epymarl.modules.optim import adam


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out_dim))


class CDSReward(IntrinsicTerm):
    name = "cds"
    log_name = "r_int_cds"

    def __init__(self, args, obs_dim: int):
        super().__init__(args, obs_dim)
        in_dim = args.hidden_dim + obs_dim + args.n_actions
        self.predictor = _mlp(in_dim, args.cds_predictor_hidden, obs_dim)  # p(o' | h, o, a)
        self.id_predictor = _mlp(in_dim + args.n_agents, args.cds_predictor_hidden, obs_dim)  # q(o' | h, o, a, i)
        self.predictor_params = [*self.predictor.parameters(), *self.id_predictor.parameters()]
        self.optimiser = adam(self.predictor_params, args.cds_predictor_lr)

    def optimisers(self):
        return [self.optimiser]

    def _inputs(self, ctx: UpdateContext):
        """([h_{t-1}, o_t, a_t] [B, T-1, N, in], agent index [B, T-1, N], o_{t+1} [B, T-1, N, O])."""
        batch = ctx.batch
        h = ctx.extras["hidden"].detach()  # [B, T, N, H]: h_t after consuming input t
        h_prev = th.cat([th.zeros_like(h[:, :1]), h[:, :-2]], dim=1)  # [B, T-1, N, H]: h_{t-1}
        x = th.cat([h_prev, batch["obs"][:, :-1], batch["actions_onehot"][:, :-1]], dim=-1)
        B, T1, N, _ = x.shape
        agent = th.arange(N, device=x.device).expand(B, T1, N)
        return x, agent, batch["obs"][:, 1:]

    def _log_likelihoods(self, x, agent, target):
        """x [..., in], agent [...] (index), target [..., O] -> (log p, log q), each [...].

        The same maths as predictor(x) and id_predictor([x, one_hot(agent)]), in fewer kernels: both
        first layers read x, so they are one matmul, and one_hot(agent) @ W_id^T is a row lookup."""
        p_in, q_in = self.predictor[0], self.id_predictor[0]
        width, in_dim = p_in.out_features, x.shape[-1]
        first = F.linear(x, th.cat([p_in.weight, q_in.weight[:, :in_dim]]), th.cat([p_in.bias, q_in.bias]))
        hidden_p, hidden_q = first.split(width, dim=-1)  # [..., width] each
        hidden_q = hidden_q + q_in.weight[:, in_dim:].t()[agent]  # + the agent id's column of W
        log_p = -(self.predictor[1:](hidden_p) - target).pow(2).sum(-1)
        log_q = -(self.id_predictor[1:](hidden_q) - target).pow(2).sum(-1)
        return log_p, log_q

    def reward(self, ctx: UpdateContext) -> th.Tensor:
        beta1, beta2 = self.args.cds_beta1, self.args.cds_beta2
        log_p, log_q = self._log_likelihoods(*self._inputs(ctx))  # [B, T-1, N]
        mi = beta1 * log_q - log_p
        unavailable = ctx.batch["avail_actions"][:, :-1] == 0  # [B, T-1, N, A]
        q = ctx.q[:, :-1].detach().masked_fill(unavailable, -1e9)  # [B, T-1, N, A]
        log_pi = action_log_softmax(beta1 * q)
        log_pi_bar = action_softmax(q).mean(2, keepdim=True).clamp_min(1e-12).log()  # [B, T-1, 1, A]
        kl = (log_pi.exp() * (log_pi - log_pi_bar)).masked_fill(unavailable, 0).sum(-1)  # [B, T-1, N]
        self.reward_parts = {"r_int_cds_mi": mi.mean(-1, keepdim=True) * ctx.mask,
                             "r_int_cds_kl": beta2 * kl.mean(-1, keepdim=True) * ctx.mask}
        return (mi + beta2 * kl).mean(-1, keepdim=True) * ctx.mask  # [B, T-1, 1]

    def update(self, ctx: UpdateContext) -> dict:
        """One shuffled pass over the batch's valid transitions in minibatches (published CDS)."""
        x, agent, target = self._inputs(ctx)
        valid = (ctx.mask[..., 0] > 0).unsqueeze(-1).expand(x.shape[:3]).flatten().nonzero().squeeze(-1)  # [M]
        # Shuffle once, with one gather per tensor; the minibatches are then contiguous slices.
        order = valid[th.randperm(valid.shape[0], device=x.device)]
        x, agent, target = (v.flatten(0, 2)[order] for v in (x, agent, target))  # [M, .]
        size = self.args.cds_predictor_batch
        total, count = x.new_zeros(()), 0
        for start in range(0, x.shape[0], size):
            part = slice(start, start + size)
            log_p, log_q = self._log_likelihoods(x[part], agent[part], target[part])
            loss = -(log_p.mean() + log_q.mean())
            self.optimiser.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.predictor_params, self.args.cds_predictor_clip)
            self.optimiser.step()
            total, count = total + loss.detach(), count + 1
        return {"loss_cds_predictors": (total / max(count, 1)).item()}

"""R3DM's policy-diversity reward (spec 2a): how much agent i's policy depends on its own role.

pi_i = softmax(beta1 * Q_i(tau_i, z_i)); pi_bar_i = (1/N) sum_j softmax(Q_i(tau_i, z_j)) with
agent i's Q re-evaluated under each teammate's role sequence; r_pol = beta2 * mean_i KL(pi_i || pi_bar_i).
beta1 is a temperature on the agent's OWN policy only, as in the published code, so with beta1 != 1
(6 of the 12 published presets) the term is not 0 even when all roles are equal: it then also
rewards a sharper (beta1 > 1) or flatter (beta1 < 1) own policy than the role-averaged one.
Unavailable actions are masked out of both softmaxes (the published code does not mask them; their
Q-values are never trained, so they would add noise: see docs/FIDELITY.md).
"""
import torch as th

from r3dm_epymarl.config import Key
from r3dm_epymarl.intrinsic.base import IntrinsicTerm, UpdateContext, action_log_softmax, action_softmax
from r3dm_epymarl.modules.precision import at_least_fp32

# beta1 is read by both R3DM terms (the world-model term weighs its role model with it): one declaration.
BETA1 = Key(float, "beta1: temperature of the agent's own policy; role-model weight", minimum=0.0, default=1.0)


class PolicyKLReward(IntrinsicTerm):
    name = "policy_kl"
    log_name = "r_int_policy"
    needs = ("z", "agent.unroll_role_swapped")  # each agent re-evaluated under its teammates' roles
    keys = {
        "r3dm_beta1": BETA1,
        "r3dm_beta2": Key(float, "beta2: weight of the policy term", minimum=0.0, default=1.0),
    }

    def reward(self, ctx: UpdateContext) -> th.Tensor:
        mac, batch = ctx.mac, ctx.batch
        beta1 = self.args.r3dm_beta1
        unavailable = batch["avail_actions"] == 0  # [B, T, N, A]
        q_swapped = mac.agent.unroll_role_swapped(mac.trajectory_inputs(batch), ctx.z.detach())  # [B,T,Ni,Nj,A]
        q, q_swapped = at_least_fp32(ctx.q.detach()), at_least_fp32(q_swapped)  # softmax / KL in fp32
        log_pi = action_log_softmax((beta1 * q).masked_fill(unavailable, -1e9))  # [B,T,N,A]
        pi_swapped = action_softmax(q_swapped.masked_fill(unavailable.unsqueeze(3), -1e9))  # no beta1 here
        log_pi_bar = pi_swapped.mean(dim=3).clamp_min(1e-12).log()  # [B, T, N, A]
        kl = (log_pi.exp() * (log_pi - log_pi_bar)).masked_fill(unavailable, 0).sum(-1)  # [B, T, N]
        return self.args.r3dm_beta2 * kl.mean(-1, keepdim=True)[:, :-1] * ctx.mask  # [B, T-1, 1]

"""R3DM = the role-aware Q learner (ACORM) + intrinsic rewards for role diversity (spec section 2).

Nothing here re-implements an update: the shared learner runs the configured intrinsic terms through
its hook. This module only declares R3DM's keys, so a wrong type stops the run at construction.
"""
from r3dm_epymarl.config import Key
from r3dm_epymarl.intrinsic.world_model import WM_ACTIONS
from r3dm_epymarl.learners.q_learner import INTRINSIC_KEYS
from r3dm_epymarl.learners.role_q_learner import ROLE_Q_KEYS, RoleQLearner

R3DM_KEYS = {
    **INTRINSIC_KEYS,
    "r3dm_beta1": Key(float, "beta1: temperature of the agent's own policy; role-model weight", minimum=0.0),
    "r3dm_beta2": Key(float, "beta2: weight of the policy term", minimum=0.0),
    "r3dm_beta3": Key(float, "beta3: weight of the latent (prior log-prob) term", minimum=0.0),
    "wm_horizon": Key(int, "k: imagination steps", minimum=1),
    "wm_hidden": Key(int, "world-model MLP width", minimum=1),
    "wm_deter": Key(int, "deterministic state width", minimum=1),
    "wm_stoch": Key(int, "number of categorical latents", minimum=1),
    "wm_classes": Key(int, "classes per latent", minimum=2),
    "wm_unimix": Key(float, "uniform mix of the latent categoricals", minimum=0.0),
    "wm_free_bits": Key(float, "free bits of both KL terms", minimum=0.0),
    "wm_dyn_scale": Key(float, "weight of the dynamics KL", minimum=0.0),
    "wm_rep_scale": Key(float, "weight of the representation KL", minimum=0.0),
    "wm_lr": Key(float, "world-model Adam lr", minimum=0.0),
    "wm_eps": Key(float, "world-model Adam eps", minimum=0.0),
    "wm_grad_clip": Key(float, "world-model gradient-norm clip", minimum=0.0),
    "wm_target_tau": Key(float, "EMA rate of the reward-computing target models (two steps per update)",
                         minimum=0.0),
    "wm_reward_sample": Key(bool, "sample the latents when computing the reward (published) or use modes"),
    "wm_fused": Key(bool, "train the world models through the fused loop (hand-written backward); false: "
                          "plain autograd through every step (the reference)"),
    "wm_action": Key(str, "action fed at the world models' step t -> t+1: current = a_t (paper), published = "
                          "a_{t-1}, a_t on an episode's last step (the published buffer's last action)",
                     choices=WM_ACTIONS),
    "wm_skip_padding": Key(bool, "world models skip the batch's padded steps (same values to float rounding); "
                                 "false computes every padded slot"),
}


class R3DMLearner(RoleQLearner):
    schema = {**ROLE_Q_KEYS, **R3DM_KEYS}

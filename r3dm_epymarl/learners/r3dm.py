"""R3DM = the role-aware Q learner (ACORM) + intrinsic rewards for role diversity (spec section 2).

Nothing here re-implements an update: the shared learner runs the configured intrinsic terms
(`intrinsic_terms`: policy_kl, world_model) through its hook, and each term declares its own keys
(r3dm_beta*, wm_*), which the learner checks with its own before anything is built.
"""
from r3dm_epymarl.learners.q_learner import INTRINSIC_KEYS
from r3dm_epymarl.learners.role_q_learner import ROLE_Q_KEYS, RoleQLearner


class R3DMLearner(RoleQLearner):
    schema = {**ROLE_Q_KEYS, **INTRINSIC_KEYS}  # plus the keys of the configured terms

"""CDS on the shared Q learner: the CDS intrinsic term on the hook plus the L1 penalty on the
agent-specific heads; QMIX mixer by default, so it compares with QMIX, ACORM and R3DM like for like."""
from r3dm_epymarl.config import Key
from r3dm_epymarl.learners.q_learner import INTRINSIC_KEYS, Q_KEYS, HookedQLearner

CDS_KEYS = {
    **Q_KEYS,
    **INTRINSIC_KEYS,
    "cds_l1_weight": Key(float, "L1 penalty on the agent-specific Q heads", minimum=0.0),
    "obs_agent_id": Key(bool, "unused: the per-agent heads carry the identity", choices=(False,)),
}


class CDSLearner(HookedQLearner):
    schema = CDS_KEYS

    def auxiliary_losses(self, unrolled, mask) -> dict:
        local = unrolled.extras["q_local"]  # [B, T, N, A]
        weights = mask.unsqueeze(-1)  # [B, T-1, 1, 1]
        l1 = (local[:, :-1].abs() * weights).sum() / (weights.sum() * local.shape[2] * local.shape[3]).clamp(min=1)
        return {"loss_l1": self.args.cds_l1_weight * l1}

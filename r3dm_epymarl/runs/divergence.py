"""NaN / inf in training, for every algorithm the loop runs (the host's QMIX included): a diverged run
ends FAILED with one line, never COMPLETED, so `report` never counts it as a seed.

Two checks, neither a device sync in the hot path:
- at the end of each loop iteration, the training statistics the learner has LOGGED since the last look
  (the logger holds them as floats already): a loss, TD error, Q or gradient norm that is NaN or inf;
- once at the end of training (before the final test), every parameter of the controller and learner
  (one read), which catches a divergence after the learner's last log step.
The plug-in's own learners also watch their losses and gradient norms on the device every update and
stop at their next log step (learners/q_learner.py, learners/divergence.py).
"""
from __future__ import annotations

import math

from r3dm_epymarl.errors import TrainingDiverged, for_sacred

WATCHED_PREFIXES = ("loss", "td_error", "q_taken", "target_mean", "grad_norm", "r_int")


class LoggedStatsWatch:
    def __init__(self):
        self._seen: dict[str, int] = {}  # stat name -> how many of its entries were looked at

    def check(self, logger) -> None:
        """Raise (for Sacred: one line, run FAILED) if a watched stat logged since the last call is not finite."""
        stats = getattr(logger, "stats", None) or {}
        for name, entries in list(stats.items()):
            if not name.startswith(WATCHED_PREFIXES):
                continue
            start = self._seen.get(name, 0)
            self._seen[name] = len(entries)
            for t_env, value in entries[start:]:
                if _not_finite(value):
                    raise for_sacred(TrainingDiverged(
                        f"'{name}' became NaN or inf (logged as {value} at t_env={t_env}): training diverged and "
                        "the run stopped (metrics so far are saved). Lower lr (or intrinsic_alpha, wm_lr), or "
                        "check the environment's observations and rewards"))


def _not_finite(value) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def controller_and_mixer_parameters(learner) -> list:
    """The parameters of a host learner's controller (`mac`) and mixer, whichever it has."""
    params = []
    for owner in (getattr(learner, "mac", None), getattr(learner, "mixer", None)):
        if owner is not None and callable(getattr(owner, "parameters", None)):
            params += list(owner.parameters())
    return params


def check_parameters(learner, t_env: int) -> None:
    """At the end of training: every parameter of the learner's controller and mixer is finite (one read)."""
    import torch as th

    params = controller_and_mixer_parameters(learner)
    if not params:
        return
    finite = th.stack([th.isfinite(p.detach()).all() for p in params])
    if not bool(finite.all()):
        count = int((~finite).sum())
        raise for_sacred(TrainingDiverged(
            f"{count} parameter tensor(s) of the controller or mixer hold NaN or inf at the end of training "
            f"(t_env={t_env}): training diverged and the run stopped before its final test. Lower lr"))

"""R3DM's world models.

- rssm.py: the RSSM, the one definition of the recurrence (observe, imagine, loss; plain autograd).
- predict.py: the k-step prediction R3DM's reward reads, on the padded layout, through given loops.
- distributions.py: symlog, unimix categoricals, straight-through samples, the KL with free bits.
- accel/: the accelerator (both models in one loop, a hand-written backward, padding skipped), held to
  rssm.py by tests; `wm_fused: false` runs without it.
"""

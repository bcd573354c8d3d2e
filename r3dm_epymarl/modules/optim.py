"""The one place the plug-in builds its Adam optimisers.

Fused Adam (one kernel over every parameter instead of a Python loop over them) is the same update
rule; on CPU it made an optimiser step 2.8x faster here (12 tensors of 128 x 215: 0.24 vs 0.68 ms).
That matters where a step runs often: CDS's predictors step 75 times per learner update.
"""
from __future__ import annotations

import torch as th


def adam(params, lr: float, **kwargs) -> th.optim.Adam:
    """Adam over `params`, fused when every parameter is a float tensor on CPU or CUDA."""
    params = list(params)
    fusable = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return th.optim.Adam(params, lr=lr, fused=fusable and bool(params), **kwargs)

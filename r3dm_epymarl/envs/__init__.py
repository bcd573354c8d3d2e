"""Environments the plug-in adds to a host's env registry (imported lazily: no JAX at import time).

- `smax`: SMAX, jaxmarl's StarCraft-free re-implementation of SMAC battles (`r3dm_epymarl.envs.smax`).
- `sc2v2`: not an env of its own; `check_sc2v2()` explains what SMACv2 needs before a host tries it.
"""
from r3dm_epymarl.envs.sc2v2 import check_sc2v2
from r3dm_epymarl.envs.smax import MAP_NAMES, SMAXEnv, smax_fn

__all__ = ["MAP_NAMES", "SMAXEnv", "check_sc2v2", "smax_fn"]

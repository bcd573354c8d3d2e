"""The one sanctioned device -> host read in a training hot path.

On a GPU every read of a tensor's value by Python (`.item()`, `.tolist()`, `bool(t)`) waits for the
stream to drain. Updates that do not log make none, except through `host_read`, which names why the
read is needed (tests count both kinds: tests/unit/test_host_sync.py).
"""
from __future__ import annotations

import torch as th


def host_read(x: th.Tensor, why: str) -> list:
    """x.tolist(), a device sync that the caller has to have; `why` says what needs the values."""
    return x.tolist()

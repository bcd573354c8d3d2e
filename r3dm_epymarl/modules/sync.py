"""The sanctioned device -> host reads in a training hot path, and the host-side bookkeeping.

On a GPU every read of a tensor's value by Python (`.item()`, `.tolist()`, `bool(t)`, `int(t)`) and
every op whose output shape depends on the values (a boolean-mask index, `nonzero`) waits for the
stream to drain. Updates that do not log make none, except through `host_read`, which names why the
read is needed (tests/unit/test_host_sync.py counts both kinds; docs/PERFORMANCE.md lists the reads).

`host_side` marks bookkeeping done on CPU tensors built from values already on the host (the
padding-free world models' index arithmetic): no device is involved there, so neither a sync nor a
tensor on the wrong device (tests/unit/test_device_placement.py skips what runs inside it).
"""
from __future__ import annotations

import contextlib

import torch as th

# What is running now, innermost last: ("read", why) inside `host_read`, ("host", why) inside `host_side`.
# The tests' counters read it; nothing in the plug-in does.
SCOPES: list[tuple[str, str]] = []


@contextlib.contextmanager
def _scope(kind: str, why: str):
    SCOPES.append((kind, why))
    try:
        yield
    finally:
        SCOPES.pop()


def host_read(x: th.Tensor, why: str):
    """x.tolist() (a float or int for a 0-dim x), a device sync that the caller has to have; `why` says
    what needs the values."""
    with _scope("read", why):
        return x.tolist()


def host_side(why: str):
    """Context of host-side bookkeeping on CPU tensors made from host values (no device, no sync)."""
    return _scope("host", why)

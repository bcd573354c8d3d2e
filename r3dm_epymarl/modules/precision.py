"""Mixed precision: the `precision` key (fp32 | bf16) of every plug-in learner.

With bf16 the learner runs its forward passes under torch.autocast(bfloat16): matmuls (agent and role
GRUs, mixer, world models, role-swapped policy, predictors) in bf16, while autocast keeps its fp32 ops
(softmax, log-softmax, losses, norms' statistics) in fp32, and the learner casts to fp32 what must stay
accurate: TD targets and errors, every loss and reward term, K-means distances. Parameters, gradients
and optimiser state stay fp32 (the master weights): autocast casts weights per op, differentiably.

bf16 pays only where the hardware has bf16 arithmetic: CUDA GPUs from Ampere on, and CPUs with
AVX512_BF16 or AMX (Zen 4, Sapphire Rapids). Elsewhere torch emulates it, much slower than fp32 (on an
AVX2-only CPU here, a [2048 x 128] @ [128 x 384] matmul ran 71 GFLOP/s in fp32 and 2.2 in bf16): a
bf16 run there warns once, in one line.
"""
from __future__ import annotations

import contextlib
import sys
from functools import lru_cache

import torch as th

PRECISIONS = ("fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

_warned: set[str] = set()


def at_least_fp32(x: th.Tensor) -> th.Tensor:
    """x in fp32 if it is of a lower precision (bf16, fp16); fp32 and fp64 unchanged."""
    return x if x.dtype in (th.float32, th.float64) or not x.is_floating_point() else x.float()


def compute_dtype(device_type: str, dtype: th.dtype) -> th.dtype:
    """The dtype a loop that casts its inputs once computes in: autocast's inside an autocast region,
    else `dtype` (the world models draw their uniforms in it, so every path draws the same numbers)."""
    return th.get_autocast_dtype(device_type) if th.is_autocast_enabled(device_type) else dtype


@lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device_type: str) -> bool:
    """Whether this machine computes bf16 in hardware on `device_type` ("cpu" or "cuda")."""
    if device_type == "cuda":
        return th.cuda.is_available() and th.cuda.is_bf16_supported()
    return any(flag in _cpu_flags() for flag in CPU_BF16_FLAGS)


def autocast(precision: str, device_type: str):
    """The context the learner's forward passes run in: autocast(bf16), or nothing for fp32."""
    if precision != "bf16":
        return contextlib.nullcontext()
    if not native_bf16(device_type) and device_type not in _warned:
        _warned.add(device_type)
        where = "this GPU" if device_type == "cuda" else "this CPU (no avx512_bf16 or amx_bf16 flag)"
        print(f"r3dm-epymarl: warning: precision=bf16 on {where}: bf16 is emulated and slower than fp32 "
              "here; set precision=fp32", file=sys.stderr, flush=True)
    return th.autocast(device_type, dtype=th.bfloat16)

"""Probes of learner updates for the GPU-readiness tests (tests/unit/test_host_sync.py and
tests/unit/test_device_placement.py).

Every registered algorithm is built as a host builds it: its learner and controller from PyMARLzoo+'s
registries (the plug-in registered there), on a host EpisodeBatch filled as the host's runner fills
it (tests/harness.py's `host_batch`: episodes of different lengths, padding, time-outs),
with tiny widths and every path of an update switched on: role pre-training (both phases), the
contrastive step every other update, R3DM's k = 2 imagination, CDS's target copies.

`SyncCounter` counts the host syncs of the code it wraps; `DeviceChecker` records every op that makes
or reads a tensor off the stand-in device. Both skip `host_side` bookkeeping (r3dm_epymarl/modules/sync.py).
"""
from __future__ import annotations

import collections
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch as th
import yaml
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from r3dm_epymarl.modules import sync

REPO = Path(__file__).resolve().parents[1]
ZOO = "pymarlzooplus"
SHAPES = dict(B=4, T=8, N=3, obs=6, state=7, actions=5)
LENGTHS, TERMINATED = [8, 5, 7, 3], [False, True, True, True]  # one time-out, three terminations
TINY = dict(hidden_dim=16, rnn_hidden_dim=16, traj_embed_dim=16, role_embed_dim=8, att_embed_dim=16,
            att_out_dim=8, mixing_embed_dim=8, hypernet_embed=16, wm_hidden=32, wm_deter=32, wm_stoch=4,
            wm_classes=4, cds_predictor_hidden=16, cds_predictor_batch=16)
EVERY_PATH = dict(pretrain_encoder_steps=1, pretrain_contrastive_steps=1, contrastive_interval=2,
                  wm_horizon=2, cds_predictor_target_interval=2)
LOG_INTERVAL = 1000  # the first train call logs, the next LOG_INTERVAL env steps do not


def host():
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.registry import register

    zoo = get_host(ZOO)
    register(zoo)
    return zoo


def make_batch(zoo, seed=0):
    from tests.harness import host_batch

    return host_batch(zoo, SHAPES, LENGTHS, TERMINATED, seed=seed)


def build(zoo, algorithm: str, batch, **overrides):
    """(learner, args) of `algorithm` with the host's defaults, its YAML, tiny widths and EVERY_PATH."""
    from r3dm_epymarl.launcher import find_config

    config = yaml.safe_load((zoo.config_dir / "default.yaml").read_text())
    config.update(yaml.safe_load(find_config(zoo, "algs", algorithm).read_text()))
    config.update({k: v for k, v in {**TINY, **EVERY_PATH}.items() if k in config})
    config.update(n_agents=SHAPES["N"], n_actions=SHAPES["actions"], state_shape=SHAPES["state"],
                  obs_shape=SHAPES["obs"], unit_dim=SHAPES["obs"], seed=1, use_cuda=False, device="cpu",
                  common_reward=True, learner_log_interval=LOG_INTERVAL, **overrides)
    args = SimpleNamespace(**config)
    th.manual_seed(0)
    mac = zoo.registry("controllers")[args.mac](batch.scheme, {"agents": SHAPES["N"]}, args)
    learner = zoo.registry("learners")[args.learner](mac, batch.scheme, Logger(), args)
    return learner, args


class Logger:
    def __init__(self):
        self.stats = {}

    def log_stat(self, key, value, t, to_sacred=True):
        self.stats.setdefault(key, []).append((t, value))


def _site() -> str:
    """The innermost frame of plug-in, host or test code: where a sync or a misplaced tensor comes from."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if ("r3dm_epymarl" in frame.filename or ZOO in frame.filename or "/tests/" in frame.filename) \
                and not frame.filename.endswith("update_probes.py"):
            path = Path(frame.filename)
            return f"{path.parent.name}/{path.name}:{frame.lineno} ({frame.name}: {frame.line})"
    return "?"


def _in_host_side() -> bool:
    return any(kind == "host" for kind, _ in sync.SCOPES)


# --- host syncs --------------------------------------------------------------------------------
# Python reads of a tensor's value (patched on torch.Tensor: on the CPU most never reach the dispatcher)
SYNC_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy")
aten = th.ops.aten
# ops that read values on the host: a scalar read, or an output whose shape depends on the values
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
            aten.is_nonzero.default, aten.equal.default, aten._unique.default, aten._unique2.default,
            aten.unique_dim.default, aten.unique_consecutive.default, aten.repeat_interleave.Tensor}
MASK_INDEXED = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def _syncs(func, args, kwargs) -> bool:
    if func in SYNC_OPS:
        return not (func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is not None)
    if func in MASK_INDEXED:  # x[mask] and x[mask] = v: the number of True entries sets the shape
        return any(isinstance(i, th.Tensor) and i.dtype in (th.bool, th.uint8) for i in args[1] if i is not None)
    return False


class SyncCounter(TorchDispatchMode):
    """Within the block: `undeclared` lists each host sync not made through `host_read` (with its site),
    `declared` counts those made through it, by their `why`. Syncs inside `host_side` are not syncs.

    F.one_hot(x, num_classes) checks the range of x with two host reads on the CPU only (ATen's
    Onehot.cpp: on CUDA the scatter asserts on the device instead), so those reads are not counted;
    without num_classes it reads max(x) everywhere, and is counted."""

    def __init__(self):
        super().__init__()
        self.undeclared: list[str] = []
        self.declared: collections.Counter = collections.Counter()
        self._inside = 0  # > 0 inside a patched method (its own ops are that one sync)
        self._originals = {}

    def _record(self, what: str) -> None:
        if _in_host_side():
            return
        reads = [why for kind, why in sync.SCOPES if kind == "read"]
        if reads:
            self.declared[reads[-1]] += 1
        else:
            self.undeclared.append(f"{what} at {_site()}")

    def _wrap(self, name):
        original = self._originals[name]

        def counted(tensor, *args, **kwargs):
            if not self._inside:
                self._record(f"Tensor.{name}")
            self._inside += 1
            try:
                return original(tensor, *args, **kwargs)
            finally:
                self._inside -= 1
        return counted

    def _one_hot(self, x, num_classes=-1):
        if num_classes < 0:
            return self._one_hot_original(x, num_classes)  # reads max(x): its ops are counted
        self._inside += 1
        try:
            return self._one_hot_original(x, num_classes)
        finally:
            self._inside -= 1

    def __enter__(self):
        for name in SYNC_METHODS:
            self._originals[name] = getattr(th.Tensor, name)
            setattr(th.Tensor, name, self._wrap(name))
        self._one_hot_original = th.nn.functional.one_hot
        th.nn.functional.one_hot = self._one_hot
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(th.Tensor, name, original)
        th.nn.functional.one_hot = self._one_hot_original
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self._inside and _syncs(func, args, kwargs):
            self._record(str(func))
        return func(*args, **kwargs)

    def total(self) -> int:
        return len(self.undeclared) + sum(self.declared.values())


# --- device placement --------------------------------------------------------------------------
TRANSFERS = {aten._to_copy.default, aten.copy_.default}  # their source may be elsewhere (host -> device)


class DeviceChecker(TorchDispatchMode):
    """Records (in `wrong`) every op outside `host_side` whose output, or input (a transfer's source
    excepted), is not on `device`: a tensor created without device=, or one left behind by `cuda()`."""

    def __init__(self, device: str = "meta"):
        super().__init__()
        self.device = th.device(device)
        self.wrong: list[str] = []
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops += 1
        if not _in_host_side():
            checked = tree_flatten(out)[0]
            if func is aten.copy_.default:
                checked.append(args[0])
            elif func not in TRANSFERS:
                checked += tree_flatten((args, kwargs))[0]
            for t in checked:
                if isinstance(t, th.Tensor) and t.device != self.device:
                    self.wrong.append(f"{func} made or read a {t.device.type} tensor {tuple(t.shape)} at {_site()}")
                    break
        return out

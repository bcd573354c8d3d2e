"""Device placement checked without a GPU (issue #24, item 5).

Each registered algorithm is built on the CPU as a host builds it, then moved by its own `cuda()`
(with nn.Module.cuda standing in as `.to("meta")`, parameters swapped in place as on a GPU so the
optimisers keep them) and trained on a batch moved to the `meta` device, a device with shapes and
dtypes but no values. `DeviceChecker` (tests/update_probes.py) records every op outside `host_side`
bookkeeping that makes a tensor elsewhere (torch.zeros / arange / tensor without device=) or reads one
that `cuda()` left behind. The calls cover both pre-training phases, TD updates with and without the
contrastive step, R3DM's padding-free (and padded) k = 2 world models, CDS's target copy, and two
acting steps of the controller.

`meta` was chosen over FakeTensorMode with a fake `cuda` device: fake tensors cannot be moved to
"cuda" without a CUDA build (`.to("cuda")` fails), so the host's path (build on the CPU, then
`learner.cuda()`) could not run at all. What the stand-in cannot run, and what stands in for it:
  * values: meta tensors hold none. The declared host reads (`host_read`: episode lengths, valid
    counts, k-means convergence) return what the same calls read on a CPU twin of the learner, so
    the control flow is the CPU's; a logging step (stats to floats) cannot run, so no call logs here.
  * torch has no random generator on meta: k-means gets a CPU generator that reports the meta device
    (meta kernels draw nothing with it).
  * autocast knows no meta device: autocast("meta") regions (world_model/accel/scan.py) are no-ops; fp32 only.
  * fused Adam refuses meta parameters by name: its device check lets meta through (the fused kernel
    has a meta implementation), as it does for CUDA.
  * the GPU branch of `to_device` (pinned memory, non-blocking copy) is not taken: meta takes `.to`.
  * host QMIX (`r3dm_qmix`) is the host's own learner: its boolean-mask assignments need values
    (their shape depends on them), so it cannot run on meta; its code is not the plug-in's.
"""
import contextlib

import pytest
import torch as th

from r3dm_epymarl.modules import sync
from r3dm_epymarl.registry import ALGORITHMS, COMPONENTS, HOST_PREFIX
from tests import update_probes as probes
from tests.update_probes import DeviceChecker

pytest.importorskip(probes.ZOO)
STEPS = 4  # train calls: 2 pre-training steps (ACORM, R3DM), then TD updates (the 2nd with the contrastive step)


def _host_read_users():
    import importlib

    names = ["r3dm_epymarl.intrinsic.world_model", "r3dm_epymarl.intrinsic.cds",
             "r3dm_epymarl.learners.role_q_learner", "r3dm_epymarl.roles.kmeans"]
    modules = [importlib.import_module(n) for n in names]
    assert all(m.host_read is sync.host_read for m in modules)
    return modules


class _Generator(th.Generator):
    """th.Generator, except on meta: a CPU generator that reports the meta device."""

    def __new__(cls, device=None):
        if device is not None and th.device(device).type == "meta":
            self = super().__new__(cls, "cpu")
            self._meta = True
            return self
        return super().__new__(cls, *([] if device is None else [device]))

    def __init__(self, device=None):
        pass

    @property
    def device(self):
        return th.device("meta") if getattr(self, "_meta", False) else super().device


@contextlib.contextmanager
def meta_stand_in(monkeypatch, reads):
    """nn.Module.cuda -> .to("meta") (parameters swapped in place); `host_read` answers from `reads`."""
    import torch.optim.adam as adam

    swap = th.__future__.get_swap_module_params_on_conversion()
    th.__future__.set_swap_module_params_on_conversion(True)
    with monkeypatch.context() as m:
        m.setattr(th.nn.Module, "cuda", lambda self, device=None: self.to("meta"))
        check_fused = adam._device_dtype_check_for_fused
        m.setattr(adam, "_device_dtype_check_for_fused",
                  lambda p, cuda_unsupported=False: None if p.device.type == "meta" else check_fused(p, cuda_unsupported))
        m.setattr(th, "Generator", _Generator)
        is_autocast, autocast = th.is_autocast_enabled, th.autocast
        m.setattr(th, "is_autocast_enabled", lambda *a: False if a and a[0] == "meta" else is_autocast(*a))
        m.setattr(th, "autocast", lambda device_type, *a, **k:
                  contextlib.nullcontext() if device_type == "meta" else autocast(device_type, *a, **k))

        def replay(x, why):
            expected_why, value = reads.pop(0)
            assert why == expected_why, (why, expected_why)
            return value
        for module in _host_read_users():
            m.setattr(module, "host_read", replay)
        try:
            yield
        finally:
            th.__future__.set_swap_module_params_on_conversion(swap)


def _record_reads(monkeypatch, learner, batches):
    """The CPU twin's train calls t = 1..STEPS (none logs); the values its host reads returned, in order."""
    reads = []

    def recording(x, why):
        value = sync.host_read(x, why)
        reads.append((why, value))
        return value
    with monkeypatch.context() as m:
        for module in _host_read_users():
            m.setattr(module, "host_read", recording)
        for t in range(1, STEPS + 1):
            learner.train(batches[t % 3], t, t)
    return reads


def _run_on_meta(monkeypatch, algorithm, **overrides):
    """(checker, learner) after STEPS train calls on meta (a CPU twin's host reads replayed)."""
    zoo = probes.host()
    batches = [probes.make_batch(zoo, seed=s) for s in range(3)]
    twin, _ = probes.build(zoo, algorithm, batches[0], **overrides)
    twin.log_stats_t = 0  # no call logs (a log step reads values)
    reads = _record_reads(monkeypatch, twin, batches)
    learner, _ = probes.build(zoo, algorithm, batches[0], **overrides)
    learner.log_stats_t = 0
    checker = DeviceChecker("meta")
    with meta_stand_in(monkeypatch, reads):
        learner.cuda()  # the host's call, here to the stand-in device
        for batch in batches:
            batch.to("meta")
        with checker:
            for t in range(1, STEPS + 1):
                learner.train(batches[t % 3], t, t)
            with th.no_grad():  # and the controller's acting steps, as the host's runner calls them
                learner.mac.init_hidden(batches[0].batch_size)
                for t in range(2):
                    learner.mac.forward(batches[0], t)
    assert reads == [], "every host read of the CPU twin was replayed"
    return checker, learner


def _is_host_learner(algorithm):
    return COMPONENTS["learners"][ALGORITHMS[algorithm].learner].startswith(HOST_PREFIX)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_tensor_of_an_update_is_made_on_the_learners_device(monkeypatch, algorithm):
    if _is_host_learner(algorithm):
        pytest.skip("the host's own QMIX learner: its boolean-mask assignments cannot run on meta (no values)")
    checker, learner = _run_on_meta(monkeypatch, algorithm)
    assert checker.wrong == [], "\n".join(checker.wrong[:10])
    assert checker.ops > 1000  # the updates really ran on the stand-in
    assert learner.training_steps >= 2
    params = [p for m in (learner.mac.agent, learner.mixer, *learner._modules().values()) for p in m.parameters()]
    assert params and all(p.device.type == "meta" for p in params)
    assert all(s.device.type == "meta" for opt in learner.td_optimisers.values()
               for state in opt.state.values() for s in state.values() if isinstance(s, th.Tensor))


def test_r3dm_padded_world_models_too(monkeypatch):
    checker, _ = _run_on_meta(monkeypatch, "r3dm", wm_skip_padding=False)
    assert checker.wrong == [], "\n".join(checker.wrong[:10])


PLANTS = {
    "zeros without device": lambda mask: th.zeros(mask.shape[0]),
    "arange without device": lambda mask: th.arange(mask.shape[1]),
    "a CPU scalar tensor": lambda mask: mask * th.tensor(2.0),  # torch lets a 0-dim CPU tensor mix in
}


@pytest.mark.parametrize("kind", list(PLANTS))
def test_the_checker_catches_a_planted_cpu_tensor(monkeypatch, kind):
    from r3dm_epymarl.learners import q_learner

    td_mask = q_learner.td_mask

    def planted(batch):
        terminated, mask = td_mask(batch)
        PLANTS[kind](mask)
        return terminated, mask
    monkeypatch.setattr(q_learner, "td_mask", planted)
    checker, _ = _run_on_meta(monkeypatch, "acorm", pretrain_encoder_steps=0, pretrain_contrastive_steps=0)
    assert checker.wrong and all("test_device_placement.py" in w for w in checker.wrong), checker.wrong[:5]


def test_the_checker_catches_a_tensor_cuda_left_behind(monkeypatch):
    """A tensor made before `cuda()` and kept outside the modules (not a parameter or buffer) stays on
    the CPU; torch lets a 0-dim one mix with device tensors, the checker does not."""
    from r3dm_epymarl.learners import q_learner

    td_mask, stale = q_learner.td_mask, th.ones(())

    def planted(batch):
        terminated, mask = td_mask(batch)
        return terminated, mask * stale
    monkeypatch.setattr(q_learner, "td_mask", planted)
    checker, _ = _run_on_meta(monkeypatch, "cds")
    assert checker.wrong and all("test_device_placement.py" in w for w in checker.wrong), checker.wrong[:5]

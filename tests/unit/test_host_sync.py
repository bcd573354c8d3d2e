"""No host sync in a learner update that does not log (issue #24, item 4).

On a GPU every read of a tensor's value by Python, and every op whose output shape depends on the
values, waits for the device. Every registered algorithm runs a few updates that do not log (role
pre-training, updates with and without the contrastive step) while `SyncCounter` counts such reads
(tests/update_probes.py): none may happen outside `host_read`, the declared reads, each of which says
why it is needed; they are counted per update and checked against the list below (docs/PERFORMANCE.md,
"GPU readiness"). A logging update may sync (the stats become floats there). Host QMIX (`r3dm_qmix`)
is the host's own learner: its syncs are the host's code, listed, not the plug-in's.
"""
import pytest

from r3dm_epymarl.modules.sync import host_read
from r3dm_epymarl.registry import ALGORITHMS, COMPONENTS, HOST_PREFIX
from tests import update_probes as probes
from tests.update_probes import SyncCounter

pytest.importorskip(probes.ZOO)

LENGTHS_READ = "episode lengths bound the padding-free world-model loops"
CDS_COUNT = ("CDS's predictor minibatches cover the valid transitions: their number sets the shuffle and "
             "the minibatch loop")
GROUPS_READ = ("the contrastive step's k-means clusters every active (episode, step): their number is its "
               "batch size")
KMEANS_READ = "k-means stops once no centroid moved by more than tol"
CONTRASTIVE = {GROUPS_READ: 1}  # and KMEANS_READ once per Lloyd iteration


def per_update(learner, pretraining: bool) -> dict:
    """The declared reads of one train call, besides the contrastive step's: the accelerated padding-free
    world models read the lengths once (training and reward share them), CDS its count; the plain
    recurrence (wm_fused: false) reads nothing."""
    terms = getattr(learner, "intrinsic", {})
    wm = terms["world_model"] if "world_model" in terms else None
    reads_lengths = wm is not None and wm.skip_padding and wm.fused
    return {**({LENGTHS_READ: 1} if reads_lengths else {}), **({CDS_COUNT: 1} if "cds" in terms else {})}


def _is_host_learner(algorithm):
    return COMPONENTS["learners"][ALGORITHMS[algorithm].learner].startswith(HOST_PREFIX)


def _run(algorithm, steps=6, **overrides):
    """Per train call t = 1..steps (none logs; t = 0 did): (the counter, whether it took a contrastive step,
    whether it was a pre-training step)."""
    zoo = probes.host()
    batches = [probes.make_batch(zoo, seed=s) for s in range(3)]
    learner, args = probes.build(zoo, algorithm, batches[0], **overrides)
    with SyncCounter() as first:
        learner.train(batches[0], 0, 0)  # the first call logs
    updates = []
    for t in range(1, steps + 1):
        interval = getattr(args, "contrastive_interval", 0)
        contrastive = hasattr(learner, "_contrastive_step") and interval > 0 and (
            learner.pretraining() and learner.pretrain_done >= args.pretrain_encoder_steps
            or not learner.pretraining() and (learner.training_steps + 1) % interval == 0)
        pretraining = hasattr(learner, "pretraining") and learner.pretraining()
        with SyncCounter() as counter:
            learner.train(batches[t % 3], t, t)
        updates.append((counter, contrastive, pretraining))
    assert learner.log_stats_t == 0  # no call after the first one logged
    return first, updates, learner


# every registered algorithm, and R3DM's other world-model paths
CASES = [pytest.param(name, {}, id=name) for name in ALGORITHMS] + [
    pytest.param("r3dm", {"wm_skip_padding": False}, id="r3dm-padded"),
    pytest.param("r3dm", {"wm_fused": False, "wm_horizon": 1}, id="r3dm-plain-k1"),
    pytest.param("r3dm", {"precision": "bf16"}, id="r3dm-bf16"),
]


@pytest.mark.parametrize("algorithm, overrides", CASES)
def test_updates_that_do_not_log_make_no_undeclared_host_sync(algorithm, overrides):
    first, updates, learner = _run(algorithm, **overrides)
    assert first.total() > 0, "the logging call reads its stats on the host (the counter sees it)"
    if _is_host_learner(algorithm):
        # The host's own QMIX update (the host's code, not the plug-in's) masks unavailable actions with two
        # boolean-mask assignments, a sync each on a GPU; its plain Adam reads its per-parameter step
        # counters with .item(), tensors torch keeps on the CPU (no device sync). Nothing else.
        for counter, *_ in updates:
            sites = {s.split(" at ")[1].split(":")[0] + " " + s.split("(", 1)[1] for s in counter.undeclared}
            assert sites == {"learners/q_learner.py train: target_mac_out[avail_actions[:, 1:] == 0] = -9999999)",
                             "learners/q_learner.py train: mac_out_detach[avail_actions == 0] = -9999999)",
                             "learners/q_learner.py train: self.optimiser.step())"}, sites
            assert not counter.declared
        return
    # TD updates after the pre-training (2 train calls for ACORM and R3DM), with and without the contrastive step
    assert learner.training_steps == (5 if hasattr(learner, "_contrastive_step") else 7)
    assert (algorithm == "cds") != (any(c for _, c, _ in updates) and not all(c for _, c, _ in updates))
    for t, (counter, contrastive, pretraining) in enumerate(updates, start=1):
        assert counter.undeclared == [], f"t_env={t}: host syncs outside host_read: {counter.undeclared}"
        expected = per_update(learner, pretraining)
        if contrastive:
            expected.update(CONTRASTIVE)
            kmeans = counter.declared.pop(KMEANS_READ, 0)
            assert 1 <= kmeans <= learner.args.kmeans_iters  # one per Lloyd iteration, stops early
        assert dict(counter.declared) == expected, f"t_env={t}"


def _plant(kind):
    """A host sync of `kind` planted in what every plug-in update runs first (the TD mask)."""
    from r3dm_epymarl.learners import q_learner

    td_mask = q_learner.td_mask

    def planted(batch):
        terminated, mask = td_mask(batch)
        if kind == "item":
            mask.sum().item()
        elif kind == "tolist":
            mask.sum().tolist()
        elif kind == "bool":
            bool(mask.any())
        elif kind == "int":
            int(mask.sum())
        elif kind == "cpu":
            mask.cpu()
        elif kind == "numpy":
            mask.numpy()
        elif kind == "mask index":
            mask[mask > 0].sum()
        elif kind == "declared":
            host_read(mask.sum(), "a planted declared read")
        return terminated, mask
    return planted


@pytest.mark.parametrize("kind", ["item", "tolist", "bool", "int", "cpu", "numpy", "mask index", "declared"])
def test_the_counter_catches_a_planted_sync(monkeypatch, kind):
    from r3dm_epymarl.learners import q_learner

    monkeypatch.setattr(q_learner, "td_mask", _plant(kind))
    _, updates, _ = _run("acorm", steps=3, pretrain_encoder_steps=0, pretrain_contrastive_steps=0,
                         contrastive_interval=0)
    for counter, *_ in updates:
        if kind == "declared":
            assert counter.undeclared == [] and counter.declared == {"a planted declared read": 1}
        else:
            assert len(counter.undeclared) == 1 and "test_host_sync.py" in counter.undeclared[0], counter.undeclared

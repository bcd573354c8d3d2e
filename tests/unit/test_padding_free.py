"""`wm_skip_padding`: the world models on the valid steps only give the padded path's values (to float
rounding), gradients and sampled latents; the packed layout itself; the packed hand-written backward
against plain autograd."""
import pytest
import torch as th

from r3dm_epymarl.world_model.accel import Packing, loss_many, observe_many
from r3dm_epymarl.world_model.rssm import RSSM
from tests.unit.test_world_model import (
    assert_same_training, context, make_batch, plain_reference, seeded_training, term_for,
)

LENGTHS = [13, 5, 9, 13, 3, 7]  # transitions per episode: a third of the batch's slots are padding


def test_packing_lists_the_valid_slots_longest_first():
    packing = Packing.from_lengths([2, 4, 1, 4], T=5, device="cpu")
    assert packing.widths == (4, 3, 2, 2)  # streams 1, 3 (4 steps), 0 (2), 2 (1)
    assert packing.order.tolist() == [1, 3, 0, 2]
    # step t, stream s -> t * 4 + s
    assert packing.rows.tolist() == [1, 3, 0, 2, 5, 7, 4, 9, 11, 13, 15]
    x = th.arange(20.0).view(5, 4, 1)
    packed = packing.pack(x)
    assert packed.squeeze(1).tolist() == [1, 3, 0, 2, 5, 7, 4, 9, 11, 13, 15]
    valid = (th.arange(5).unsqueeze(1) < th.tensor([2, 4, 1, 4])).float().unsqueeze(-1)
    assert th.equal(packing.unpack(packed), x * valid)
    # rows of steps 1.. -> the same stream's row one step earlier
    assert packing.previous_rows().tolist() == [0, 1, 2, 4, 5, 7, 8]
    dense = Packing.dense(5, 4)
    assert th.equal(dense.pack(x), x.view(20, 1)) and dense.previous_rows() == slice(0, 16)


def test_packed_training_matches_plain_autograd():
    """The packed scan's hand-written backward (streams ending at different steps) equals step-by-step
    autograd on the padded sequence with a prefix mask: values, draws and every gradient (fp64)."""
    T, O, A, R = 7, 6, 3, 4
    lengths = [7, 3, 5, 1, 7]
    M = len(lengths)
    sizes = dict(hidden=16, deter=12, stoch=3, classes=5)
    models = [RSSM(O, A, 0, **sizes).double(), RSSM(O, A, R, **sizes).double()]
    obs, actions = th.randn(T, M, O).double() * 2, th.eye(A)[th.randint(0, A, (T, M))].double()
    roles = th.rand(T, M, R).double()
    valid = (th.arange(T).unsqueeze(1) < th.tensor(lengths)).double()  # [T, M]
    packing = Packing.from_lengths(lengths, T, "cpu")
    assert_same_training(seeded_training(models, lambda: loss_many(models, obs, actions, [None, roles], packing=packing)),
                         plain_reference(models, obs, actions, roles, valid))


def test_packed_filtering_draws_the_same_latents():
    T, M, O, A = 6, 4, 5, 3
    lengths = [6, 2, 4, 6]
    model = RSSM(O, A, hidden=16, deter=12, stoch=3, classes=5)
    obs, actions = th.randn(T, M, O), th.eye(A)[th.randint(0, A, (T, M))]
    packing = Packing.from_lengths(lengths, T, "cpu")
    with th.no_grad():
        th.manual_seed(2)
        (dense,) = observe_many([model], obs, actions, [None], sample=True)
        th.manual_seed(2)
        (packed,) = observe_many([model], obs, actions, [None], sample=True, packing=packing)
    assert th.equal(packing.pack(dense["stoch"]), packed["stoch"])
    assert th.allclose(packing.pack(dense["deter"]), packed["deter"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k, wm_action, lengths", [
    (1, "current", LENGTHS), (2, "current", LENGTHS), (1, "published", LENGTHS),
    # k as long as (or longer than) every episode: no start reaches step k (issue #41: it crashed)
    (5, "current", [3, 2, 1, 3, 2, 1]), (10, "current", [3, 2, 1, 3, 2, 1]), (10, "current", [1] * 6),
])
def test_term_skipping_padding_matches_the_padded_term(k, wm_action, lengths):
    """One batch, k = 1 and 2 (and k = 1 with the published action alignment), and horizons past every
    episode's end: the same losses (1e-6 relative), gradients, sampled latents, rewards, and the RNG
    left where the padded path leaves it."""
    batch = make_batch(B=6, T=14, N=3, lengths=lengths)
    ctx = context(batch)
    results = {}
    for skip in (False, True):
        th.manual_seed(1)
        term = term_for(batch, wm_horizon=k, wm_skip_padding=skip, wm_reward_sample=True, wm_action=wm_action)
        th.manual_seed(2)
        losses = {name: float(v) for name, v in term._train_step(ctx).items()}  # the floats a log step reads
        grads = [p.grad.clone() for p in [*term.model.parameters(), *term.role_model.parameters()]]
        th.manual_seed(3)
        with th.no_grad():
            reward = term.reward(ctx)
        results[skip] = (losses, grads, reward, dict(term.reward_parts), th.rand(4))
    (padded_losses, padded_grads, padded_reward, padded_parts, padded_next), (losses, grads, reward, parts, after) = (
        results[False], results[True])
    assert th.equal(after, padded_next), "the RNG is left where the padded path leaves it"
    assert padded_losses.keys() == losses.keys()
    for name, value in losses.items():
        assert value == pytest.approx(padded_losses[name], rel=1e-6)
    for g, ref in zip(grads, padded_grads):
        assert th.allclose(g, ref, rtol=1e-5, atol=1e-7)
    # the reward reads sampled latents (wm_reward_sample): equal values mean equal draws
    assert padded_reward.abs().sum() > 0
    assert th.allclose(reward, padded_reward, rtol=1e-6, atol=1e-6)
    for name in padded_parts:
        assert th.allclose(parts[name], padded_parts[name], rtol=1e-6, atol=1e-6)


def test_skipping_padding_changes_what_is_computed():
    """The packed path really runs fewer rows: its scan covers the valid slots only."""
    batch = make_batch(B=6, T=14, N=3, lengths=LENGTHS)
    term = term_for(batch, wm_skip_padding=True)
    packing = term._packing(context(batch))
    valid_slots = sum(n + 1 for n in LENGTHS) * 3  # n transitions + the final observation, per agent
    assert packing.size == valid_slots < 14 * 6 * 3
    assert term_for(batch, wm_skip_padding=False)._packing(context(batch)) is None


def test_plain_recurrence_path_trains_the_same():
    """wm_fused: false (autograd through every step, padded) gives the fused padding-free losses and gradients."""
    batch = make_batch(B=6, T=14, N=3, lengths=LENGTHS)
    ctx = context(batch)
    results = []
    for fused in (True, False):
        th.manual_seed(1)
        term = term_for(batch, wm_fused=fused)
        th.manual_seed(2)
        losses = {name: float(v) for name, v in term._train_step(ctx).items()}  # the floats a log step reads
        results.append((losses, [p.grad.clone() for p in [*term.model.parameters(), *term.role_model.parameters()]]))
    (fused_losses, fused_grads), (plain_losses, plain_grads) = results
    for name, value in fused_losses.items():
        assert value == pytest.approx(plain_losses[name], rel=1e-5)
    for g, ref in zip(fused_grads, plain_grads):
        assert th.allclose(g, ref, rtol=1e-4, atol=1e-6)

"""R3DM's world-model term on synthetic batches: distributions, RSSM shapes, KL with free bits,
imagination horizon at episode ends, reward determinism, gradient reach, toy learning, save/load."""
from types import SimpleNamespace

import pytest
import torch as th

from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.intrinsic.base import UpdateContext
from r3dm_epymarl.intrinsic.world_model import WorldModelReward, imagination_steps, observed
from r3dm_epymarl.learners.role_q_learner import td_mask
from r3dm_epymarl.world_model.distributions import (
    categorical_kl, kl_losses, one_hot_log_prob, straight_through_mode, straight_through_sample, symexp, symlog,
    unimix_log_probs, unimix_probs,
)
from r3dm_epymarl.world_model.accel import loss_many, observe_many
from r3dm_epymarl.world_model.rssm import RSSM
from tests.synthetic import make_batch as _make_batch

def make_batch(**kwargs):
    """A synthetic batch with `filled` stored as integers, as a host EpisodeBatch stores it.

    (td_mask does `batch["filled"][:, :-1].float()`, which is a view, not a copy, of a float tensor;
    with integer `filled` it is a copy and the batch stays intact.)
    """
    batch = _make_batch(**kwargs)
    batch["filled"] = batch["filled"].long()
    return batch


SMALL = dict(wm_hidden=32, wm_deter=32, wm_stoch=4, wm_classes=8)


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def wm_args(batch, R=8, **overrides):
    config = dict(n_agents=batch["obs"].shape[2], n_actions=batch["actions_onehot"].shape[-1], role_embed_dim=R,
                  r3dm_beta1=1.0, r3dm_beta3=1.0, wm_horizon=1, wm_reward_sample=False, **SMALL)
    config.update(overrides)
    return SimpleNamespace(**config)


def context(batch, z=None, R=8):
    B, T, N, _ = batch["obs"].shape
    z = th.rand(B, T, N, R) if z is None else z
    return UpdateContext(batch=batch, q=None, z=z, mask=td_mask(batch)[1], mac=None, t_env=0)


def term_for(batch, R=8, **overrides):
    return WorldModelReward(wm_args(batch, R, **overrides), batch["obs"].shape[-1])


def has_grad(module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def no_grad(module) -> bool:
    return all(p.grad is None or p.grad.abs().sum() == 0 for p in module.parameters())


# --- distributions ----------------------------------------------------------------------------

def test_symlog_symexp_are_inverse():
    x = th.cat([th.linspace(-1e3, 1e3, 101), th.randn(100), th.zeros(1)])
    assert th.allclose(symexp(symlog(x)), x, rtol=1e-5, atol=1e-5)
    assert th.allclose(symlog(symexp(x / 100)), x / 100, rtol=1e-5, atol=1e-6)
    assert symlog(th.tensor(0.0)) == 0


def test_unimix_probs_sum_to_one_with_floor():
    logits = th.randn(5, 16, 16) * 20
    probs = unimix_probs(logits, 0.01)
    assert th.allclose(probs.sum(-1), th.ones(5, 16))
    assert (probs >= 0.01 / 16 - 1e-7).all()
    assert th.allclose(unimix_log_probs(logits, 0.01).exp(), probs)
    assert th.allclose(probs, 0.99 * th.softmax(logits, -1) + 0.01 / 16)


def test_straight_through_sample_is_one_hot_with_gradient():
    logits = th.randn(64, 16, 16, requires_grad=True)
    probs = unimix_probs(logits)
    sample = straight_through_sample(probs)
    assert ((sample == 0) | (sample == 1)).all() and (sample.sum(-1) == 1).all()
    weight = th.randn(64, 16, 16)
    (sample * weight).sum().backward()
    grad_st = logits.grad.clone()
    logits.grad = None
    (unimix_probs(logits) * weight).sum().backward()  # ST gradient = gradient of the probs
    assert grad_st.abs().sum() > 0 and th.allclose(grad_st, logits.grad)
    # Deterministic under the global seed; samples follow the probabilities.
    th.manual_seed(3)
    a = straight_through_sample(probs.detach())
    th.manual_seed(3)
    assert th.equal(a, straight_through_sample(probs.detach()))
    peaked = unimix_probs(th.tensor([[10.0, 0.0, 0.0, 0.0]]).expand(20000, 4))
    freq = straight_through_sample(peaked).mean(0)
    assert th.allclose(freq, peaked[0], atol=0.01)
    mode = straight_through_mode(probs)
    assert th.equal(mode.argmax(-1), logits.argmax(-1)) and ((mode == 0) | (mode == 1)).all()


def test_kl_free_bits_values_and_gradient_routing():
    post = th.randn(6, 16, 16) * 2
    prior = th.randn(6, 16, 16) * 2
    post[:2] = prior[:2] + 0.01 * th.randn(2, 16, 16)  # nearly equal: KL below free bits
    post_p, prior_p = unimix_probs(post), unimix_probs(prior)
    kl = (post_p * (post_p.log() - prior_p.log())).sum((-2, -1))  # [6]
    assert (kl[:2] < 1).all() and (kl[2:] > 1).all()
    assert th.allclose(categorical_kl(post, prior), kl)
    post, prior = post.requires_grad_(), prior.requires_grad_()
    dyn, rep = kl_losses(post, prior, free_bits=1.0)
    assert th.allclose(dyn, kl.clamp(min=1.0)) and th.allclose(rep, kl.clamp(min=1.0))
    assert th.allclose(kl_losses(post, prior, free_bits=0.0)[0], kl)

    dyn.sum().backward(retain_graph=True)
    assert post.grad is None  # dyn trains the prior only
    assert (prior.grad[:2] == 0).all() and (prior.grad[2:].abs().sum((-2, -1)) > 0).all()
    prior.grad = None
    rep.sum().backward()
    assert prior.grad is None  # rep trains the posterior only
    assert (post.grad[:2] == 0).all() and (post.grad[2:].abs().sum((-2, -1)) > 0).all()


def test_kl_gradients_match_plain_autograd():
    """kl_losses' written-out gradients equal autograd through the unimix log-probabilities."""
    post = (th.randn(40, 4, 8) * 3).double().requires_grad_()
    prior = (th.randn(40, 4, 8) * 3).double().requires_grad_()
    w_dyn, w_rep = th.randn(40).double(), th.randn(40).double()

    def reference(post, prior):
        post_log, prior_log = unimix_log_probs(post), unimix_log_probs(prior)
        dyn = (post_log.exp().detach() * (post_log.detach() - prior_log)).sum((-2, -1)).clamp(min=1.0)
        rep = (post_log.exp() * (post_log - prior_log.detach())).sum((-2, -1)).clamp(min=1.0)
        return dyn, rep

    grads = []
    for fn in (kl_losses, reference):
        dyn, rep = fn(post, prior)
        ((dyn * w_dyn).sum() + (rep * w_rep).sum()).backward()
        grads.append((post.grad, prior.grad))
        post.grad = prior.grad = None
    (post_fast, prior_fast), (post_ref, prior_ref) = grads
    assert (post_ref != 0).any() and (prior_ref != 0).any()
    assert th.allclose(post_fast, post_ref, atol=1e-12) and th.allclose(prior_fast, prior_ref, atol=1e-12)
    assert all(th.allclose(a, b) for a, b in zip(kl_losses(post, prior), reference(post, prior)))


def test_one_hot_log_prob_of_the_mode_and_of_a_sample():
    logits = th.randn(3, 4, 8)
    mode = th.nn.functional.one_hot(logits.argmax(-1), 8).float()
    expected = unimix_probs(logits).max(-1).values.log().sum(-1)
    assert th.allclose(one_hot_log_prob(logits, mode), expected)
    sample = th.nn.functional.one_hot(th.randint(0, 8, (3, 4)), 8).float()
    expected = (unimix_probs(logits) * sample).sum(-1).log().sum(-1)
    assert th.allclose(one_hot_log_prob(logits, sample), expected)


# --- the RSSM ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role_dim", [0, 5])
def test_rssm_shapes(role_dim):
    T, M, O, A = 7, 6, 9, 4
    model = RSSM(O, A, role_dim=role_dim)  # default sizes: 128 hidden / deter, 16 x 16 latents
    obs, actions = th.randn(T, M, O), th.eye(A)[th.randint(0, A, (T, M))]
    roles = th.rand(T, M, role_dim) if role_dim else None
    out = model.observe(obs, actions, roles)
    assert out["deter"].shape == (T, M, 128) and out["stoch"].shape == (T, M, 256)
    assert out["post"].shape == (T, M, 16, 16) and out["prior"].shape == (T, M, 16, 16)
    assert ((out["stoch"] == 0) | (out["stoch"] == 1)).all() and (out["stoch"].view(T, M, 16, 16).sum(-1) == 1).all()
    assert model.decode(out["deter"], out["stoch"], roles).shape == (T, M, O)
    im = model.imagine(out["deter"][-1], out["stoch"][-1], actions[:3], None if roles is None else roles[:3])
    assert im["deter"].shape == (3, M, 128) and im["stoch"].shape == (3, M, 256) and im["prior"].shape == (3, M, 16, 16)
    loss = model.loss(obs, actions, roles, th.ones(T, M))
    assert set(loss) == {"recon", "dyn", "rep", "total"} and all(v.dim() == 0 for v in loss.values())
    assert th.allclose(loss["total"], loss["recon"] + 0.5 * loss["dyn"] + 0.1 * loss["rep"])
    assert loss["dyn"] >= 1.0 and loss["rep"] >= 1.0


def test_observe_matches_plain_recurrence():
    """The fused loop equals h_t = cell(in([s_{t-1}, a_{t-1}, z_{t-1}]), h_{t-1}), post from [h_t, embed_t]."""
    T, M, O, A, R = 6, 5, 7, 3, 4
    model = RSSM(O, A, role_dim=R, hidden=32, deter=24, stoch=4, classes=8)
    obs, actions, roles = th.randn(T, M, O), th.eye(A)[th.randint(0, A, (T, M))], th.rand(T, M, R)
    with th.no_grad():
        out = model.observe(obs, actions, roles, sample=False)
        h, s = model.initial(M)
        a_prev, z_prev = th.zeros(M, A), th.zeros(M, R)
        for t in range(T):
            h = model.seq_step(h, s, model.in_other(th.cat([a_prev, z_prev], -1)))
            embed = model.encoder(symlog(obs[t]))
            hidden = model.post_norm(model.post_deter(h) + model.post_embed(embed))
            logits = model.post_out(th.nn.functional.silu(hidden))
            s = th.nn.functional.one_hot(logits.view(M, 4, 8).argmax(-1), 8).float().view(M, 32)
            assert th.allclose(out["deter"][t], h, atol=1e-5)
            assert th.allclose(out["post"][t].reshape(M, 32), logits, atol=1e-4)
            assert th.equal(out["stoch"][t], s)
            a_prev, z_prev = actions[t], roles[t]
        # The learned initial state: h_{-1} = tanh(w), s_{-1} = prior mode of h_{-1}.
        h0, s0 = model.initial(2)
        assert th.allclose(h0[0], th.tanh(model.h_init))
        assert th.equal(s0[0].view(4, 8).argmax(-1), model.prior(h0[0]).argmax(-1))


def plain_loss(model, obs, actions, roles, valid):
    """RSSM.loss written step by step with autograd (h, posterior, straight-through sample per step)."""
    T, M, _ = obs.shape
    h, s = model.initial(M)
    a_prev, z_prev = th.zeros_like(actions[0]), None if roles is None else th.zeros_like(roles[0])
    deters, stochs, posts = [], [], []
    for t in range(T):
        h = model.seq_step(h, s, model.in_other(a_prev if roles is None else th.cat([a_prev, z_prev], -1)))
        embed = model.encoder(symlog(obs[t]))
        logits = model.post_out(th.nn.functional.silu(model.post_norm(model.post_deter(h) + model.post_embed(embed))))
        s = straight_through_sample(unimix_probs(logits.unflatten(-1, (model.stoch, model.classes)))).flatten(-2)
        deters.append(h), stochs.append(s), posts.append(logits)
        a_prev, z_prev = actions[t], None if roles is None else roles[t]
    deter, stoch = th.stack(deters), th.stack(stochs)
    post = th.stack(posts).unflatten(-1, (model.stoch, model.classes))
    prev_roles = None if roles is None else th.cat([th.zeros_like(roles[:1]), roles[:-1]], 0)  # z_{t-1} decodes o_t
    recon = (model.decode(deter, stoch, prev_roles) - symlog(obs)).pow(2).sum(-1)
    post_log, prior_log = unimix_log_probs(post), unimix_log_probs(model.prior(deter))
    dyn = (post_log.exp().detach() * (post_log.detach() - prior_log)).sum((-2, -1)).clamp(min=1.0)
    rep = (post_log.exp() * (post_log - prior_log.detach())).sum((-2, -1)).clamp(min=1.0)
    total = recon + 0.5 * dyn + 0.1 * rep
    return (total * valid).sum() / valid.sum()


def seeded_training(models, compute):
    """Losses from `compute()` under seed 5 (one list entry per model: a loss dict or a scalar), the
    backward of their sum, and every parameter gradient: (totals, grads per model)."""
    for m in models:
        m.zero_grad(set_to_none=True)
    th.manual_seed(5)  # the same draws for every form: model by model, step by step
    totals = [loss["total"] if isinstance(loss, dict) else loss for loss in compute()]
    sum(totals).backward()
    for m in models:
        assert all(p.grad is not None for p in m.parameters())
    return totals, [[p.grad.clone() for p in m.parameters()] for m in models]


def assert_same_training(result, reference):
    """Equal losses (1e-12 relative) and gradients (1e-9) from two `seeded_training` results (fp64)."""
    for loss, ref in zip(result[0], reference[0]):
        assert th.allclose(loss, ref, rtol=1e-12)
    for grads, ref_grads in zip(result[1], reference[1]):
        for g, ref in zip(grads, ref_grads):
            assert th.allclose(g, ref, rtol=1e-9, atol=1e-12)


def plain_reference(models, obs, actions, roles, valid):
    """This test module's own step-by-step autograd reference, trained as `seeded_training`."""
    return seeded_training(models, lambda: [plain_loss(models[0], obs, actions, None, valid),
                                            plain_loss(models[1], obs, actions, roles, valid)])


def test_fused_training_matches_plain_autograd():
    """Both models' losses from the fused loop (hand-written backward through time) equal the plain
    step-by-step autograd version in value, sampling draws and every parameter gradient."""
    T, M, O, A, R = 7, 5, 6, 3, 4
    sizes = dict(hidden=16, deter=12, stoch=3, classes=5)
    models = [RSSM(O, A, 0, **sizes).double(), RSSM(O, A, R, **sizes).double()]
    obs, actions = th.randn(T, M, O).double() * 2, th.eye(A)[th.randint(0, A, (T, M))].double()
    roles, valid = th.rand(T, M, R).double(), (th.rand(T, M) > 0.2).double()
    reference = plain_reference(models, obs, actions, roles, valid)
    assert_same_training(seeded_training(models, lambda: loss_many(models, obs, actions, [None, roles], valid)),
                         reference)
    # the library's plain recurrence (RSSM.loss, wm_fused: false) is the same as this test's reference
    assert_same_training(seeded_training(models, lambda: [models[0].loss(obs, actions, None, valid),
                                                          models[1].loss(obs, actions, roles, valid)]),
                         reference)


def test_update_uses_the_same_losses_as_separate_models():
    batch = make_batch(B=3, T=7, N=2)
    ctx = context(batch)
    term = term_for(batch)
    obs, actions, z, (B, T, N) = term._streams(ctx)
    valid = observed(batch).t().unsqueeze(-1).expand(T, B, N).reshape(T, B * N)
    th.manual_seed(3)
    # each model's plain recurrence on its own graph
    agnostic, role = term.model.loss(obs, actions, None, valid), term.role_model.loss(obs, actions, z, valid)
    th.manual_seed(3)
    fused = term.update(ctx)  # the accelerator: one fused loop for both, padding skipped
    for prefix, losses in (("", agnostic), ("role_", role)):
        for name in ("recon", "dyn", "rep"):
            assert fused[f"loss_wm_{prefix}{name}"] == pytest.approx(losses[name].item(), rel=1e-5)


def test_observe_sampling_is_seeded():
    model = RSSM(5, 3, hidden=32, deter=32, stoch=4, classes=8)
    obs, actions = th.randn(4, 3, 5), th.eye(3)[th.randint(0, 3, (4, 3))]
    th.manual_seed(7)
    a = model.loss(obs, actions)["total"]
    th.manual_seed(7)
    assert th.equal(a, model.loss(obs, actions)["total"])


# --- imagination horizon and the reward ---------------------------------------------------------

LENGTHS = [9, 5, 3, 1]  # transitions per episode in a T = 10 batch (the last step t = n is the final obs)


def expected_horizon(k, T=10):
    K = th.zeros(len(LENGTHS), T - 1)
    for b, n in enumerate(LENGTHS):
        for t in range(n):  # valid starts t = 0..n-1; last valid observation index is n
            K[b, t] = min(k, n - t)
    return K


@pytest.mark.parametrize("k", [1, 2, 3])
def test_imagination_horizon_at_episode_ends(k):
    batch = make_batch(B=4, T=10, lengths=LENGTHS)
    mask = td_mask(batch)[1][..., 0]
    steps, K = imagination_steps(observed(batch), mask, k)
    assert steps.shape == (k, 4, 9)
    assert th.equal(K, expected_horizon(k))
    # An observation after the final one is never a target, even if a host marked it filled.
    leaky = make_batch(B=4, T=10, lengths=LENGTHS)
    leaky["filled"][:] = 1
    assert th.equal(imagination_steps(observed(leaky), td_mask(leaky)[1][..., 0], k)[1], K)


def test_reward_is_zero_without_imagined_steps_and_matches_k1_where_one_step_is_left():
    batch = make_batch(B=4, T=10, lengths=LENGTHS)
    ctx = context(batch)
    term1 = term_for(batch, wm_horizon=1)
    term2 = term_for(batch, wm_horizon=2)
    term2.load_state_dict(term1.state_dict())
    with th.no_grad():
        r1, r2 = term1.reward(ctx)[..., 0], term2.reward(ctx)[..., 0]
    for k, r in ((1, r1), (2, r2)):
        K = expected_horizon(k)
        assert (r[K == 0] == 0).all() and (r[ctx.mask[..., 0] == 0] == 0).all()
        assert (r[K > 0] != 0).all()
    # Where only one imagined step is left, the k = 2 reward is the one-step reward.
    one_left = expected_horizon(2) == 1
    assert one_left.sum() == 4
    assert th.allclose(r2[one_left], r1[one_left], atol=1e-5)
    assert not th.allclose(r2[expected_horizon(2) == 2], r1[expected_horizon(2) == 2])


def test_multi_step_imagination_matches_rssm_imagine():
    """Step j of the reward's imagination is RSSM.imagine from the posterior-mode state at t."""
    batch = make_batch(B=2, T=8, N=2, lengths=[7, 7])
    ctx = context(batch)
    k = 3
    term = term_for(batch, wm_horizon=k)
    model = term.target_role_model
    obs, actions, z, _ = term._streams(ctx)
    with th.no_grad():
        err, logp = term.predict([model], obs, actions, [z])[0]  # [k, T-1, M0]
        out = model.observe(obs, actions, z, sample=False)
        t = 2
        im = model.imagine(out["deter"][t], out["stoch"][t], actions[t:t + k], z[t:t + k])
        pred = model.decode(im["deter"], im["stoch"], z[t:t + k])  # o_{t+j} decoded with z_{t+j-1}
        expected = (pred - symlog(obs[t + 1:t + 1 + k])).pow(2).sum(-1)  # [k, M0]
    assert th.allclose(err[:, t], expected, atol=1e-4)
    assert th.allclose(logp[:, t], unimix_probs(im["prior"]).max(-1).values.log().sum(-1), atol=1e-5)  # the mode's


@pytest.mark.parametrize("k", [1, 3])
def test_fused_prediction_matches_each_model_alone(k):
    """The reward filters and imagines with both target models in one loop: the same as one by one."""
    batch = make_batch(B=2, T=8, N=2, lengths=[7, 5])
    ctx = context(batch)
    term = term_for(batch, wm_horizon=k)
    for p in term.target_model.parameters():  # make the two models differ
        p.add_(0.1 * th.randn_like(p))
    obs, actions, z, _ = term._streams(ctx)
    with th.no_grad():
        together = term.predict([term.target_model, term.target_role_model], obs, actions, [None, z])
        alone = [term.predict([term.target_model], obs, actions, [None])[0],
                 term.predict([term.target_role_model], obs, actions, [z])[0]]
    for (err, logp), (err1, logp1) in zip(together, alone):
        assert th.allclose(err, err1, atol=1e-5) and th.allclose(logp, logp1, atol=1e-5)


def test_reward_shape_finite_deterministic_and_parts():
    batch = make_batch(B=3, T=9, N=2)
    ctx = context(batch)
    term = term_for(batch, wm_horizon=2)
    with th.no_grad():
        r = term.reward(ctx)
        parts = term.reward_parts
        again = term.reward(ctx)
    assert r.shape == (3, 8, 1) and th.isfinite(r).all()
    assert th.equal(r, again)
    assert set(parts) == {"r_int_obs", "r_int_lat"}
    assert parts["r_int_obs"].shape == parts["r_int_lat"].shape == (3, 8, 1)
    assert th.allclose(parts["r_int_obs"] + parts["r_int_lat"], r)
    # beta3 = 0 removes the latent part.
    term0 = term_for(batch, wm_horizon=2, r3dm_beta3=0.0)
    term0.load_state_dict(term.state_dict())
    with th.no_grad():
        r0 = term0.reward(ctx)
    assert (term0.reward_parts["r_int_lat"] == 0).all() and th.allclose(r0, parts["r_int_obs"])


def test_reward_does_not_depend_on_training_rng():
    batch = make_batch(B=2, T=6, N=2)
    ctx = context(batch)
    term = term_for(batch)
    with th.no_grad():
        th.manual_seed(1)
        a = term.reward(ctx)
        th.manual_seed(2)
        assert th.equal(a, term.reward(ctx))


# --- training ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fused", [True, False])
def test_gradients_reach_only_the_owning_model(fused):
    batch = make_batch(B=3, T=7, N=2)
    z = th.rand(3, 7, 2, 8, requires_grad=True)
    ctx = context(batch, z=z)
    term = term_for(batch, wm_fused=fused)
    assert not any(p.requires_grad for p in term.target_model.parameters())
    assert not any(p.requires_grad for p in term.target_role_model.parameters())
    agnostic, role = term.losses(ctx)
    agnostic["total"].backward()
    assert has_grad(term.model) and no_grad(term.role_model) and z.grad is None
    term.zero_grad(set_to_none=True)
    if fused:  # the accelerator's backward runs once per graph: a fresh one for the role model's loss
        role = term.losses(ctx)[1]
    role["total"].backward()
    assert has_grad(term.role_model) and no_grad(term.model) and z.grad is None
    assert has_grad(term.role_model.in_other)  # z reaches the role model through its inputs

    before = [p.clone() for p in term.target_model.parameters()]
    online_before = [p.clone() for p in term.model.parameters()]
    losses = term.update(ctx)
    assert z.grad is None
    assert set(losses) == {f"loss_wm_{p}{n}" for p in ("", "role_") for n in ("recon", "dyn", "rep")}
    # 0-dim and detached, left on the device: the learner reads them at its log steps (no host sync)
    assert all(isinstance(v, th.Tensor) and v.dim() == 0 and not v.requires_grad for v in losses.values())
    # Two EMA steps (published): target <- target + (1 - (1 - tau)^2) (online - target) after the online step.
    rate = 1 - (1 - 0.005) ** 2
    for tb, tp, p, pb in zip(before, term.target_model.parameters(), term.model.parameters(), online_before):
        assert th.allclose(tp, tb + rate * (p - tb), atol=1e-7)
    assert any(not th.equal(p, pb) for p, pb in zip(term.model.parameters(), online_before))


def ring_batch(B=8, T=12, N=2, size=6, seed=0):
    """Predictable dynamics: a position on a ring moves by (action - 1); obs = 2 * one-hot(position)."""
    g = th.Generator().manual_seed(seed)
    batch = make_batch(B=B, T=T, N=N, obs=size, A=3, lengths=[T - 1] * B)
    actions = th.randint(0, 3, (B, T, N), generator=g)
    pos = th.zeros(B, T, N, dtype=th.long)
    pos[:, 0] = th.randint(0, size, (B, N), generator=g)
    for t in range(1, T):
        pos[:, t] = (pos[:, t - 1] + actions[:, t - 1] - 1) % size
    batch["obs"] = 2.0 * th.nn.functional.one_hot(pos, size).float()
    batch["actions"] = actions.unsqueeze(-1)
    batch["actions_onehot"] = th.nn.functional.one_hot(actions, 3).float()
    return batch


def test_training_decreases_the_world_model_loss():
    batch = ring_batch()
    ctx = context(batch, R=4)
    term = term_for(batch, R=4, wm_lr=1e-3)
    first = term.update(ctx)
    for _ in range(150):
        last = term.update(ctx)
    def total(losses, p=""):
        return losses[f"loss_wm_{p}recon"] + 0.5 * losses[f"loss_wm_{p}dyn"] + 0.1 * losses[f"loss_wm_{p}rep"]
    assert total(last) < 0.5 * total(first)
    assert total(last, "role_") < 0.5 * total(first, "role_")
    assert last["loss_wm_recon"] < 0.25 * first["loss_wm_recon"]


def test_role_model_uses_roles():
    """o_{t+1} is a function of z_t: only the role-conditioned model can predict it."""
    B, T, N, R = 8, 10, 2, 4
    batch = make_batch(B=B, T=T, N=N, obs=R, A=3, lengths=[T - 1] * B)
    z = th.rand(B, T, N, R)
    batch["obs"] = th.cat([th.zeros(B, 1, N, R), 3 * z[:, :-1]], 1)
    ctx = context(batch, z=z, R=R)
    term = term_for(batch, R=R, wm_lr=1e-3, wm_target_tau=1.0, r3dm_beta3=0.0)
    for _ in range(150):
        losses = term.update(ctx)
    assert losses["loss_wm_role_recon"] < losses["loss_wm_recon"]
    assert losses["loss_wm_role_dyn"] < losses["loss_wm_dyn"]
    with th.no_grad():
        r = term.reward(ctx)
    mask = ctx.mask
    # r_obs = agnostic error - role error: positive where the roles make the next observation predictable.
    assert (r * mask).sum() / mask.sum() > 0.1


def test_state_dict_round_trip():
    batch = make_batch(B=3, T=7, N=2)
    ctx = context(batch)
    term = term_for(batch, wm_horizon=2)
    for _ in range(3):
        term.update(ctx)
    state = term.state_dict()
    th.manual_seed(123)
    other = term_for(batch, wm_horizon=2)
    other.load_state_dict(state)
    with th.no_grad():
        assert th.equal(term.reward(ctx), other.reward(ctx))
    for mine, theirs in zip(term.optimisers(), other.optimisers()):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
        for key in a["state"]:
            for name, value in a["state"][key].items():
                assert th.equal(value, b["state"][key][name])
    assert len(term.get_extra_state()["optimisers"]) == 2
    th.manual_seed(5)
    la = term.update(ctx)
    th.manual_seed(5)
    assert la == other.update(ctx)


def test_bad_horizon_is_a_config_error():
    batch = make_batch(B=2, T=5, N=2)
    with pytest.raises(ConfigError, match="wm_horizon"):
        term_for(batch, wm_horizon=0)

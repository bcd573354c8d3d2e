"""The published method, behaviour by behaviour (docs/FIDELITY.md): each test failed on the code before
the fidelity pass of 2026-11-28 and pins one row of the faithfulness ledger."""
import copy
from types import SimpleNamespace

import pytest
import torch as th

from r3dm_epymarl.intrinsic.base import UpdateContext
from r3dm_epymarl.intrinsic.world_model import WorldModelReward
from r3dm_epymarl.learners.q_learner import td_mask
from tests.synthetic import build_learner, make_batch


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(th.equal(x, y) for x, y in zip(a, b))


# --- the role-conditioned world model must not read the observation it predicts ---------------------

def noise_context(seed, B=16, T=10, N=2, O=6, A=3, role_map=None):
    """i.i.d. noise observations (nothing is predictable) and roles that are a function of the CURRENT
    observation, z_t = sigmoid(o_t W), as f_r(f_e(o_<=t)) is."""
    batch = make_batch(B=B, T=T, N=N, obs=O, A=A, lengths=[T - 1] * B, seed=seed)
    batch["filled"] = batch["filled"].long()
    batch["obs"] = th.randn(B, T, N, O, generator=th.Generator().manual_seed(1000 + seed))
    z = th.sigmoid(batch["obs"] @ role_map)
    return UpdateContext(batch=batch, q=None, z=z, mask=td_mask(batch)[1], mac=None, t_env=0)


def test_role_model_gains_nothing_on_unpredictable_observations():
    """With z_t in the decoder of o_t (the leak) the role model 'predicted' noise: r_obs was 0.73 x the
    agnostic model's error here (0.97 x in longer runs). With z_{t-1}, as published, it must be ~0."""
    O, R = 6, 8
    role_map = th.randn(O, R)
    args = SimpleNamespace(n_agents=2, n_actions=3, role_embed_dim=R, r3dm_beta1=1.0, r3dm_beta3=0.0, wm_horizon=1,
                           wm_hidden=32, wm_deter=32, wm_stoch=4, wm_classes=8, wm_lr=1e-3, wm_target_tau=1.0)
    term = WorldModelReward(args, O)
    for step in range(120):  # a fresh noise batch each step: nothing to memorise
        losses = term.update(noise_context(step, role_map=role_map))
    # Training: the role model's reconstruction is no better than the agnostic model's.
    assert losses["loss_wm_role_recon"] > 0.85 * losses["loss_wm_recon"]
    ctx = noise_context(10_000, role_map=role_map)
    with th.no_grad():
        r = term.reward(ctx)
        obs, actions, _, _ = term._streams(ctx)
        agnostic_error = term.predict([term.target_model], obs, actions, [None])[0][0].mean()
    r_obs = (r * ctx.mask).sum() / ctx.mask.sum()
    assert agnostic_error > 1.0  # the noise is unpredictable ...
    assert r_obs.abs() <= 0.15 * agnostic_error  # ... for the role model too


def test_reward_latents_are_sampled_by_default_and_seeded():
    O, R = 5, 4
    ctx = noise_context(0, B=3, T=6, O=O, role_map=th.randn(O, R))
    args = SimpleNamespace(n_agents=2, n_actions=3, role_embed_dim=R, r3dm_beta3=1.0, wm_horizon=2,
                           wm_hidden=16, wm_deter=16, wm_stoch=4, wm_classes=8)
    term = WorldModelReward(args, O)
    assert term.reward_sample
    with th.no_grad():
        th.manual_seed(1)
        a = term.reward(ctx)
        th.manual_seed(1)
        b = term.reward(ctx)
        th.manual_seed(2)
        c = term.reward(ctx)
    assert th.equal(a, b) and not th.equal(a, c)
    modes = WorldModelReward(SimpleNamespace(**{**vars(args), "wm_reward_sample": False}), O)
    modes.load_state_dict(term.state_dict())
    with th.no_grad():
        th.manual_seed(1)
        d = modes.reward(ctx)
        th.manual_seed(2)
        assert th.equal(d, modes.reward(ctx))


# --- ACORM's schedules -----------------------------------------------------------------------------

def test_key_encoder_takes_an_ema_step_after_an_ordinary_update():
    batch = make_batch()
    learner, _ = build_learner(batch, contrastive_interval=1000)
    key = learner.contrastive.key_encoder
    key_before, role_before = params(key), params(learner.mac.roles.role)
    learner.train(batch, 0, 0)  # no contrastive step in this update
    assert learner.stats.get("loss_contrastive") is None
    tau = learner.args.role_momentum_tau
    for kb, k, r in zip(key_before, key.parameters(), learner.mac.roles.role.parameters()):
        assert th.allclose(k, kb + tau * (r - kb), atol=1e-7)
    assert not same(role_before, params(learner.mac.roles.role))  # f_r moved under the TD loss, so did the key


def test_bilinear_w_starts_uniform_in_unit_interval():
    learner, _ = build_learner(make_batch(), role_embed_dim=32)
    W = learner.contrastive.bilinear
    assert W.min() >= 0 and W.max() < 1 and 0.4 < W.mean() < 0.6 and not th.equal(W, th.eye(32))


def test_contrastive_step_runs_before_the_td_step():
    batch = make_batch()
    learner, _ = build_learner(batch, contrastive_interval=1)
    calls = []
    contrastive, losses = learner._contrastive_step, learner.losses
    learner._contrastive_step = lambda *a: calls.append("contrastive") or contrastive(*a)
    learner.losses = lambda *a: calls.append("td") or losses(*a)
    learner.train(batch, 0, 0)
    assert calls == ["contrastive", "td"]


@pytest.mark.parametrize("algorithm", ["acorm", "r3dm"])
def test_pretraining_takes_one_step_per_call_on_its_own_batch_without_td(algorithm):
    encoder_steps, contrastive_steps = 3, 2
    batches = [make_batch(seed=s) for s in range(encoder_steps + contrastive_steps + 1)]
    learner, _ = build_learner(batches[0], algorithm, pretrain_encoder_steps=encoder_steps,
                               pretrain_contrastive_steps=contrastive_steps, contrastive_interval=100,
                               **({"intrinsic_terms": ["world_model"]} if algorithm == "r3dm" else {}))
    seen = []
    pretrain_forward, contrastive = learner.pretrain.forward, learner._contrastive_step
    learner.pretrain.forward = lambda e, obs, mask: seen.append(("encoder", obs)) or pretrain_forward(e, obs, mask)
    learner._contrastive_step = lambda e, mask: seen.append(("contrastive", e)) or contrastive(e, mask)
    td_nets = [learner.mac.agent, learner.mixer]
    td_before = [params(n) for n in td_nets]
    wm = learner.intrinsic["world_model"] if algorithm == "r3dm" else None
    for i, batch in enumerate(batches[:-1]):
        wm_before = None if wm is None else params(wm.model)
        learner.train(batch, t_env=10 * i, episode_num=i)
        assert learner.training_steps == 0 and learner.pretraining() == (i < 4)
        assert all(same(b, params(n)) for b, n in zip(td_before, td_nets)), "no TD step during pre-training"
        phase, data = seen[-1]
        assert phase == ("encoder" if i < encoder_steps else "contrastive") and len(seen) == i + 1
        if phase == "encoder":
            assert data is batch["obs"]  # this call's own batch
        else:
            x = learner.mac.trajectory_inputs(batch)
            with th.no_grad():
                assert th.equal(data, learner.mac.roles.trajectory.unroll(x)[:, :-1])
        if wm is not None:  # the world models train on the same batches; hard targets while f_e pre-trains
            assert not same(wm_before, params(wm.model))
            assert same(params(wm.model), params(wm.target_model)) == (phase == "encoder")
    learner.train(batches[-1], 100, 5)  # pre-training is over: the first TD update
    assert learner.training_steps == 1 and len(seen) == encoder_steps + contrastive_steps
    assert not all(same(b, params(n)) for b, n in zip(td_before, td_nets))


# --- the target network reads the online roles and the online state features -----------------------

def test_target_q_reads_online_roles_and_online_state_features():
    batch = make_batch()
    a, _ = build_learner(batch, contrastive_interval=0)
    b = copy.deepcopy(a)
    # Spoil everything of b's target that the published code does not read: the target's role networks
    # and the target mixer's state features. The TD losses must not change.
    with th.no_grad():
        for module in (b.target_mac.roles, b.target_mixer.state_fc, b.target_mixer.state_gru):
            for p in module.parameters():
                p.normal_(0, 5)
    (la, _), (lb, _) = a.losses(batch, 0), b.losses(batch, 0)
    assert th.equal(la["loss_td"], lb["loss_td"])
    # ... while the online roles do enter the target: changing them changes the TD target.
    c = copy.deepcopy(a)
    with th.no_grad():
        for p in c.mac.roles.role.parameters():
            p.add_(th.randn_like(p))
        c.target_mac.agent.load_state_dict(a.target_mac.agent.state_dict())
    target_a, target_c = a.losses(batch, 0)[1]["targets"], c.losses(batch, 0)[1]["targets"]
    assert not th.allclose(target_a, target_c)
    # f_e / f_r have no target copy to update or save.
    assert set(a.target_mac.target_networks()) == {"agent"}
    assert not any(name.startswith("target_roles") for name in a._modules())

"""ACORM's parts on synthetic batches: shapes, masking, gradient reach, toy learning, save/load."""
import copy

import pytest
import torch as th

from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.learners.role_q_learner import td_mask
from r3dm_epymarl.modules.mixers.attn_qmix import AttentionQMixer
from r3dm_epymarl.roles.contrastive import ContrastiveRoleLoss
from r3dm_epymarl.roles.encoders import RoleEncoder, RoleNetwork
from r3dm_epymarl.roles.pretrain import PretrainLoss
from tests.synthetic import acorm_args, build_learner, make_batch


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def grads(module_or_params):
    params = module_or_params.parameters() if hasattr(module_or_params, "parameters") else module_or_params
    return [p.grad for p in params]


def reached(module) -> bool:
    return any(g is not None and g.abs().sum() > 0 for g in grads(module))


# --- encoders and the MAC ---------------------------------------------------------------------

def test_role_network_unroll_matches_step_by_step():
    net = RoleNetwork(input_dim=7, embed_dim=16, role_dim=8)
    x = th.randn(2, 5, 3, 7)  # [B, T, N, in]
    h, z = net.unroll(x)
    e = net.embeddings(h)
    assert th.allclose(net.role(e), z, atol=1e-6), "the composed f_r(fc_out(h)) is f_r(e)"
    assert e.shape == (2, 5, 3, 16) and z.shape == (2, 5, 3, 8)
    assert ((z > 0) & (z < 1)).all()
    h = net.trajectory.init_hidden(6)
    for t in range(5):
        e_t, z_t, h = net.step(x[:, t].reshape(6, 7), h)
        assert th.allclose(e_t.view(2, 3, -1), e[:, t], atol=1e-5)
        assert th.allclose(z_t.view(2, 3, -1), z[:, t], atol=1e-5)


def test_mac_training_unroll_matches_acting():
    batch = make_batch()
    learner, _ = build_learner(batch)
    mac = learner.mac
    unrolled = mac.unroll(batch)
    q, z = unrolled.q, unrolled.extras["z"]
    e = mac.roles.embeddings(unrolled.extras["trajectory_hidden"])
    assert q.shape == (4, 10, 3, 5) and e.shape == (4, 10, 3, 16) and z.shape == (4, 10, 3, 8)
    mac.init_hidden(batch.batch_size)
    for t in range(batch.max_seq_length):
        assert th.allclose(mac.forward(batch, t), q[:, t], atol=1e-5)
        assert th.allclose(mac.last_roles, z[:, t], atol=1e-5)
    assert mac.select_actions(batch, 0, 0).shape == (4, 3)


# --- mixer --------------------------------------------------------------------------------------

def test_attention_mixer_shape_monotonic_and_causal():
    batch = make_batch()
    args = acorm_args(batch)
    mixer = AttentionQMixer(args)
    qs = th.randn(4, 9, 3, requires_grad=True)
    roles = th.rand(4, 9, 3, args.role_embed_dim)
    out = mixer(qs, batch["state"][:, :9], roles)
    assert out.shape == (4, 9, 1)
    (grad,) = th.autograd.grad(out.sum(), qs)
    assert (grad >= 0).all(), "QMIX mixing must be monotonic in every Q_i"
    states = batch["state"][:, :9].clone()
    states[:, 5:] += 10.0  # changing the future must not change the past (the state GRU is causal)
    later = mixer(qs, states, roles)
    assert th.allclose(later[:, :5], out[:, :5]) and not th.allclose(later[:, 5:], out[:, 5:])
    roles_changed = roles.clone()
    roles_changed[:, :, 0] = 1 - roles_changed[:, :, 0]
    assert not th.allclose(mixer(qs, batch["state"][:, :9], roles_changed), out), "roles must matter"


def test_attention_mixer_equals_its_declared_modules_applied_one_by_one():
    """The mixer fuses matmuls (k and v; the four layers reading u); the value must be the plain one."""
    import torch.nn.functional as F

    batch = make_batch()
    args = acorm_args(batch)
    mixer = AttentionQMixer(args)
    qs, states, roles = th.randn(4, 9, 3), batch["state"][:, :9], th.rand(4, 9, 3, args.role_embed_dim)
    B, T, N = qs.shape
    fs = th.relu(mixer.state_fc(states))
    h = fs.new_zeros(B, N * mixer.query_dim)
    hs = []
    for t in range(T):
        h = mixer.state_gru(fs[:, t], h)
        hs.append(h)
    queries = th.stack(hs, 1).reshape(B * T, N, -1)
    att = mixer.attention
    split = lambda x: x.reshape(B * T, N, att.heads, -1).transpose(1, 2)  # noqa: E731
    keys = values = roles.reshape(B * T, N, -1)
    scale = (att.q.out_features // att.heads) ** -0.5
    a = F.softmax(split(att.q(queries)) @ split(att.k(keys)).transpose(-1, -2) * scale, -1)
    a = att.out((a @ split(att.v(values))).transpose(1, 2).reshape(B * T, N, -1))
    u = th.cat([fs.reshape(B * T, -1), a.reshape(B * T, -1)], -1)
    w1 = mixer.hyper_w1(u).abs().view(B * T, N, -1)
    hidden = F.elu(th.bmm(qs.reshape(B * T, 1, N), w1) + mixer.hyper_b1(u).view(B * T, 1, -1))
    expected = th.bmm(hidden, mixer.hyper_w2(u).abs().view(B * T, -1, 1)) + mixer.value(u).view(B * T, 1, 1)
    assert th.allclose(mixer(qs, states, roles), expected.view(B, T, 1), atol=1e-5)


# --- contrastive loss ---------------------------------------------------------------------------

def test_contrastive_loss_matches_the_definition_on_a_tiny_case():
    role = RoleEncoder(embed_dim=4, role_dim=3)
    loss_mod = ContrastiveRoleLoss(role, role_dim=3, momentum_tau=0.005)
    with th.no_grad():
        loss_mod.bilinear.copy_(th.randn(3, 3))
    e = th.randn(2, 4, 4)
    labels = th.tensor([[0, 0, 1, 2], [1, 0, 1, 1]])
    loss = loss_mod(role, e, labels)
    q, k = role(e), loss_mod.key_encoder(e)
    total = []
    for g in range(2):
        for i in range(4):
            s = th.stack([q[g, i] @ loss_mod.bilinear @ k[g, j] for j in range(4)])
            pos = [j for j in range(4) if labels[g, j] == labels[g, i]]
            total.append(-th.log(s[pos].exp().sum() / s.exp().sum()))
    assert th.allclose(loss, th.stack(total).mean(), atol=1e-5)


def test_contrastive_gradient_reaches_role_encoder_and_w_only():
    net = RoleNetwork(input_dim=5, embed_dim=8, role_dim=4)
    loss_mod = ContrastiveRoleLoss(net.role, role_dim=4, momentum_tau=0.005)
    e, _ = net.unroll(th.randn(2, 3, 4, 5))
    groups = e.reshape(6, 4, 8)
    loss_mod(net.role, groups, th.tensor([[0, 0, 1, 1]] * 6)).backward()
    assert reached(net.role) and loss_mod.bilinear.grad is not None
    assert not reached(net.trajectory), "e is an input to the contrastive loss, not trained by it"
    assert all(g is None for g in grads(loss_mod.key_encoder)), "the key encoder is an EMA, no gradient"


def test_contrastive_loss_decreases_and_momentum_follows():
    th.manual_seed(1)
    centres = th.randn(3, 8) * 3
    labels = th.randint(0, 3, (64, 6))
    e = centres[labels] + 0.1 * th.randn(64, 6, 8)  # [G, N, E], well separated by label
    role = RoleEncoder(embed_dim=8, role_dim=4)
    loss_mod = ContrastiveRoleLoss(role, role_dim=4, momentum_tau=0.05)
    opt = th.optim.Adam([*role.parameters(), loss_mod.bilinear], lr=1e-2)
    key_before = copy.deepcopy(loss_mod.key_encoder.state_dict())
    losses = []
    for _ in range(150):
        loss = loss_mod(role, e, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_mod.momentum_update(role)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert any(not th.equal(key_before[k], v) for k, v in loss_mod.key_encoder.state_dict().items())


# --- pre-training -------------------------------------------------------------------------------

def test_pretrain_loss_masks_padding_and_reaches_encoder_and_decoder_only():
    batch = make_batch()
    net = RoleNetwork(input_dim=6, embed_dim=8, role_dim=4)
    loss_mod = PretrainLoss(embed_dim=8, obs_dim=6, n_agents=3)
    _, mask = td_mask(batch)
    e = net.trajectory.unroll(batch["obs"])[:, :-1]
    loss = loss_mod(e, batch["obs"], mask)
    loss.backward()
    assert reached(net.trajectory) and reached(loss_mod) and not reached(net.role)
    obs = batch["obs"].clone()
    obs[:, 1:][mask[..., 0] == 0] += 100.0  # obs[t+1] is the target of step t: spoil masked targets
    assert th.allclose(loss_mod(e.detach(), obs, mask), loss.detach())


# --- the learner --------------------------------------------------------------------------------

def _params(learner):
    m = learner.mac
    return {
        "agent": m.agent, "trajectory": m.roles.trajectory, "role": m.roles.role, "mixer": learner.mixer,
        "W": [learner.contrastive.bilinear], "key_encoder": learner.contrastive.key_encoder,
        "decoder": learner.pretrain, "target_agent": learner.target_mac.agent,
        "target_roles": learner.target_mac.roles, "target_mixer": learner.target_mixer,
    }


def test_td_loss_reaches_q_mixer_and_encoders_only():
    batch = make_batch()
    learner, _ = build_learner(batch, contrastive_interval=0, pretrain_encoder_steps=0,
                               pretrain_contrastive_steps=0)
    learner.ready = True
    for opt in learner._optimisers().values():
        opt.zero_grad(set_to_none=True)
    # Run the update but stop before the optimiser steps, by capturing gradients via hooks.
    seen = {}
    for name, module in _params(learner).items():
        params = module if isinstance(module, list) else list(module.parameters())
        for p in (p for p in params if p.requires_grad):
            p.register_hook(lambda g, name=name: seen.__setitem__(name, True) or g)
    learner.train(batch, t_env=100, episode_num=1)
    assert {"agent", "trajectory", "role", "mixer"} <= set(seen)
    assert not {"W", "key_encoder", "decoder", "target_agent", "target_roles", "target_mixer"} & set(seen)


def test_td_loss_ignores_padded_steps():
    batch = make_batch()
    a, _ = build_learner(batch, contrastive_interval=0)
    th.manual_seed(0)
    b, _ = build_learner(batch, contrastive_interval=0)
    a.train(batch, 10, 1)
    changed = make_batch()  # same data, but garbage wherever the episode is over
    pad = changed["filled"] == 0
    changed["reward"][pad] = 1e3
    changed["obs"][pad[..., 0]] = 1e3
    changed["state"][pad[..., 0]] = 1e3
    b.train(changed, 10, 1)
    la, lb = a.logger.stats["loss_td"][-1][1], b.logger.stats["loss_td"][-1][1]
    assert la == pytest.approx(lb, rel=1e-5)


def test_learner_fits_a_fixed_batch_and_logs_named_terms():
    batch = make_batch(seed=3)
    learner, logger = build_learner(batch, target_update_interval_or_tau=1000, contrastive_interval=5,
                                    lr=3e-3, role_lr=3e-3, pretrain_encoder_steps=2, pretrain_contrastive_steps=2)
    for t in range(60):
        learner.train(batch, t, t)
    td = [v for _, v in logger.stats["loss_td"]]
    assert td[-1] < 0.3 * td[0]
    for name in ("loss_contrastive", "loss_pretrain", "grad_norm_q", "grad_norm_role", "role_cluster_size_0"):
        assert name in logger.stats, name
    sizes = [logger.stats[f"role_cluster_size_{k}"][-1][1] for k in range(3)]
    assert sum(sizes) == pytest.approx(3) and sizes == sorted(sizes, reverse=True)


def test_target_networks_update_on_schedule():
    batch = make_batch()
    learner, _ = build_learner(batch, target_update_interval_or_tau=3, contrastive_interval=0)
    snapshot = copy.deepcopy(learner.target_mac.agent.state_dict())
    learner.train(batch, 0, 0)
    learner.train(batch, 1, 1)
    assert all(th.equal(v, learner.target_mac.agent.state_dict()[k]) for k, v in snapshot.items())
    learner.train(batch, 2, 2)
    online = learner.mac.agent.state_dict()
    assert all(th.equal(v, online[k]) for k, v in learner.target_mac.agent.state_dict().items())


def test_save_load_round_trip_resumes_identically(tmp_path):
    batch = make_batch()
    keys = dict(contrastive_interval=2, lr_decay_interval=2, pretrain_encoder_steps=1, pretrain_contrastive_steps=1)
    learner, _ = build_learner(batch, **keys)
    for t in range(5):
        learner.train(batch, t, t)
    learner.save_models(tmp_path)
    th.manual_seed(123)
    fresh, _ = build_learner(batch, **keys)
    fresh.load_models(tmp_path)

    def state(l):
        return {"ckpt": l._checkpoint(), "agent": l.mac.agent.state_dict(), "roles": l.mac.roles.state_dict()}

    def same(x, y):
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y))
        return th.equal(x, y) if isinstance(x, th.Tensor) else x == y

    assert same(state(learner), state(fresh))
    for t in range(5, 8):
        learner.train(batch, t, t)
        fresh.train(batch, t, t)
    assert learner.logger.stats["loss_td"][-3:] == fresh.logger.stats["loss_td"][-3:]
    assert learner.logger.stats["loss_contrastive"][-1] == fresh.logger.stats["loss_contrastive"][-1]


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"role_clusters": 5}, "'role_clusters' is 5 but the env has only 3 agents"),
    ({"double_q": "False"}, "'double_q' must be true or false"),
    ({"contrastive_interval": 1.5}, "'contrastive_interval' must be a int"),
    ({"state_shape": 0}, "no global state"),
    ({"obs_agent_id": True}, "'obs_agent_id' is True; choose one of [False]"),
])
def test_bad_config_fails_at_construction(overrides, message):
    with pytest.raises(ConfigError) as info:
        build_learner(make_batch(), **overrides)
    assert message in str(info.value)

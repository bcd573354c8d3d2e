"""CDS on synthetic batches: the agent's heads, the predictors, the KL term, the L1 reach, save/load."""
import pytest
import torch as th

from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.intrinsic.base import UpdateContext
from r3dm_epymarl.learners.q_learner import td_mask
from tests.synthetic import build_learner, make_batch


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def _learner(**overrides):
    batch = make_batch()
    learner, logger = build_learner(batch, "cds", **overrides)
    return batch, learner, logger


def _ctx(learner, batch):
    unrolled = learner.mac.unroll(batch)
    return UpdateContext(batch, unrolled.q, None, td_mask(batch)[1], learner.mac, 0, unrolled.extras)


def test_agent_unroll_matches_acting_and_splits_shared_and_local():
    batch, learner, _ = _learner()
    mac = learner.mac
    unrolled = mac.unroll(batch)
    q, local, hidden = unrolled.q, unrolled.extras["q_local"], unrolled.extras["hidden"]
    assert q.shape == (4, 10, 3, 5) and local.shape == q.shape and hidden.shape == (4, 10, 3, 16)
    assert th.allclose(q, mac.agent.shared_head(hidden) + local, atol=1e-6)
    mac.init_hidden(batch.batch_size)
    for t in range(batch.max_seq_length):
        assert th.allclose(mac.forward(batch, t), q[:, t], atol=1e-5)
    # agent i's local part uses head i only
    h = hidden[0, 0]  # [N, H]
    for i in range(3):
        expected = h[i] @ mac.agent.head_weight[i] + mac.agent.head_bias[i]
        assert th.allclose(local[0, 0, i], expected, atol=1e-6)


def test_l1_reaches_the_agent_specific_heads_and_trunk_not_the_shared_head():
    batch, learner, _ = _learner()
    unrolled = learner.mac.unroll(batch)
    loss = learner.auxiliary_losses(unrolled, td_mask(batch)[1])["loss_l1"]
    loss.backward()
    agent = learner.mac.agent
    assert agent.head_weight.grad.abs().sum() > 0 and agent.rnn.weight_hh.grad.abs().sum() > 0
    assert agent.shared_head.weight.grad is None or agent.shared_head.weight.grad.abs().sum() == 0


def test_predictor_log_likelihoods_and_reward_parts():
    batch, learner, _ = _learner()
    term = learner.intrinsic["cds"]
    ctx = _ctx(learner, batch)
    x, agent, target = term._inputs(ctx)
    assert x.shape == (4, 9, 3, 16 + 6 + 5) and agent.shape == (4, 9, 3) and target.shape == (4, 9, 3, 6)
    assert th.equal(agent[2, 5], th.arange(3))
    assert th.equal(x[:, 0, :, :16], th.zeros_like(x[:, 0, :, :16])), "h_{-1} is the zero initial state"
    assert th.equal(x[:, 1, :, :16], ctx.extras["hidden"][:, 0].detach()), "step t sees h_{t-1}"
    log_p, log_q = term._log_likelihoods(term.predictor, term.id_predictor, x, agent, target)
    # The fused evaluation is the two MLPs as declared: p on x, q on x with the one-hot id (layers 1 and 2).
    ids = th.nn.functional.one_hot(agent, 3).float()
    assert th.allclose(log_p, -(term.predictor(x) - target).pow(2).sum(-1), atol=1e-5)
    plain_q = term.id_predictor(x, ids)
    assert th.allclose(log_q, -(plain_q - target).pow(2).sum(-1), atol=1e-5)
    # The id is re-concatenated at the second layer (published): fc2 reads [hidden, id].
    assert term.id_predictor.fc2.in_features == 128 + 3 and term.predictor.fc2.in_features == 128
    # The reward reads the target copies, which equal the online predictors until they train.
    log_p, log_q = term._log_likelihoods(term.target_predictor, term.target_id_predictor, x, agent, target)
    with th.no_grad():
        r = term.reward(ctx)
    mi, kl = term.reward_parts["r_int_cds_mi"], term.reward_parts["r_int_cds_kl"]
    assert r.shape == (4, 9, 1) and th.allclose(r, mi + kl, atol=1e-5)
    assert (kl >= -1e-7).all() and (r[ctx.mask == 0] == 0).all()
    beta1 = learner.args.cds_beta1
    assert th.allclose(mi, beta1 * (log_q * ctx.mask).mean(-1, keepdim=True) - (log_p * ctx.mask).mean(-1, keepdim=True),
                       atol=1e-4)


def test_kl_is_zero_when_all_agents_share_one_greedy_policy_at_beta1_one():
    batch, learner, _ = _learner(cds_beta1=1.0)
    term = learner.intrinsic["cds"]
    ctx = _ctx(learner, batch)
    same_q = ctx.q[:, :, :1].expand_as(ctx.q).contiguous()
    batch["avail_actions"][:] = 1
    with th.no_grad():
        term.reward(UpdateContext(batch, same_q, None, ctx.mask, learner.mac, 0, ctx.extras))
    assert term.reward_parts["r_int_cds_kl"].abs().max() < 1e-6


def test_predictors_learn_and_the_learner_logs_every_term():
    batch, learner, logger = _learner(cds_predictor_lr=1e-2)
    obs, actions = batch["obs"], batch["actions_onehot"]
    for t in range(1, obs.shape[1]):  # predictable dynamics: o_{t+1} = 0.5 o_t + embed(a_t)
        obs[:, t] = 0.5 * obs[:, t - 1] + actions[:, t - 1, :, :1].expand_as(obs[:, t]) * 2.0
    for t in range(60):
        learner.train(batch, t, t)
    losses = [v for _, v in logger.stats["loss_cds_predictors"]]
    assert losses[-1] < 0.5 * losses[0]
    for name in ("loss_td", "loss_l1", "r_int_cds_mean", "r_int_cds_mi_mean", "r_int_cds_kl_mean",
                 "grad_norm_q", "time_cds_update_ms"):
        assert name in logger.stats, name


def test_save_load_round_trips_heads_predictors_and_optimisers(tmp_path):
    batch, learner, _ = _learner()
    for t in range(3):
        learner.train(batch, t, t)
    learner.save_models(tmp_path)
    th.manual_seed(99)
    fresh_batch, fresh, _ = _learner()
    fresh.load_models(tmp_path)
    term, fresh_term = learner.intrinsic["cds"], fresh.intrinsic["cds"]
    saved, loaded = term.state_dict(), fresh_term.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(th.equal(saved[k], loaded[k]) for k in saved if isinstance(saved[k], th.Tensor))
    assert fresh_term.optimiser.state_dict()["state"].keys() == term.optimiser.state_dict()["state"].keys()
    th.manual_seed(5)
    learner.train(batch, 3, 3)
    th.manual_seed(5)
    fresh.train(batch, 3, 3)
    assert learner.logger.stats["loss_td"][-1] == fresh.logger.stats["loss_td"][-1]
    assert learner.logger.stats["loss_cds_predictors"][-1] == fresh.logger.stats["loss_cds_predictors"][-1]


def test_agent_id_input_is_refused():
    with pytest.raises(ConfigError, match="'obs_agent_id' is True"):
        _learner(obs_agent_id=True)


def test_fused_predictor_evaluation_gives_the_plain_modules_gradients():
    """p's and q's first layers run as one matmul with the id as a weight-row lookup: the gradients
    (including q's id columns) must equal those of the modules evaluated as declared."""
    batch, learner, _ = _learner()
    term = learner.intrinsic["cds"]
    x, agent, target = term._inputs(_ctx(learner, batch))
    ids = th.nn.functional.one_hot(agent, 3).float()

    def grads(loss):
        term.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in term.predictor_params]

    log_p, log_q = term._log_likelihoods(term.predictor, term.id_predictor, x, agent, target)
    fused = grads(-(log_p.mean() + log_q.mean()))
    plain = grads((term.predictor(x) - target).pow(2).sum(-1).mean()
                  + (term.id_predictor(x, ids) - target).pow(2).sum(-1).mean())
    for layer in (term.id_predictor.fc1, term.id_predictor.fc2):
        assert layer.weight.grad[:, -3:].abs().sum() > 0  # the id columns of both layers
    for a, b in zip(fused, plain):
        assert th.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_reward_reads_target_predictors_hard_copied_on_schedule():
    """Published CDS: the reward uses target predictors, hard-copied every 200 episodes (here every
    `cds_predictor_target_interval` updates); the copy due after update n serves update n + 1's reward."""
    batch, learner, _ = _learner(cds_predictor_target_interval=2)
    term = learner.intrinsic["cds"]
    start = {k: v.clone() for k, v in term.target_predictor.state_dict().items()}

    def same(a, b):
        return all(th.equal(a[k], b[k]) for k in a)

    ctx = _ctx(learner, batch)
    term.update(ctx)  # update 1: targets stay, the online predictors move
    assert same(start, term.target_predictor.state_dict())
    assert not same(start, term.predictor.state_dict())
    with th.no_grad():
        r_before = term.reward(ctx)
        online = term._log_likelihoods(term.predictor, term.id_predictor, *term._inputs(ctx))
    term.update(ctx)  # update 2: still the initial targets for this update's reward
    assert same(start, term.target_predictor.state_dict())
    after_two = {k: v.clone() for k, v in term.predictor.state_dict().items()}
    term.update(ctx)  # update 3 starts with the copy due after update 2
    assert same(after_two, term.target_predictor.state_dict())
    assert int(term.updates) == 3 and "updates" in term.state_dict()
    with th.no_grad():
        assert not th.allclose(term.reward(ctx), r_before)
    assert not th.allclose(online[0], term._log_likelihoods(term.target_predictor, term.target_id_predictor,
                                                            *term._inputs(ctx))[0])

"""The world models' accelerator (world_model/accel/) held to the plain RSSM (world_model/rssm.py):
filtering, imagination and the k-step prediction give the same values and the same sampled latents,
training the same gradients, with and without padding, k = 1 and 2; `wm_fused: false` runs the plain
recurrence for training and reward alike; beta3 = 0 skips the latent term's work. The layering itself
(rssm.py imports nothing from the accelerator, which imports no private name) is read from the source."""
import ast
from pathlib import Path

import pytest
import torch as th

from r3dm_epymarl.world_model import accel, predict as predict_module
from r3dm_epymarl.world_model.predict import PLAIN_LOOPS, predict
from r3dm_epymarl.world_model.rssm import RSSM, imagination_noise
from tests.unit.test_world_model import context, make_batch, term_for

SIZES = dict(hidden=16, deter=12, stoch=3, classes=5)
PADDED = [13, 5, 9, 13, 3, 7]  # transitions per episode in a T = 14 batch: a third of the slots are padding
FULL = [13] * 6


def fp64_models(O=6, A=3, R=4):
    th.manual_seed(0)
    models = [RSSM(O, A, 0, **SIZES).double(), RSSM(O, A, R, **SIZES).double()]
    with th.no_grad():  # make the two models differ beyond their role input
        for p in models[1].parameters():
            p.add_(0.1 * th.randn_like(p))
    return models


def sequences(T=7, M=5, O=6, A=3, R=4):
    th.manual_seed(1)
    obs = th.randn(T, M, O).double() * 2
    actions = th.eye(A)[th.randint(0, A, (T, M))].double()
    return obs, actions, th.rand(T, M, R).double()


@pytest.mark.parametrize("sample", [True, False])
def test_fused_filtering_and_imagination_equal_each_models_plain_recurrence(sample):
    models = fp64_models()
    obs, actions, roles = sequences()
    with th.no_grad():
        th.manual_seed(3)
        fused = accel.observe_many(models, obs, actions, [None, roles], sample=sample)
        after_fused = th.rand(2)
        th.manual_seed(3)
        plain = [m.observe(obs, actions, r, sample=sample) for m, r in zip(models, [None, roles])]
        assert th.equal(th.rand(2), after_fused), "the same number of draws"
        for f, p in zip(fused, plain):
            assert th.equal(f["stoch"], p["stoch"]), "the same sampled latents"
            for key in ("deter", "post", "prior"):
                assert th.allclose(f[key], p[key], rtol=1e-12, atol=1e-12)
        K, M = 4, obs.shape[1]
        starts = [(p["deter"][-1], p["stoch"][-1]) for p in plain]
        noise = imagination_noise(models, K, M, obs.device, obs.dtype) if sample else None
        fused = accel.imagine_many(models, [d for d, _ in starts], [s for _, s in starts], actions[:K],
                                   [None, roles[:K]], sample=sample, noise=noise)
        plain = [m.imagine(d, s, actions[:K], r, sample=sample, noise=None if noise is None else noise[g])
                 for g, (m, (d, s), r) in enumerate(zip(models, starts, [None, roles[:K]]))]
        for f, p in zip(fused, plain):
            assert th.equal(f["stoch"], p["stoch"])
            assert th.allclose(f["deter"], p["deter"], rtol=1e-12, atol=1e-12)
            assert th.allclose(f["prior"], p["prior"], rtol=1e-12, atol=1e-12)
        if sample:  # the samples really are draws: another noise gives other latents
            other = accel.imagine_many(models, [d for d, _ in starts], [s for _, s in starts], actions[:K],
                                       [None, roles[:K]], sample=True, noise=th.rand_like(noise))
            assert not all(th.equal(o["stoch"], f["stoch"]) for o, f in zip(other, fused))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("lengths", [FULL, PADDED], ids=["no-padding", "padding"])
def test_prediction_through_the_accelerator_equals_the_plain_one(k, lengths):
    """world_model.predict through the plain loops, through the fused loops, and padding-free: the same
    errors and log-probabilities where an imagined step stays inside its episode (fp64, sampled latents),
    and the RNG left at the same place."""
    models = fp64_models()
    T, M = 14, len(lengths)
    obs, actions, roles = sequences(T, M)
    valid = (th.arange(T).unsqueeze(1) <= th.tensor(lengths)).double()  # [T, M]: n transitions, n + 1 observations
    obs, actions, roles = obs * valid.unsqueeze(-1), actions * valid.unsqueeze(-1), roles * valid.unsqueeze(-1)
    packing = accel.Packing.from_lengths([n + 1 for n in lengths], T, "cpu")
    # where the reward reads the prediction: start t and step t + j + 1 inside the episode
    inside = th.stack([(th.arange(T - 1).unsqueeze(1) + j + 1 <= th.tensor(lengths)) for j in range(k)], 0)
    results = {}
    with th.no_grad():
        for name, run in (("plain", lambda: predict(models, obs, actions, [None, roles], k, True)),
                          ("fused", lambda: predict(models, obs, actions, [None, roles], k, True,
                                                    loops=accel.FUSED_LOOPS)),
                          ("packed", lambda: accel.predict_packed(models, obs, actions, [None, roles], k, packing,
                                                                  True))):
            th.manual_seed(4)
            results[name] = (run(), th.rand(3))
    (plain, plain_next) = results["plain"]
    assert inside.sum() > 0
    for name in ("fused", "packed"):
        out, after = results[name]
        assert th.equal(after, plain_next), f"{name}: the RNG left where the plain path leaves it"
        for (err, logp), (err_ref, logp_ref) in zip(out, plain):
            assert th.allclose(err[inside], err_ref[inside], rtol=1e-10, atol=1e-10), name
            assert th.allclose(logp[inside], logp_ref[inside], rtol=1e-10, atol=1e-10), name


@pytest.mark.parametrize("k", [1, 3])
def test_padded_and_padding_free_predictions_draw_alike_under_bf16_autocast(k):
    """Under bf16 autocast the fused loops compute in bf16 and draw their uniforms in it: the padded
    prediction must draw in the same dtype as the padding-free one, or they sample other latents (the
    padded path drew in fp32 for a while: errors then differed by up to 7)."""
    models = [m.float() for m in fp64_models()]
    lengths = PADDED
    T, M = 14, len(lengths)
    obs, actions, roles = (x.float() for x in sequences(T, M))
    valid = (th.arange(T).unsqueeze(1) <= th.tensor(lengths)).float()
    obs, actions, roles = obs * valid.unsqueeze(-1), actions * valid.unsqueeze(-1), roles * valid.unsqueeze(-1)
    packing = accel.Packing.from_lengths([n + 1 for n in lengths], T, "cpu")
    inside = th.stack([(th.arange(T - 1).unsqueeze(1) + j + 1 <= th.tensor(lengths)) for j in range(k)], 0)
    results = []
    with th.no_grad(), th.autocast("cpu", dtype=th.bfloat16):
        for run in (lambda: predict(models, obs, actions, [None, roles], k, True, loops=accel.FUSED_LOOPS),
                    lambda: accel.predict_packed(models, obs, actions, [None, roles], k, packing, True)):
            th.manual_seed(4)
            results.append((run(), th.rand(3)))
    (padded, after_padded), (packed, after_packed) = results
    assert th.equal(after_padded, after_packed)
    for (err, logp), (err_ref, logp_ref) in zip(packed, padded):
        # bf16 rounding differs between the two layouts; a different draw differs by whole nats
        assert (err[inside] - err_ref[inside]).abs().max() < 0.5
        assert (logp[inside] - logp_ref[inside]).abs().max() < 0.5


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("lengths", [FULL, PADDED], ids=["no-padding", "padding"])
def test_the_term_trains_and_rewards_the_same_with_and_without_the_accelerator(k, lengths):
    """WorldModelReward with wm_fused true (the accelerator, padding skipped) and false (each model's
    RSSM.loss and the plain prediction): the same losses, gradients and rewards from sampled latents."""
    batch = make_batch(B=6, T=14, N=3, lengths=lengths)
    ctx = context(batch)
    results = {}
    for fused in (True, False):
        th.manual_seed(1)
        term = term_for(batch, wm_horizon=k, wm_fused=fused, wm_reward_sample=True)
        th.manual_seed(2)
        losses = {name: float(v) for name, v in term._train_step(ctx).items()}
        grads = [p.grad.clone() for p in [*term.model.parameters(), *term.role_model.parameters()]]
        th.manual_seed(3)
        reward = term.reward(ctx)
        results[fused] = (losses, grads, reward, dict(term.reward_parts), th.rand(3))
    (losses, grads, reward, parts, after), (ref_losses, ref_grads, ref_reward, ref_parts, ref_after) = (
        results[True], results[False])
    assert th.equal(after, ref_after)
    for name, value in losses.items():
        assert value == pytest.approx(ref_losses[name], rel=1e-5)
    for g, ref in zip(grads, ref_grads):
        assert th.allclose(g, ref, rtol=1e-4, atol=1e-6)
    assert ref_reward.abs().sum() > 0 and parts["r_int_lat"].abs().sum() > 0
    assert th.allclose(reward, ref_reward, rtol=1e-5, atol=1e-5)
    for name in parts:
        assert th.allclose(parts[name], ref_parts[name], rtol=1e-5, atol=1e-5)


def test_the_plain_path_reads_no_accelerator(monkeypatch):
    """wm_fused: false covers training and reward: with the accelerator's entry points broken, it still runs."""
    batch = make_batch(B=3, T=8, N=2, lengths=[7, 4, 6])
    ctx = context(batch)
    term = term_for(batch, wm_horizon=2, wm_fused=False, wm_reward_sample=True)

    def broken(*args, **kwargs):
        raise AssertionError("the accelerator ran under wm_fused: false")

    for name in ("loss_many", "observe_many", "imagine_many", "predict_packed"):
        monkeypatch.setattr(accel, name, broken)
    monkeypatch.setattr(accel, "FUSED_LOOPS", accel.FUSED_LOOPS._replace(observe=broken, imagine=broken))
    term.update(ctx)
    assert term.reward(ctx).abs().sum() > 0


@pytest.mark.parametrize("fused", [True, False])
def test_beta3_zero_skips_the_latent_term_and_leaves_r_obs(fused, monkeypatch):
    batch = make_batch(B=6, T=14, N=3, lengths=PADDED)
    ctx = context(batch)
    rewards = {}
    for beta3 in (1.0, 0.0):
        th.manual_seed(1)
        term = term_for(batch, wm_horizon=2, wm_fused=fused, wm_reward_sample=True, r3dm_beta3=beta3)
        th.manual_seed(3)
        rewards[beta3] = (term.reward(ctx), dict(term.reward_parts))
    assert th.equal(rewards[0.0][0], rewards[1.0][1]["r_int_obs"]), "r_obs unchanged: the same draws"
    assert th.equal(rewards[0.0][1]["r_int_lat"], th.zeros_like(rewards[0.0][0]))
    assert rewards[1.0][1]["r_int_lat"].abs().sum() > 0

    def no_latent_term(*args, **kwargs):
        raise AssertionError("the latent log-probability was computed at beta3 = 0")

    monkeypatch.setattr(predict_module, "one_hot_log_prob", no_latent_term)
    th.manual_seed(1)
    term = term_for(batch, wm_horizon=2, wm_fused=fused, wm_reward_sample=True, r3dm_beta3=0.0)
    term.reward(ctx)  # beta3 = 0: not computed
    term.beta3 = 1.0
    with pytest.raises(AssertionError, match="latent log-probability"):
        term.reward(ctx)


WORLD_MODEL = Path(__file__).resolve().parents[2] / "r3dm_epymarl" / "world_model"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_the_model_does_not_depend_on_its_accelerator_which_imports_no_private_name():
    for path in WORLD_MODEL.glob("*.py"):
        for module, _ in _imports(path):
            assert "world_model.accel" not in module, f"{path.name} imports the accelerator ({module})"
    files = list((WORLD_MODEL / "accel").glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_")]
            assert not private, f"accel/{path.name} imports private names {private} from {module}"
    # the accelerator reads the model's layers only through rssm.py's public methods
    layers = {"in_stoch", "in_other", "in_norm", "cell", "h_init", "post_deter", "post_out", "post_embed",
              "post_norm", "prior_head", "encoder", "decoder"}
    for path in files:
        read = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
        assert not read & layers, f"accel/{path.name} reads the RSSM's layers {sorted(read & layers)} directly"

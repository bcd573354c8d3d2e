"""The world models as the published code builds them (issue #37, docs/FIDELITY.md "World-model
networks"): DreamerV3 initialisation, no bias before a LayerNorm, LayerNorm eps 1e-3, and the initial
latent's straight-through gradient through the normalised log-probabilities."""
import pytest
import torch as th
from torch import nn
from torch.distributions import OneHotCategorical

from r3dm_epymarl.world_model.rssm import RSSM


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def linears_before_a_norm(model: RSSM) -> list[nn.Linear]:
    """Every Linear whose output a LayerNorm normalises (directly, or as one block of a split Linear)."""
    found = [model.in_stoch, model.in_other, model.post_deter, model.post_embed, model.cell.linear]
    for net in (model.encoder, model.prior_head, model.decoder):
        mods = list(net)
        found += [m for m, nxt in zip(mods, mods[1:]) if isinstance(m, nn.Linear) and isinstance(nxt, nn.LayerNorm)]
    return found


@pytest.mark.parametrize("role_dim", [0, 8])
def test_no_bias_feeds_a_layernorm_and_heads_start_at_zero_bias(role_dim):
    model = RSSM(30, 9, role_dim=role_dim)
    before = linears_before_a_norm(model)
    assert len(before) == 5 + 2 + 1 + 2  # the split input / posterior layers, the GRU, 2 + 1 + 2 MLP layers
    assert all(lin.bias is None for lin in before)
    biases = {name for name, _ in model.named_parameters() if name.endswith("bias")}
    heads = {"post_out.bias", "prior_head.3.bias", "decoder.6.bias"}
    norm_biases = {f"{n}.bias" for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    assert biases == norm_biases | heads
    for name in heads:
        assert th.count_nonzero(dict(model.named_parameters())[name]) == 0
    # the published parameter count for these sizes (hidden = deter = 128, 16 x 16 latents)
    O, A, H, D, SC = 30, 9, 128, 128, 256
    published = (
        (O * H + 2 * H) + (H * H + 2 * H)  # encoder: 2 x [Linear, LayerNorm]
        + (SC + A + role_dim) * H + 2 * H  # input layer + LayerNorm
        + (H + D) * 3 * D + 2 * 3 * D  # GRU Linear + LayerNorm
        + D * H + 2 * H + H * SC + SC  # prior: Linear, LayerNorm, logits
        + (D + H) * H + 2 * H + H * SC + SC  # posterior
        + (D + SC + role_dim) * H + 2 * H + H * H + 2 * H + H * O + O  # decoder
        + D  # the learned initial state
    )
    assert sum(p.numel() for p in model.parameters()) == published


def test_layernorm_epsilon_is_the_published_one():
    model = RSSM(12, 5, role_dim=4)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 + 1 + 1 + 1 + 1 + 2  # encoder, input, GRU, prior, posterior, decoder
    assert all(m.eps == 1e-3 for m in norms)


def test_initial_weights_follow_dreamer_v3():
    """Hidden Linears: a normal of std sqrt(1 / fan_avg) / 0.8796 cut at 2 std, i.e. std sqrt(1 / fan_avg)
    after the cut; a split Linear uses the fan of the whole layer. Heads: uniform in +-sqrt(3 / fan_avg)."""
    O, A, R, H = 40, 11, 16, 512
    model = RSSM(O, A, role_dim=R, hidden=H, deter=H, stoch=32, classes=32)
    SC = 32 * 32

    def check_trunc(weights, fan_in, fan_out):
        w = th.cat([x.flatten() for x in weights])
        target = (2.0 / (fan_in + fan_out)) ** 0.5
        assert w.std().item() == pytest.approx(target, rel=0.03)
        assert w.abs().max().item() <= 2 * target / 0.87962566103423978 + 1e-7
        assert abs(w.mean().item()) < 0.03 * target

    check_trunc([model.encoder[0].weight], O, H)
    check_trunc([model.in_stoch.weight, model.in_other.weight], SC + A + R, H)
    check_trunc([model.cell.linear.weight], H + H, 3 * H)
    check_trunc([model.post_deter.weight, model.post_embed.weight], H + H, H)
    check_trunc([model.decoder[0].weight], H + SC + R, H)
    for head, fan_in, fan_out in ((model.post_out, H, SC), (model.prior_head[3], H, SC), (model.decoder[6], H, O)):
        limit = (3.0 / ((fan_in + fan_out) / 2)) ** 0.5
        w = head.weight
        assert w.abs().max().item() <= limit and w.abs().max().item() > 0.95 * limit
        assert w.std().item() == pytest.approx(limit / 3 ** 0.5, rel=0.05)  # a uniform's std
    assert th.count_nonzero(model.h_init) == 0


def test_initial_latent_gradient_runs_through_the_normalised_log_probabilities():
    """s_{-1} = the prior head's mode at h_{-1} = tanh(w): its gradient is that of
    OneHotCategorical(logits=log unimix(softmax(x))).logits (what the published mode adds to the
    one-hot), not that of the probabilities."""
    model = RSSM(6, 3, hidden=16, deter=12, stoch=3, classes=5).double()
    weights = th.randn(3 * 5, dtype=th.double)

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    _, s0 = model.initial(2)
    ours = grads((s0 * weights).sum())

    h = th.tanh(model.h_init)
    x = model.prior_head(h).view(3, 5)
    probs = th.softmax(x, -1) * (1 - model.unimix) + model.unimix / 5
    logits = OneHotCategorical(logits=th.log(probs)).logits  # normalised by torch
    mode = th.nn.functional.one_hot(logits.argmax(-1), 5).double() + logits - logits.detach()
    reference = grads(2 * (mode.flatten() * weights).sum())  # two streams share the initial state
    assert set(ours) == set(reference) == {"h_init", "prior_head.0.weight", "prior_head.1.weight",
                                           "prior_head.1.bias", "prior_head.3.weight", "prior_head.3.bias"}
    for name in reference:
        assert th.allclose(ours[name], reference[name], rtol=1e-10, atol=1e-14), name
    assert th.equal(s0[0].view(3, 5).argmax(-1), x.argmax(-1))  # the value is the mode
    # the probabilities' gradient (the earlier plug-in) is a different one
    ours_logits = th.autograd.grad((model.initial(1)[1] * weights).sum(), model.prior_head[3].bias)[0]
    fresh = th.softmax(model.prior_head(th.tanh(model.h_init)).view(3, 5), -1)
    via_probs = th.autograd.grad((fresh.flatten() * weights).sum(), model.prior_head[3].bias)[0]
    assert not th.allclose(ours_logits, via_probs, rtol=0.05)

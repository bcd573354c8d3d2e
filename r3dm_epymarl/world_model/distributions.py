"""Small distribution helpers for a DreamerV3-style RSSM with discrete latents.

Latent logits are shaped [..., S, C] (S categoricals of C classes). Probabilities are always the
unimix mixture `(1 - unimix) * softmax(logits) + unimix / C`, so no class has probability below
`unimix / C` and log-probabilities stay finite.
"""
import torch as th


def symlog(x: th.Tensor) -> th.Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes, identity-like near zero."""
    return th.sign(x) * th.log1p(x.abs())


def symexp(x: th.Tensor) -> th.Tensor:
    """Inverse of symlog: sign(x) * (exp(|x|) - 1)."""
    return th.sign(x) * th.expm1(x.abs())


def unimix_probs(logits: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """logits [..., C] -> probs [..., C]: (1 - unimix) * softmax + unimix / C (sums to 1)."""
    probs = th.softmax(logits, dim=-1)
    if unimix > 0:
        probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return probs


def unimix_log_probs(logits: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """logits [..., C] -> log of the unimix probs [..., C]."""
    if unimix > 0:
        return th.log(unimix_probs(logits, unimix))
    return th.log_softmax(logits, dim=-1)


def normalised_log_probs(logits: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """logits [..., C] -> log unimix probs minus their logsumexp [..., C]: in value the log-probabilities
    (their logsumexp is 0), in gradient what torch's Categorical(logits=log P) adds by normalising
    (g - P sum(g)); the published straight-through mode passes its gradient through exactly this."""
    log_probs = unimix_log_probs(logits, unimix)
    return log_probs - log_probs.logsumexp(-1, keepdim=True)


class _StraightThrough(th.autograd.Function):
    """Value of `onehot`, gradient of `probs`: the same as onehot + probs - probs.detach(), in one op."""

    @staticmethod
    def forward(ctx, probs, onehot):
        return onehot

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def straight_through(probs: th.Tensor, onehot: th.Tensor) -> th.Tensor:
    """onehot [..., C] in value, with the gradient flowing to probs [..., C] as if the output were probs."""
    if probs.requires_grad and th.is_grad_enabled():
        return _StraightThrough.apply(probs, onehot)
    return onehot


def straight_through_sample(probs: th.Tensor, noise: th.Tensor | None = None) -> th.Tensor:
    """probs [..., C] -> one-hot sample [..., C] whose gradient is that of `probs`.

    Draws with torch's global RNG (inverse CDF on one uniform per categorical), so results are
    reproducible under torch.manual_seed on the probs' device; or takes the uniforms noise [..., 1].
    """
    u = th.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype) if noise is None else noise
    index = (probs.detach().cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)  # [...]
    return straight_through(probs, th.nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype))


def straight_through_mode(probs: th.Tensor) -> th.Tensor:
    """probs [..., C] -> one-hot argmax [..., C] (deterministic), straight-through gradient."""
    index = probs.detach().argmax(-1)
    return straight_through(probs, th.nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype))


def categorical_kl(lhs_logits: th.Tensor, rhs_logits: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """KL[lhs || rhs] for logits [..., S, C] (unimix applied to both), summed over the S latents -> [...]."""
    lhs_log = unimix_log_probs(lhs_logits, unimix)
    rhs_log = unimix_log_probs(rhs_logits, unimix)
    return (lhs_log.exp() * (lhs_log - rhs_log)).sum((-2, -1))


class _FreeBitsKL(th.autograd.Function):
    """max(free_bits, KL) [...] in value, with the gradient of KL w.r.t. one side's logits only.

    forward(logits, kl, soft, a, b, scale, free_bits): kl [...] the KL values, soft [..., S, C] the
    softmax of `logits`; dKL / d softmax(logits) = scale * a (b None) or scale * a / b [..., S, C].
    """

    @staticmethod
    def forward(ctx, logits, kl, soft, a, b, scale, free_bits):
        ctx.scale = scale
        ctx.save_for_backward(kl >= free_bits, soft, a, b)  # the clamp passes gradient where kl >= free bits
        return kl.clamp(min=free_bits)

    @staticmethod
    def backward(ctx, grad):
        mask, soft, a, b = ctx.saved_tensors
        weight = th.where(mask, grad * ctx.scale, 0.0)[..., None, None]  # [..., 1, 1]
        direction = a * weight if b is None else th.div(a, b).mul_(weight)
        return th._softmax_backward_data(direction, soft, -1, soft.dtype), None, None, None, None, None, None


def kl_losses(post_logits: th.Tensor, prior_logits: th.Tensor, free_bits: float = 1.0,
              unimix: float = 0.01) -> tuple[th.Tensor, th.Tensor]:
    """(dyn, rep), each [...] for logits [..., S, C], clipped below at `free_bits` per step.

    dyn = max(free_bits, KL[sg(post) || prior])  trains the prior only;
    rep = max(free_bits, KL[post || sg(prior)])  trains the posterior only.
    Below free bits the clamp passes no gradient.

    Both have the value max(free_bits, KL[post || prior]); their gradients are written out
    (P, Q the unimix probabilities of post and prior, p, q their softmaxes, u = unimix):
        d KL / d q = -(1 - u) P / Q           (dyn, to the prior logits through the softmax)
        d KL / d p = (1 - u) (log P - log Q)  (rep, to the posterior logits; the + (1 - u) of d(P log P)
                                              is constant over the classes and cancels in the softmax)
    """
    if unimix <= 0:
        return _kl_losses_autograd(post_logits, prior_logits, free_bits, unimix)
    with th.no_grad():
        floor = unimix / post_logits.shape[-1]
        post_soft, prior_soft = th.softmax(post_logits, -1), th.softmax(prior_logits, -1)
        post_probs = (post_soft * (1.0 - unimix)).add_(floor)  # as unimix_probs
        prior_probs = (prior_soft * (1.0 - unimix)).add_(floor)
        diff = post_probs.log() - prior_probs.log()
        kl = (post_probs * diff).sum((-2, -1))
    dyn = _FreeBitsKL.apply(prior_logits, kl, prior_soft, post_probs, prior_probs, -(1.0 - unimix), free_bits)
    rep = _FreeBitsKL.apply(post_logits, kl, post_soft, diff, None, 1.0 - unimix, free_bits)
    return dyn, rep


def _kl_losses_autograd(post_logits: th.Tensor, prior_logits: th.Tensor, free_bits: float,
                        unimix: float) -> tuple[th.Tensor, th.Tensor]:
    """kl_losses written with autograd (used without unimix, where the probabilities may underflow)."""
    post_log = unimix_log_probs(post_logits, unimix)
    prior_log = unimix_log_probs(prior_logits, unimix)
    post_probs = post_log.exp()
    # Both terms share the log-probabilities; only where the stop-gradients sit differs.
    dyn = (post_probs.detach() * (post_log.detach() - prior_log)).sum((-2, -1)).clamp(min=free_bits)
    rep = (post_probs * (post_log - prior_log.detach())).sum((-2, -1)).clamp(min=free_bits)
    return dyn, rep


def one_hot_log_prob(logits: th.Tensor, one_hot: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """Log-probability of a one-hot latent [..., S, C] (a sample or the mode) under logits [..., S, C]
    with unimix, summed over the S categoricals -> [...]."""
    return (unimix_log_probs(logits, unimix) * one_hot).sum((-2, -1))

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


def straight_through_sample(probs: th.Tensor) -> th.Tensor:
    """probs [..., C] -> one-hot sample [..., C] whose gradient is that of `probs`.

    Draws with torch's global RNG (inverse CDF on one uniform per categorical), so results are
    reproducible under torch.manual_seed on the probs' device.
    """
    u = th.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=probs.dtype)
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


def kl_losses(post_logits: th.Tensor, prior_logits: th.Tensor, free_bits: float = 1.0,
              unimix: float = 0.01) -> tuple[th.Tensor, th.Tensor]:
    """(dyn, rep), each [...] for logits [..., S, C], clipped below at `free_bits` per step.

    dyn = max(free_bits, KL[sg(post) || prior])  trains the prior only;
    rep = max(free_bits, KL[post || sg(prior)])  trains the posterior only.
    Below free bits the clamp passes no gradient.
    """
    post_log = unimix_log_probs(post_logits, unimix)
    prior_log = unimix_log_probs(prior_logits, unimix)
    post_probs = post_log.exp()
    # Both terms share the log-probabilities; only where the stop-gradients sit differs.
    dyn = (post_probs.detach() * (post_log.detach() - prior_log)).sum((-2, -1)).clamp(min=free_bits)
    rep = (post_probs * (post_log - prior_log.detach())).sum((-2, -1)).clamp(min=free_bits)
    return dyn, rep


def mode_log_prob(logits: th.Tensor, unimix: float = 0.01) -> th.Tensor:
    """Log-probability of the mode of logits [..., S, C] under that same distribution, summed over S -> [...]."""
    return unimix_log_probs(logits, unimix).max(-1).values.sum(-1)

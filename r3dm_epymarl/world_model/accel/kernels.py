"""The pieces the accelerated loops share (world_model/accel/scan.py and imagine.py): several RSSMs'
weights stacked over a leading model dimension G, a LayerNorm with per-model affine parameters, one-hot
latents as row sums, inverse-CDF draws, and autocast's dtype for a whole loop."""
from __future__ import annotations

import torch as th
from torch.nn import functional as F

from r3dm_epymarl.world_model.rssm import PriorWeights, ScanWeights


def in_autocast_dtype(device_type: str, *tensors: th.Tensor) -> tuple[th.Tensor, ...]:
    """Inside an autocast region (precision: bf16) a fused loop runs wholly in autocast's dtype: its
    inputs and weights are cast once here (differentiably: gradients reach the fp32 weights), so no op
    in the loop mixes dtypes. Outside one, the tensors as they are."""
    if not th.is_autocast_enabled(device_type):
        return tensors
    dtype = th.get_autocast_dtype(device_type)
    return tuple(x.to(dtype) for x in tensors)


def check_compatible(models) -> None:
    if any(m.sizes() != models[0].sizes() for m in models[1:]):
        raise ValueError("the accelerated world-model loops run models of the same sizes, unimix and epsilons "
                         "together (RSSM.sizes)")


def stacked_scan_weights(models) -> ScanWeights:
    """Each model's `scan_weights()`, stacked: [G, ..] (differentiable: gradients reach each model)."""
    return ScanWeights(*(th.stack(parts, 0) for parts in zip(*(m.scan_weights() for m in models))))


def stacked_prior_weights(models) -> PriorWeights:
    return PriorWeights(*(th.stack(parts, 0) for parts in zip(*(m.prior_weights() for m in models))))


def norm_affine(x: th.Tensor, weight: th.Tensor, bias: th.Tensor, eps: float):
    """LayerNorm over the last dim of x [G, M, n] with per-model weight / bias [G, 1, n].

    Returns (out, x_hat, mean, rstd): the output, the normalised input and its statistics [G, M, 1]."""
    x_hat, mean, rstd = th.native_layer_norm(x, (x.shape[-1],), None, None, eps)
    return th.addcmul(bias, x_hat, weight), x_hat, mean, rstd


def one_hot_into(index: th.Tensor, out: th.Tensor) -> th.Tensor:
    """index [.., S, 1] -> one-hot written into out [.., S, C] (float)."""
    return out.zero_().scatter_(-1, index, out.new_ones(()).expand(index.shape))


def one_hot_matmul(index: th.Tensor, weight: th.Tensor, add: th.Tensor) -> th.Tensor:
    """one_hot(index) @ weight + add, as a sum of the selected rows (the latents are one-hot).

    index [G, M, S, 1] (class of each latent), weight [G, S * C, H], add [G, M, H] -> [G, M, H]."""
    G, M, S, _ = index.shape
    SC = weight.shape[1]
    first_row = th.arange(0, G * SC, SC // S, device=index.device).view(G, 1, S)  # of latent s in model g
    rows = (index.view(G, M, S) + first_row).view(G * M, S)
    return F.embedding_bag(rows, weight.reshape(G * SC, -1), mode="sum").view(G, M, -1).add_(add)


def draw(soft: th.Tensor, unimix: float, noise: th.Tensor) -> th.Tensor:
    """Inverse-CDF draw from the unimix of softmax probabilities soft [.., S, C], given uniforms
    noise [.., S, 1] -> class index [.., S, 1] (the class `straight_through_sample` picks)."""
    C = soft.shape[-1]
    probs = soft * (1.0 - unimix) + unimix / C if unimix > 0 else soft
    return (probs[..., :C - 1].cumsum(-1) < noise).sum(-1, keepdim=True)

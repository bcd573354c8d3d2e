"""Open-loop imagination of several RSSMs of the same sizes in one gradient-free loop (R3DM's k-step
reward), with matmuls batched over a leading model dimension G, as the filtering scan in scan.py.
"""
from __future__ import annotations

import torch as th
from torch.nn import functional as F

from r3dm_epymarl.modules.precision import compute_dtype
from r3dm_epymarl.world_model.accel.kernels import (
    check_compatible, draw, in_autocast_dtype, norm_affine, one_hot_into, one_hot_matmul,
    stacked_prior_weights, stacked_scan_weights,
)
from r3dm_epymarl.world_model.rssm import imagination_noise


def imagine_many(models, deter: list[th.Tensor], stoch: list[th.Tensor], actions: th.Tensor, roles_list,
                 sample: bool = False, noise: th.Tensor | None = None, widths: tuple[int, ...] | None = None,
                 draw_rows: th.Tensor | None = None):
    """RSSM.imagine for several models of the same sizes in one fused loop, without gradient.

    deter / stoch: one [M, D] / [M, SC] start state per model; actions [K, M, A] (shared);
    roles_list: one [K, M, R] (or None) per model. sample: draw each latent from the prior (with
    unimix, inverse CDF) instead of its mode, from the uniforms noise [G, K, M', S, 1]
    (`rssm.imagination_noise`, drawn here for M' = M starts when None).
    Returns one dict per model (deter, stoch, prior), each [K, M, ..]: what each model's
    RSSM.imagine gives with its noise[g].

    Skipping padding: with `widths`, step j runs only the first widths[j] starts (non-increasing; the
    caller orders the starts by how many steps they have left) and the outputs are the packed rows
    [sum(widths), ..] (step-major). Start i then takes the uniforms of row draw_rows[i] of the M' the
    padded call would draw for, so both draw the same.
    With gradients being recorded this falls back to each model's step-by-step imagine.
    """
    check_compatible(models)
    K, M, _ = actions.shape
    if sample and noise is None:
        noise = imagination_noise(models, K, M, actions.device, compute_dtype(actions.device.type, actions.dtype))
    params = [p for m in models for p in m.parameters()]
    if th.is_grad_enabled() and (any(p.requires_grad for p in params)
                                 or any(x.requires_grad for x in (*deter, *stoch))):
        if widths is not None:
            raise ValueError("imagine_many with widths (padding skipped) runs without gradient only")
        return [m.imagine(d, s, actions, r, sample=sample, noise=None if noise is None else noise[g])
                for g, (m, d, s, r) in enumerate(zip(models, deter, stoch, roles_list))]
    with th.no_grad():
        first = models[0]
        packed = widths is not None
        widths = (M,) * K if widths is None else widths
        S, C, D = first.stoch, first.classes, first.deter
        eps_in, eps_c, _, eps_1 = first.norm_eps()
        G = len(models)
        scan, prior = stacked_scan_weights(models), stacked_prior_weights(models)
        stack = lambda xs: th.stack(xs, 0)  # noqa: E731
        other = stack([m.step_inputs(actions, r) for m, r in zip(models, roles_list)])  # [G, K, M, H]
        P = sum(widths)
        deters = actions.new_empty((G, P, D))
        stochs = actions.new_empty((G, P, S * C))
        priors = actions.new_empty((G, P, S * C))
        h, s = stack(list(deter)), stack(list(stoch))
        W_s, W_x, W_h, g_in, b_in, g_c, b_c, W1, g1, b1, W2, b2, other, h, s, deters, stochs, priors = (
            in_autocast_dtype(actions.device.type, scan.W_s, scan.W_x, scan.W_h, scan.g_in, scan.b_in, scan.g_c,
                              scan.b_c, *prior, other, h, s, deters, stochs, priors))
        index = None
        start = 0
        for j, w in enumerate(widths):
            rows = slice(start, start + w)
            start += w
            h, s = h[:, :w], s[:, :w]
            a = (th.baddbmm(other[:, j, :w], s, W_s) if index is None
                 else one_hot_matmul(index[:, :w], W_s, other[:, j, :w]))
            x = F.silu(norm_affine(a, g_in, b_in, eps_in)[0])
            n = norm_affine(th.baddbmm(th.bmm(h, W_h), x, W_x), g_c, b_c, eps_c)[0]
            ru = th.sigmoid(n[..., :2 * D])
            cand = th.tanh(ru[..., :D] * n[..., 2 * D:])
            h = th.lerp(h, cand, ru[..., D:], out=deters[:, rows])
            hidden = F.silu(norm_affine(th.bmm(h, W1), g1, b1, eps_1)[0])
            logits = th.baddbmm(b2, hidden, W2, out=priors[:, rows]).view(G, w, S, C)
            if sample:  # inverse-CDF sample of the unimix prior
                uniforms = noise[:, j] if draw_rows is None else noise[:, j].index_select(1, draw_rows[:w])
                index = draw(th.softmax(logits, -1), first.unimix, uniforms)
            else:
                index = logits.max(-1, keepdim=True).indices
            one_hot_into(index, stochs[:, rows].view(G, w, S, C))
        if not packed:  # [K, M, ..]
            deters, stochs, priors = (x.view((G, K, M) + x.shape[2:]) for x in (deters, stochs, priors))
        return [{"deter": d, "stoch": st, "prior": p.unflatten(-1, (S, C))}
                for d, st, p in zip(deters.unbind(0), stochs.unbind(0), priors.unbind(0))]

"""Open-loop imagination of several RSSMs of the same sizes in one gradient-free loop (R3DM's k-step
reward), with matmuls batched over a leading model dimension G, as the filtering scan in fused.py.
"""
from __future__ import annotations

import torch as th
from torch.nn import functional as F

from r3dm_epymarl.world_model.fused import (
    _check_compatible, _draw, _in_autocast_dtype, _norm_affine, _one_hot_into, _one_hot_matmul, _scan_weights,
)


def imagine_many(models, deter: list[th.Tensor], stoch: list[th.Tensor], actions: th.Tensor, roles_list,
                 sample: bool = False, widths: tuple[int, ...] | None = None, drawn: int | None = None,
                 draw_rows: th.Tensor | None = None):
    """RSSM.imagine for several models of the same sizes in one fused loop, without gradient.

    deter / stoch: one [M, D] / [M, SC] start state per model; actions [K, M, A] (shared);
    roles_list: one [K, M, R] (or None) per model. sample: draw each latent from the prior (with
    unimix, inverse-CDF on uniforms drawn model by model, step by step) instead of its mode.
    Returns one dict per model (deter, stoch, prior), each [K, M, ..].

    Skipping padding: with `widths`, step j runs only the first widths[j] starts (non-increasing; the
    caller orders the starts by how many steps they have left) and the outputs are the packed rows
    [sum(widths), ..] (step-major). Uniforms are still drawn for `drawn` starts per step, the number the
    padded call would imagine, and start i takes the draw of row draw_rows[i], so both draw the same.
    With gradients being recorded this falls back to each model's step-by-step imagine.
    """
    _check_compatible(models)
    params = [p for m in models for p in m.parameters()]
    if th.is_grad_enabled() and (any(p.requires_grad for p in params)
                                 or any(x.requires_grad for x in (*deter, *stoch))):
        if widths is not None:
            raise ValueError("imagine_many with widths (padding skipped) runs without gradient only")
        return [m.imagine(d, s, actions, r, sample=sample) for m, d, s, r in zip(models, deter, stoch, roles_list)]
    with th.no_grad():
        first = models[0]
        K, M, _ = actions.shape
        packed = widths is not None
        widths = (M,) * K if widths is None else widths
        drawn = M if drawn is None else drawn
        S, C, D = first.stoch, first.classes, first.deter
        G = len(models)
        scan = _scan_weights(models)
        W_s, W_x, W_h, g_in, b_in, g_c, b_c = scan.W_s, scan.W_x, scan.W_h, scan.g_in, scan.b_in, scan.g_c, scan.b_c
        lin1 = [m.prior_head[0] for m in models]
        norm1 = [m.prior_head[1] for m in models]
        lin2 = [m.prior_head[3] for m in models]
        stack = lambda xs: th.stack(xs, 0)  # noqa: E731
        W1 = stack([m.weight.t() for m in lin1])  # no bias: a LayerNorm follows
        g1, be1 = stack([m.weight for m in norm1]).unsqueeze(1), stack([m.bias for m in norm1]).unsqueeze(1)
        W2, b2 = stack([m.weight.t() for m in lin2]), stack([m.bias for m in lin2]).unsqueeze(1)
        other = stack([m._other_inputs(actions, r) for m, r in zip(models, roles_list)])  # [G, K, M, H]
        P = sum(widths)
        deters = actions.new_empty((G, P, D))
        stochs = actions.new_empty((G, P, S * C))
        priors = actions.new_empty((G, P, S * C))
        eps_in, eps_c, eps_1 = first.in_norm.eps, first.cell.norm.eps, norm1[0].eps
        h, s = stack(list(deter)), stack(list(stoch))
        W_s, W_x, W_h, g_in, b_in, g_c, b_c, W1, g1, be1, W2, b2, other, h, s, deters, stochs, priors = (
            _in_autocast_dtype(actions.device.type, W_s, W_x, W_h, g_in, b_in, g_c, b_c, W1, g1, be1, W2, b2,
                               other, h, s, deters, stochs, priors))
        index = None
        start = 0
        for j, w in enumerate(widths):
            rows = slice(start, start + w)
            start += w
            h, s = h[:, :w], s[:, :w]
            a = (th.baddbmm(other[:, j, :w], s, W_s) if index is None
                 else _one_hot_matmul(index[:, :w], W_s, other[:, j, :w]))
            x = F.silu(_norm_affine(a, g_in, b_in, eps_in)[0])
            n = _norm_affine(th.baddbmm(th.bmm(h, W_h), x, W_x), g_c, b_c, eps_c)[0]
            ru = th.sigmoid(n[..., :2 * D])
            cand = th.tanh(ru[..., :D] * n[..., 2 * D:])
            h = th.lerp(h, cand, ru[..., D:], out=deters[:, rows])
            hidden = F.silu(_norm_affine(th.bmm(h, W1), g1, be1, eps_1)[0])
            logits = th.baddbmm(b2, hidden, W2, out=priors[:, rows]).view(G, w, S, C)
            if sample:  # inverse-CDF sample of the unimix prior
                noise = th.rand((G, drawn, S, 1), device=logits.device, dtype=logits.dtype)
                if draw_rows is not None:
                    noise = noise.index_select(1, draw_rows[:w])
                index = _draw(th.softmax(logits, -1), first.unimix, noise)
            else:
                index = logits.max(-1, keepdim=True).indices
            _one_hot_into(index, stochs[:, rows].view(G, w, S, C))
        if not packed:  # [K, M, ..]
            deters, stochs, priors = (x.view((G, K, M) + x.shape[2:]) for x in (deters, stochs, priors))
        return [{"deter": d, "stoch": st, "prior": p.unflatten(-1, (S, C))}
                for d, st, p in zip(deters.unbind(0), stochs.unbind(0), priors.unbind(0))]


def skip_draws(models, steps: int, drawn: int, device: th.device) -> None:
    """Draw (and drop) the uniforms `imagine_many` with sample=True would draw for `steps` more steps of
    `drawn` starts: a caller that runs fewer steps than the padded call leaves the RNG where it would be."""
    first = models[0]
    dtype = _in_autocast_dtype(device.type, first.prior_head[0].weight.detach())[0].dtype
    for _ in range(steps):
        th.rand((len(models), drawn, first.stoch, 1), device=device, dtype=dtype)

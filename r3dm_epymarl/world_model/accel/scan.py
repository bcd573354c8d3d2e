"""Several RSSMs of the same sizes (R3DM's role-agnostic and role-conditioned models) filtering the
same sequence in one loop, with matmuls batched over a leading model dimension G.

`observe_many` and `loss_many` give what each model's `RSSM.observe` / `loss` (world_model/rssm.py, the
reference, step by step with autograd) gives, with the same sampled latents, in one loop instead of one
per model. Training backpropagates through the filtering loop with a hand-written backward
(`_ObserveScan`): 1.18-1.32x faster than autograd through the steps (benchmarks/rssm_scan.py), kept
because tests/unit/test_world_model.py and test_wm_accel.py fail on any mismatch with the reference
(fp64), and tests/unit/test_precision.py checks its bf16 form. Shapes are time-major as in rssm.py; G
models, M streams, D deterministic units, S categoricals of C classes, H hidden. Inside, the scan runs
on packed rows (accel/packing.py): all [T, M] slots, or only the valid ones (`wm_skip_padding`).
"""
from __future__ import annotations


import torch as th
from torch.nn import functional as F

from r3dm_epymarl.modules.precision import at_least_fp32
from r3dm_epymarl.world_model.accel.kernels import (
    check_compatible, draw, in_autocast_dtype, norm_affine, one_hot_into, one_hot_matmul,
    stacked_scan_weights,
)
from r3dm_epymarl.world_model.accel.packing import Packing
from r3dm_epymarl.world_model.distributions import kl_losses, symlog
from r3dm_epymarl.world_model.rssm import ScanWeights, previous


# # The recurrences of G models with identical sizes (they may differ in role inputs, which only enter
# the parts computed outside the loop) run in one loop over T with batched matmuls over a leading
# model dimension. Training uses a custom autograd function with a hand-written backward through
# time: per step the gradients of the inputs run (batched over the models) and the recurrent weights
# gradients are accumulated step by step (in at least fp32); W_s's is one matmul over all T * M rows.
#
# Inside the loop, with per-model stacked weights (x @ W, row vectors):
#     a_t  = s_{t-1} @ W_s + other_t                 other_t = in_other([a_{t-1}, z_{t-1}])
#     x_t  = silu(LN_in(a_t))
#     p_t  = x_t @ W_x + h_{t-1} @ W_h               (the GRU's Linear on [x, h], split by input)
#     n_t  = LN_cell(p_t)                            columns reordered [reset, update, candidate], the
#                                                    update bias folded into the LayerNorm bias
#     r, u = sigmoid(n_r), sigmoid(n_u);  c = tanh(r * n_c);  h_t = h_{t-1} + u * (c - h_{t-1})
#     q_t  = h_t @ W_pd + pe_t                       pe_t = post_embed(embed_t)
#     l_t  = silu(LN_post(q_t)) @ W_po + b_po        posterior logits
#     s_t  = one_hot(sample or mode of unimix(softmax(l_t))), straight-through to the probabilities.
# Since s_t is one-hot, s_t @ W_s is computed as a sum of rows of W_s (the same value, far cheaper).


def _norm_backward(grad_out, weight, x, x_hat, mean, rstd, acc_weight, acc_bias) -> th.Tensor:
    """Backward of _norm_affine: returns the input gradient; adds the per-row weight / bias gradients
    (still to be summed over rows) into acc_weight / acc_bias [G, M, n]."""
    acc_weight.addcmul_(grad_out, x_hat)
    acc_bias.add_(grad_out)
    return th.ops.aten.native_layer_norm_backward(grad_out * weight, x, [x.shape[-1]], mean, rstd, None, None,
                                                  [True, False, False])[0]


def _accumulate_bmm(acc: th.Tensor, a: th.Tensor, b: th.Tensor) -> None:
    """acc += a @ b (batched); acc may be of a higher precision than a and b (fp32 for bf16 steps)."""
    if acc.dtype == a.dtype:
        acc.baddbmm_(a, b)
    else:
        acc.add_(th.bmm(a, b))


def _steps(widths):
    """(t, rows of step t as a slice of the packed rows, its width, the next step's width or 0)."""
    start = 0
    for t, w in enumerate(widths):
        yield t, slice(start, start + w), w, (widths[t + 1] if t + 1 < len(widths) else 0)
        start += w


def _scan_forward(h, s, other, pe, weights, noise, cfg, widths, save: bool):
    """The recurrence over packed rows (accel/packing.py): step t runs the first widths[t]
    streams (the ones still running; a prefix of the previous step's).

    h [G, w_0, D], s [G, w_0, SC] (h_{-1}, s_{-1}); other, pe [G, P, H] (P = sum(widths) rows, time-major);
    noise [G, P, S, 1] uniforms (sample) or None (mode). Returns (deter, stoch, post) [G, P, .] and, if
    save, what the backward needs (per-step lists). With every width M this is the padded [T, M] scan."""
    W_s, W_x, W_h, W_pd, W_po, b_po, g_in, b_in, g_c, b_c, g_p, b_p = weights  # a ScanWeights
    S, C, unimix, (eps_in, eps_c, eps_p) = cfg
    G, P, H = other.shape
    D = h.shape[-1]
    D2 = 2 * D
    new = other.new_empty
    deter, stoch, post = new((G, P, D)), new((G, P, S * C)), new((G, P, S * C))
    saved = None
    if save:
        saved = {k: [] for k in ("in", "cell", "post", "ln_in", "lp", "ru", "cand", "n", "soft", "x", "y")}
    p = th.bmm(h, W_h)  # the h_{-1} part of step 0's GRU Linear
    index = None
    for t, rows, w, w_next in _steps(widths):
        # s_{t-1} @ W_s: a dense product for s_{-1}, a sum of rows of W_s for the sampled one-hots.
        a = th.baddbmm(other[:, rows], s, W_s) if index is None else one_hot_matmul(index[:, :w], W_s,
                                                                                     other[:, rows])
        ln_in, *stats_in = norm_affine(a, g_in, b_in, eps_in)
        x = F.silu(ln_in)
        p = p.baddbmm_(x, W_x)
        n, *stats_c = norm_affine(p, g_c, b_c, eps_c)  # [reset | update | candidate]
        ru = th.sigmoid(n[..., :D2])
        cand = th.tanh(ru[..., :D] * n[..., D2:])
        h = th.lerp(h[:, :w], cand, ru[..., D:], out=deter[:, rows])
        q = th.baddbmm(pe[:, rows], h, W_pd)
        if w_next:
            p_next = th.bmm(h[:, :w_next], W_h)
        lp, *stats_p = norm_affine(q, g_p, b_p, eps_p)
        y = F.silu(lp)
        logits = th.baddbmm(b_po, y, W_po, out=post[:, rows]).view(G, w, S, C)
        if noise is not None or save:
            soft = th.softmax(logits, -1)
        if noise is not None:  # inverse-CDF sample of the unimix probabilities
            index = draw(soft, unimix, noise[:, rows])
        else:
            index = logits.max(-1, keepdim=True).indices  # the first maximum, as argmax
        one_hot_into(index, stoch[:, rows].view(G, w, S, C))
        if saved is not None:
            for key, value in (("in", (a, *stats_in)), ("cell", (p, *stats_c)), ("post", (q, *stats_p)),
                               ("ln_in", ln_in), ("lp", lp), ("ru", ru), ("cand", cand), ("n", n), ("soft", soft),
                               ("x", x), ("y", y)):
                saved[key].append(value)
        if w_next:
            p = p_next
    return deter, stoch, post, saved


def _plus_on_prefix(base: th.Tensor, add: th.Tensor) -> th.Tensor:
    """base [G, w, n] + add [G, w', n] on the first w' <= w rows (a new tensor)."""
    if add.shape[1] == base.shape[1]:
        return base + add
    out = base.clone()
    out[:, :add.shape[1]] += add
    return out


class _ObserveScan(th.autograd.Function):
    """The filtering recurrence of G stacked models with a hand-written backward through time.

    The backward runs the steps in reverse, batched over the models: the gradients of each step's
    pre-activations (through the straight-through sample, softmax, LayerNorms, SiLUs and the GRU
    gates), with the weight gradients accumulated step by step or, for W_s and W_pd, in one matmul
    over all steps. Its values equal autograd through the step-by-step recurrence (a test checks this).
    A stream that has ended takes no more steps: step t's gradients cover its widths[t] rows, and the
    gradients a step passes back reach the first widths[t+1] rows of the step before.
    """

    @staticmethod
    def forward(ctx, h0, s0, other, pe, *args):
        # autograd.Function takes tensors positionally: the 12 ScanWeights, then the rest
        weights, noise, cfg, packing = ScanWeights(*args[:12]), args[12], args[13], args[14]
        deter, stoch, post, saved = _scan_forward(h0, s0, other, pe, weights, noise, cfg, packing.widths, save=True)
        ctx.cfg, ctx.saved, ctx.packing = cfg, saved, packing
        ctx.save_for_backward(h0, s0, deter, stoch, *weights)
        return deter, stoch, post

    @staticmethod
    def backward(ctx, g_deter, g_stoch, g_post):
        h0, s0, deter, stoch, *saved_weights = ctx.saved_tensors
        W_s, W_x, W_h, W_pd, W_po, b_po, g_in, b_in, g_c, b_c, g_p, b_p = ScanWeights(*saved_weights)
        S, C, unimix, _ = ctx.cfg
        if ctx.saved is None:
            raise RuntimeError("the world models' fused scan backpropagates once per forward (no retain_graph): "
                               "compute the losses again for a second backward")
        saved, ctx.saved = ctx.saved, None
        packing = ctx.packing
        widths = packing.widths
        steps = list(_steps(widths))
        T = len(widths)
        G, P, D = deter.shape
        M = widths[0]  # the widest step
        H, SC = W_s.shape[-1], S * C
        D2, D3 = 2 * D, 3 * D
        tr = lambda v: v.transpose(-2, -1)  # noqa: E731
        W_sT, W_xT, W_hT, W_pdT, W_poT = (tr(w) for w in (W_s, W_x, W_h, W_pd, W_po))
        new = deter.new_empty
        # Gradients of the pre-activations of every step: the input layer (d_a), the GRU Linear (d_p),
        # the posterior's first layer (d_q) and the posterior logits (gl). d_a and d_q are also the
        # gradients of the inputs `other` and `pe`.
        d_a, d_q = [None] * T, [None] * T
        d_p_next = None  # d_p of step t + 1
        # Gradients summed over the steps (LayerNorm weights / biases: also over rows at the end) are
        # kept in at least fp32, so that bf16 steps do not lose the small late terms of a long sum.
        acc_dtype = th.promote_types(deter.dtype, th.float32)
        acc = [deter.new_zeros((G, M, n), dtype=acc_dtype) for n in (H, H, D3, D3, H, H)]
        gW_x, gW_h, gW_po = (th.zeros_like(w, dtype=acc_dtype) for w in (W_x, W_h, W_po))
        gb_po = deter.new_zeros((G, M, SC), dtype=acc_dtype)  # summed over rows at the end
        gates_all = new((G, M, D2))  # gradients of the reset / update gates (after the sigmoid)
        gn_all = new((G, M, D3))  # gradient of the cell's LayerNorm output
        carry = None  # gradient reaching h_t directly through step t + 1's interpolation
        for t, rows, w, w_next in reversed(steps):
            # Step t's saved values, released as they are used (the memory is reused for the next steps).
            soft, lp, post_norm, ru, cand, n, cell_norm, ln_in, in_norm, x, y = (
                saved[k].pop() for k in ("soft", "lp", "post", "ru", "cand", "n", "cell", "ln_in", "in", "x", "y"))
            acc_w = [a[:, :w] for a in acc]
            gates, gn = gates_all[:, :w], gn_all[:, :w]
            # Posterior of step t: straight-through sample -> unimix -> softmax -> logits.
            g_s = g_stoch[:, rows]
            if w_next:
                g_s = (th.baddbmm(g_s, d_a[t + 1], W_sT) if w_next == w
                       else _plus_on_prefix(g_s, th.bmm(d_a[t + 1], W_sT)))
            g_soft = th._softmax_backward_data(g_s.view(G, w, S, C), soft, -1, soft.dtype).view(G, w, SC)
            gl = th.add(g_post[:, rows], g_soft, alpha=1.0 - unimix)
            _accumulate_bmm(gW_po, tr(y), gl)
            gb_po[:, :w].add_(gl)
            glp = th.ops.aten.silu_backward(th.bmm(gl, W_poT), lp)
            d_q[t] = _norm_backward(glp, g_p, *post_norm, acc_w[4], acc_w[5])
            # h_t: its output, the posterior, the next step's GRU Linear and its interpolation.
            g_h = th.baddbmm(g_deter[:, rows] if carry is None else _plus_on_prefix(g_deter[:, rows], carry),
                             d_q[t], W_pdT)
            if d_p_next is not None:
                if w_next == w:
                    g_h.baddbmm_(d_p_next, W_hT)
                else:
                    g_h[:, :w_next] += th.bmm(d_p_next, W_hT)
            h_prev = h0 if t == 0 else deter[:, steps[t - 1][1]][:, :w]
            th.mul(g_h, cand - h_prev, out=gates[..., D:])  # d update
            g_cand = g_h * ru[..., D:]
            carry = g_h - g_cand  # (1 - update) * g_h
            g_arg = th.ops.aten.tanh_backward(g_cand, cand)  # d (reset * n_c)
            th.mul(g_arg, n[..., D2:], out=gates[..., :D])  # d reset
            th.mul(g_arg, ru[..., :D], out=gn[..., D2:])
            th.ops.aten.sigmoid_backward.grad_input(gates, ru, grad_input=gn[..., :D2])
            d_p = _norm_backward(gn, g_c, *cell_norm, acc_w[2], acc_w[3])
            _accumulate_bmm(gW_x, tr(x), d_p)
            _accumulate_bmm(gW_h, tr(h_prev), d_p)
            gln = th.ops.aten.silu_backward(th.bmm(d_p, W_xT), ln_in)
            d_a[t] = _norm_backward(gln, g_in, *in_norm, acc_w[0], acc_w[1])
            d_p_next = d_p
        g_s0 = th.bmm(d_a[0], W_sT)
        g_h0 = th.baddbmm(carry, d_p_next, W_hT)
        d_a, d_q = th.cat(d_a, 1), th.cat(d_q, 1)  # [G, P, H]

        # The weight gradients of W_s and W_pd over all steps at once (a matmul accumulates in fp32):
        # step t's rows read s_{t-1} of the same stream (s_{-1} = s0 for step 0).
        previous_rows = packing.previous_rows()
        s_prev = stoch[:, previous_rows] if isinstance(previous_rows, slice) else stoch.index_select(1, previous_rows)
        gW_s = th.baddbmm(th.bmm(tr(s0), d_a[:, :M]), tr(s_prev), d_a[:, M:])
        gW_pd = th.bmm(tr(deter), d_q)
        sums = [a.sum(1, keepdim=True).to(w.dtype) for a, w in zip(acc, (g_in, b_in, g_c, b_c, g_p, b_p))]
        g_weights = ScanWeights(gW_s, gW_x.to(W_x.dtype), gW_h.to(W_h.dtype), gW_pd, gW_po.to(W_po.dtype),
                                gb_po.sum(1, keepdim=True).to(b_po.dtype), *sums)
        return (g_h0, g_s0, d_a, d_q, *g_weights, None, None, None)


def _observe_many(models, obs_sl: th.Tensor, actions: th.Tensor, roles_list, sample: bool,
                  packing: Packing | None = None):
    """observe_many on symlog(obs), on the packed rows of `packing` (None: every [T, M] slot).

    Returns per-model dicts of packed rows: deter [P, D], stoch [P, SC], post / prior [P, S, C]."""
    check_compatible(models)
    first = models[0]
    T, M, _ = obs_sl.shape
    packing = Packing.dense(T, M) if packing is None else packing
    pack = packing.pack
    prev_actions = pack(previous(actions))  # a_{t-1} [P, A]
    obs_rows = pack(obs_sl)
    others, embeds, h0s, s0s = [], [], [], []
    for model, roles in zip(models, roles_list):
        embeds.append(model.embed(obs_rows))  # [P, H]
        prev_roles = None if model.role_dim == 0 else pack(previous(roles))  # z_{t-1} [P, R]
        others.append(model.step_inputs(prev_actions, prev_roles))  # [P, H]
        h, s = model.initial(packing.widths[0])
        h0s.append(h)
        s0s.append(s)
    # Uniforms for the samples, model by model (the draws of each model's RSSM.observe in turn), drawn
    # for every padded slot so that skipping the padding draws the same numbers.
    noise = th.stack([pack(m.filter_noise(T, M, obs_sl.device, obs_sl.dtype)) for m in models], 0) if sample else None
    stack = lambda xs: th.stack(xs, 0)  # noqa: E731
    weights = stacked_scan_weights(models)
    cfg = (first.stoch, first.classes, first.unimix, first.norm_eps()[:3])
    inputs = (stack(h0s), stack(s0s), stack(others), stack(embeds))
    device_type = obs_sl.device.type
    cast = in_autocast_dtype(device_type, *inputs, *weights)
    inputs, weights = cast[:len(inputs)], ScanWeights(*cast[len(inputs):])
    with th.autocast(device_type, enabled=False):
        # Training samples (loss_many). With sample=False under gradient (tests only) the modes carry the
        # probabilities' straight-through gradient, not the published mode's (RSSM.latent).
        if th.is_grad_enabled() and any(x.requires_grad for x in inputs + weights):
            deter, stoch, post = _ObserveScan.apply(*inputs, *weights, noise, cfg, packing)
        else:
            deter, stoch, post, _ = _scan_forward(*inputs, weights, noise, cfg, packing.widths, save=False)
    outs = []
    for model, d, s, p in zip(models, deter.unbind(0), stoch.unbind(0), post.unbind(0)):
        outs.append({"deter": d, "stoch": s, "post": p.unflatten(-1, (model.stoch, model.classes)),
                     "prior": model.prior(d)})
    return outs


def observe_many(models, obs: th.Tensor, actions: th.Tensor, roles_list, sample: bool = True,
                 obs_symlog: th.Tensor | None = None, packing: Packing | None = None):
    """RSSM.observe for several models of the same sizes on the same obs / actions, in one fused loop.

    roles_list: one roles tensor [T, M, R] (or None) per model. Returns one output dict per model,
    the same as each model's observe (sampling draws model by model, as calling them in turn would):
    [T, M, ..] tensors, or with `packing` its packed rows [P, ..] (the padding skipped).
    obs_symlog: symlog(obs), if the caller has it already.
    """
    obs_sl = symlog(obs) if obs_symlog is None else obs_symlog
    outs = _observe_many(models, obs_sl, actions, roles_list, sample, packing)
    if packing is None:
        T, M = obs.shape[:2]
        outs = [{k: v.reshape((T, M) + v.shape[1:]) for k, v in out.items()} for out in outs]
    return outs


def loss_many(models, obs: th.Tensor, actions: th.Tensor, roles_list, valid: th.Tensor | None = None,
              packing: Packing | None = None) -> list[dict[str, th.Tensor]]:
    """RSSM.loss for several models of the same sizes (one fused filtering loop); one dict per model.

    With `packing` (whose rows are exactly the valid steps) the padding is skipped: the scan, the
    encoder, the heads, the decoder and the KL run on the valid rows only, and `valid` is not read."""
    target = symlog(obs)
    T, M = obs.shape[:2]
    outs = _observe_many(models, target, actions, roles_list, sample=True, packing=packing)
    if packing is not None:
        denom, weight = packing.size, None
    else:
        weight = th.ones((T * M,), device=obs.device, dtype=obs.dtype) if valid is None else valid.reshape(T * M)
        denom = weight.sum().clamp(min=1.0)
    packing = Packing.dense(T, M) if packing is None else packing
    target = packing.pack(target)  # [P, O]
    mean = lambda x: (x.sum() if weight is None else (x * weight).sum()) / denom  # noqa: E731
    results = []
    for model, out, roles in zip(models, outs, roles_list):
        # o_t is decoded with z_{t-1}, never with z_t (computed from o_t: the decoder would read its target).
        prev_roles = None if roles is None else packing.pack(previous(roles))
        pred = model.decode(out["deter"], out["stoch"], prev_roles)  # [P, O]
        recon = F.mse_loss(at_least_fp32(pred), target, reduction="none").sum(-1)  # sum_O (pred - target)^2 [P]
        # fp32 for the reductions whatever the precision of the networks (post / prior may be bf16)
        dyn, rep = kl_losses(at_least_fp32(out["post"]), at_least_fp32(out["prior"]), model.free_bits,
                             model.unimix)  # [P] each
        total = recon + model.dyn_scale * dyn + model.rep_scale * rep
        results.append({"recon": mean(recon), "dyn": mean(dyn), "rep": mean(rep), "total": mean(total)})
    return results

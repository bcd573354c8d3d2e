"""Several RSSMs of the same sizes (R3DM's role-agnostic and role-conditioned models) filtering and
imagining the same sequence in one loop, with matmuls batched over a leading model dimension G.

`observe_many`, `loss_many` and `imagine_many` give what each model's `RSSM.observe` / `loss` /
`imagine` (world_model/rssm.py, step by step with autograd) gives, in one loop instead of one per
model. Training backpropagates through the filtering loop with a hand-written backward
(`_ObserveScan`): 1.18-1.32x faster than autograd through the steps (benchmarks/rssm_scan.py), kept
because tests/unit/test_world_model.py fails on any mismatch with autograd (fp64), and
tests/unit/test_precision.py checks its bf16 form. Shapes are time-major as in rssm.py; G models,
M streams, D deterministic units, S categoricals of C classes, H hidden.
"""
from __future__ import annotations

import torch as th
from torch.nn import functional as F

from r3dm_epymarl.modules.precision import at_least_fp32
from r3dm_epymarl.world_model.distributions import kl_losses, symlog


def previous(x: th.Tensor) -> th.Tensor:
    """x [T, M, ..] -> [x_{-1} = 0, x_0, ..., x_{T-2}]: the value of the step before, time-major."""
    return th.cat([th.zeros_like(x[:1]), x[:-1]], 0)


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


def _in_autocast_dtype(device_type: str, *tensors: th.Tensor) -> tuple[th.Tensor, ...]:
    """Inside an autocast region (precision: bf16) a fused loop runs wholly in autocast's dtype: its
    inputs and weights are cast once here (differentiably: gradients reach the fp32 weights), so no op
    in the loop mixes dtypes. Outside one, the tensors as they are."""
    if not th.is_autocast_enabled(device_type):
        return tensors
    dtype = th.get_autocast_dtype(device_type)
    return tuple(x.to(dtype) for x in tensors)


def _check_compatible(models) -> None:
    first = models[0]
    for m in models[1:]:
        if (m.deter, m.hidden, m.stoch, m.classes, m.unimix) != (first.deter, first.hidden, first.stoch,
                                                                 first.classes, first.unimix):
            raise ValueError("observe_many / imagine_many need models of the same sizes and unimix")


def _gate_order(x: th.Tensor) -> th.Tensor:
    """[reset, candidate, update] blocks along dim 0 -> [reset, update, candidate]."""
    reset, cand, update = x.chunk(3, 0)
    return th.cat([reset, update, cand], 0)


def _scan_weights(models) -> tuple[th.Tensor, ...]:
    """The recurrence's parameters, stacked over the models (differentiable: gradients reach each model).

    Returns W_s [G, SC, H], W_x [G, H, 3D], W_h [G, D, 3D], W_pd [G, D, H], W_po [G, H, SC],
    b_po [G, 1, SC], then the LayerNorm weights / biases [G, 1, n] of in_norm, cell.norm, post_norm
    (the cell's in [reset, update, candidate] order, its bias including the update bias).
    """
    H = models[0].hidden
    parts = [[] for _ in range(12)]
    for m in models:
        w = _gate_order(m.cell.linear.weight)  # [3D, H + D]
        r_bias, c_bias, u_bias = m.cell.norm.bias.chunk(3, 0)
        values = (m.in_stoch.weight.t(), w[:, :H].t(), w[:, H:].t(), m.post_deter.weight.t(),
                  m.post_out.weight.t(), m.post_out.bias.unsqueeze(0), m.in_norm.weight, m.in_norm.bias,
                  _gate_order(m.cell.norm.weight), th.cat([r_bias, u_bias + m.cell.update_bias, c_bias], 0),
                  m.post_norm.weight, m.post_norm.bias)
        for store, value in zip(parts, values):
            store.append(value)
    stacked = [th.stack(p, 0) for p in parts]
    return tuple(stacked[:6]) + tuple(p.unsqueeze(1) for p in stacked[6:])


def _norm_affine(x: th.Tensor, weight: th.Tensor, bias: th.Tensor, eps: float):
    """LayerNorm over the last dim of x [G, M, n] with per-model weight / bias [G, 1, n].

    Returns (out, x_hat, mean, rstd): the output, the normalised input and its statistics [G, M, 1]."""
    x_hat, mean, rstd = th.native_layer_norm(x, (x.shape[-1],), None, None, eps)
    return th.addcmul(bias, x_hat, weight), x_hat, mean, rstd


def _norm_backward(grad_out, weight, x, x_hat, mean, rstd, acc_weight, acc_bias) -> th.Tensor:
    """Backward of _norm_affine: returns the input gradient; adds the per-row weight / bias gradients
    (still to be summed over rows) into acc_weight / acc_bias [G, M, n]."""
    acc_weight.addcmul_(grad_out, x_hat)
    acc_bias.add_(grad_out)
    return th.ops.aten.native_layer_norm_backward(grad_out * weight, x, [x.shape[-1]], mean, rstd, None, None,
                                                  [True, False, False])[0]


def _one_hot_into(index: th.Tensor, out: th.Tensor) -> th.Tensor:
    """index [.., S, 1] -> one-hot written into out [.., S, C] (float)."""
    return out.zero_().scatter_(-1, index, out.new_ones(()).expand(index.shape))


def _one_hot_matmul(index: th.Tensor, weight: th.Tensor, add: th.Tensor) -> th.Tensor:
    """one_hot(index) @ weight + add, as a sum of the selected rows (the latents are one-hot).

    index [G, M, S, 1] (class of each latent), weight [G, S * C, H], add [G, M, H] -> [G, M, H]."""
    G, M, S, _ = index.shape
    SC = weight.shape[1]
    first_row = th.arange(0, G * SC, SC // S, device=index.device).view(G, 1, S)  # of latent s in model g
    rows = (index.view(G, M, S) + first_row).view(G * M, S)
    return F.embedding_bag(rows, weight.reshape(G * SC, -1), mode="sum").view(G, M, -1).add_(add)


def _accumulate_bmm(acc: th.Tensor, a: th.Tensor, b: th.Tensor) -> None:
    """acc += a @ b (batched); acc may be of a higher precision than a and b (fp32 for bf16 steps)."""
    if acc.dtype == a.dtype:
        acc.baddbmm_(a, b)
    else:
        acc.add_(th.bmm(a, b))


def _draw(soft: th.Tensor, unimix: float, noise: th.Tensor) -> th.Tensor:
    """Inverse-CDF draw from the unimix of softmax probabilities soft [.., S, C], given uniforms
    noise [.., S, 1] -> class index [.., S, 1]."""
    C = soft.shape[-1]
    probs = soft * (1.0 - unimix) + unimix / C if unimix > 0 else soft
    return (probs[..., :C - 1].cumsum(-1) < noise).sum(-1, keepdim=True)


def _scan_forward(h, s, other, pe, weights, noise, cfg, save: bool):
    """The recurrence. h [G, M, D], s [G, M, SC] (h_{-1}, s_{-1}); other, pe [G, T, M, H];
    noise [G, T, M, S, 1] uniforms (sample) or None (mode). Returns (deter, stoch, post) [G, T, M, .] and,
    if save, what the backward needs (per-step lists)."""
    W_s, W_x, W_h, W_pd, W_po, b_po, g_in, b_in, g_c, b_c, g_p, b_p = weights
    S, C, unimix, (eps_in, eps_c, eps_p) = cfg
    G, T, M, H = other.shape
    D = h.shape[-1]
    D2 = 2 * D
    new = other.new_empty
    deter, stoch, post = new((G, T, M, D)), new((G, T, M, S * C)), new((G, T, M, S * C))
    saved = None
    if save:
        saved = {k: [] for k in ("in", "cell", "post", "ln_in", "lp", "ru", "cand", "n", "soft", "x", "y")}
    p = th.bmm(h, W_h)  # the h_{-1} part of step 0's GRU Linear
    index = None
    for t in range(T):
        # s_{t-1} @ W_s: a dense product for s_{-1}, a sum of rows of W_s for the sampled one-hots.
        a = th.baddbmm(other[:, t], s, W_s) if index is None else _one_hot_matmul(index, W_s, other[:, t])
        ln_in, *stats_in = _norm_affine(a, g_in, b_in, eps_in)
        x = F.silu(ln_in)
        p = p.baddbmm_(x, W_x)
        n, *stats_c = _norm_affine(p, g_c, b_c, eps_c)  # [reset | update | candidate]
        ru = th.sigmoid(n[..., :D2])
        cand = th.tanh(ru[..., :D] * n[..., D2:])
        h = th.lerp(h, cand, ru[..., D:], out=deter[:, t])
        q = th.baddbmm(pe[:, t], h, W_pd)
        if t + 1 < T:
            p_next = th.bmm(h, W_h)
        lp, *stats_p = _norm_affine(q, g_p, b_p, eps_p)
        y = F.silu(lp)
        logits = th.baddbmm(b_po, y, W_po, out=post[:, t]).view(G, M, S, C)
        if noise is not None or save:
            soft = th.softmax(logits, -1)
        if noise is not None:  # inverse-CDF sample of the unimix probabilities
            index = _draw(soft, unimix, noise[:, t])
        else:
            index = logits.max(-1, keepdim=True).indices  # the first maximum, as argmax
        s = _one_hot_into(index, stoch[:, t].view(G, M, S, C)).view(G, M, S * C)
        if saved is not None:
            for key, value in (("in", (a, *stats_in)), ("cell", (p, *stats_c)), ("post", (q, *stats_p)),
                               ("ln_in", ln_in), ("lp", lp), ("ru", ru), ("cand", cand), ("n", n), ("soft", soft),
                               ("x", x), ("y", y)):
                saved[key].append(value)
        if t + 1 < T:
            p = p_next
    return deter, stoch, post, saved


class _ObserveScan(th.autograd.Function):
    """The filtering recurrence of G stacked models with a hand-written backward through time.

    The backward runs the steps in reverse, batched over the models: the gradients of each step's
    pre-activations (through the straight-through sample, softmax, LayerNorms, SiLUs and the GRU
    gates), with the weight gradients accumulated step by step or, for W_s and W_pd, in one matmul
    over all steps. Its values equal autograd through the step-by-step recurrence (a test checks this).
    """

    @staticmethod
    def forward(ctx, h0, s0, other, pe, *args):
        weights, noise, cfg = args[:12], args[12], args[13]
        deter, stoch, post, saved = _scan_forward(h0, s0, other, pe, weights, noise, cfg, save=True)
        ctx.cfg, ctx.saved = cfg, saved
        ctx.save_for_backward(h0, s0, deter, stoch, *weights)
        return deter, stoch, post

    @staticmethod
    def backward(ctx, g_deter, g_stoch, g_post):
        h0, s0, deter, stoch, *weights = ctx.saved_tensors
        W_s, W_x, W_h, W_pd, W_po, b_po, g_in, b_in, g_c, b_c, g_p, b_p = weights
        S, C, unimix, _ = ctx.cfg
        saved, ctx.saved = ctx.saved, None
        G, T, M, D = deter.shape
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
        gates = new((G, M, D2))  # gradients of the reset / update gates (after the sigmoid)
        gn = new((G, M, D3))  # gradient of the cell's LayerNorm output
        carry = None  # gradient reaching h_t directly through step t + 1's interpolation
        for t in range(T - 1, -1, -1):
            # Step t's saved values, released as they are used (the memory is reused for the next steps).
            soft, lp, post_norm, ru, cand, n, cell_norm, ln_in, in_norm, x, y = (
                saved[k].pop() for k in ("soft", "lp", "post", "ru", "cand", "n", "cell", "ln_in", "in", "x", "y"))
            # Posterior of step t: straight-through sample -> unimix -> softmax -> logits.
            g_s = g_stoch[:, t] if t == T - 1 else th.baddbmm(g_stoch[:, t], d_a[t + 1], W_sT)
            g_soft = th._softmax_backward_data(g_s.view(G, M, S, C), soft, -1, soft.dtype).view(G, M, SC)
            gl = th.add(g_post[:, t], g_soft, alpha=1.0 - unimix)
            _accumulate_bmm(gW_po, tr(y), gl)
            gb_po.add_(gl)
            glp = th.ops.aten.silu_backward(th.bmm(gl, W_poT), lp)
            d_q[t] = _norm_backward(glp, g_p, *post_norm, acc[4], acc[5])
            # h_t: its output, the posterior, the next step's GRU Linear and its interpolation.
            g_h = th.baddbmm(g_deter[:, t] if carry is None else g_deter[:, t] + carry, d_q[t], W_pdT)
            if d_p_next is not None:
                g_h.baddbmm_(d_p_next, W_hT)
            h_prev = h0 if t == 0 else deter[:, t - 1]
            th.mul(g_h, cand - h_prev, out=gates[..., D:])  # d update
            g_cand = g_h * ru[..., D:]
            carry = g_h - g_cand  # (1 - update) * g_h
            g_arg = th.ops.aten.tanh_backward(g_cand, cand)  # d (reset * n_c)
            th.mul(g_arg, n[..., D2:], out=gates[..., :D])  # d reset
            th.mul(g_arg, ru[..., :D], out=gn[..., D2:])
            th.ops.aten.sigmoid_backward.grad_input(gates, ru, grad_input=gn[..., :D2])
            d_p = _norm_backward(gn, g_c, *cell_norm, acc[2], acc[3])
            _accumulate_bmm(gW_x, tr(x), d_p)
            _accumulate_bmm(gW_h, tr(h_prev), d_p)
            gln = th.ops.aten.silu_backward(th.bmm(d_p, W_xT), ln_in)
            d_a[t] = _norm_backward(gln, g_in, *in_norm, acc[0], acc[1])
            d_p_next = d_p
        g_s0 = th.bmm(d_a[0], W_sT)
        g_h0 = th.baddbmm(carry, d_p_next, W_hT)
        d_a, d_q = th.stack(d_a, 1), th.stack(d_q, 1)  # [G, T, M, H]

        # The weight gradients of W_s and W_pd over all steps at once (a matmul accumulates in fp32).
        rows = lambda v: v.reshape(G, v.shape[1] * M, v.shape[-1])  # [G, T', M, n] -> [G, T' * M, n]  # noqa: E731
        gW_s = th.baddbmm(th.bmm(tr(s0), d_a[:, 0]), tr(rows(stoch[:, :T - 1])), rows(d_a[:, 1:]))
        gW_pd = th.bmm(tr(rows(deter)), rows(d_q))
        sums = [a.sum(1, keepdim=True).to(w.dtype) for a, w in zip(acc, (g_in, b_in, g_c, b_c, g_p, b_p))]
        return (g_h0, g_s0, d_a, d_q, gW_s, gW_x.to(W_x.dtype), gW_h.to(W_h.dtype), gW_pd, gW_po.to(W_po.dtype),
                gb_po.sum(1, keepdim=True).to(b_po.dtype), *sums, None, None)


def _observe_many(models, obs_sl: th.Tensor, actions: th.Tensor, roles_list, sample: bool):
    """observe_many on symlog(obs); returns the per-model output dicts."""
    _check_compatible(models)
    first = models[0]
    T, M, _ = obs_sl.shape
    prev_actions = previous(actions)  # a_{t-1} [T, M, A]
    others, embeds, h0s, s0s = [], [], [], []
    for model, roles in zip(models, roles_list):
        embeds.append(model.post_embed(model.encoder(obs_sl)))  # [T, M, H]
        prev_roles = None if model.role_dim == 0 else previous(roles)  # z_{t-1} [T, M, R]
        others.append(model._other_inputs(prev_actions, prev_roles))  # [T, M, H]
        h, s = model.initial(M)
        h0s.append(h)
        s0s.append(s)
    # Uniforms for the samples, model by model in time order (the same draws as sampling step by step).
    noise = th.stack([th.rand((T, M, first.stoch, 1), device=obs_sl.device, dtype=obs_sl.dtype)
                      for _ in models], 0) if sample else None
    stack = lambda xs: th.stack(xs, 0)  # noqa: E731
    weights = _scan_weights(models)
    cfg = (first.stoch, first.classes, first.unimix,
           (first.in_norm.eps, first.cell.norm.eps, first.post_norm.eps))
    inputs = (stack(h0s), stack(s0s), stack(others), stack(embeds))
    device_type = obs_sl.device.type
    cast = _in_autocast_dtype(device_type, *inputs, *weights)
    inputs, weights = cast[:len(inputs)], cast[len(inputs):]
    with th.autocast(device_type, enabled=False):
        if th.is_grad_enabled() and any(x.requires_grad for x in inputs + weights):
            deter, stoch, post = _ObserveScan.apply(*inputs, *weights, noise, cfg)
        else:
            deter, stoch, post, _ = _scan_forward(*inputs, weights, noise, cfg, save=False)
    outs = []
    for model, d, s, p in zip(models, deter.unbind(0), stoch.unbind(0), post.unbind(0)):
        outs.append({"deter": d, "stoch": s, "post": p.unflatten(-1, (model.stoch, model.classes)),
                     "prior": model.prior(d)})
    return outs


def observe_many(models, obs: th.Tensor, actions: th.Tensor, roles_list, sample: bool = True,
                 obs_symlog: th.Tensor | None = None):
    """RSSM.observe for several models of the same sizes on the same obs / actions, in one fused loop.

    roles_list: one roles tensor [T, M, R] (or None) per model. Returns one output dict per model,
    the same as each model's observe (sampling draws model by model, as calling them in turn would).
    obs_symlog: symlog(obs), if the caller has it already.
    """
    return _observe_many(models, symlog(obs) if obs_symlog is None else obs_symlog, actions, roles_list, sample)


def loss_many(models, obs: th.Tensor, actions: th.Tensor, roles_list,
              valid: th.Tensor | None = None) -> list[dict[str, th.Tensor]]:
    """RSSM.loss for several models of the same sizes (one fused filtering loop); one dict per model."""
    target = symlog(obs)
    outs = _observe_many(models, target, actions, roles_list, sample=True)
    if valid is None:
        valid = th.ones(obs.shape[:-1], device=obs.device, dtype=obs.dtype)
    denom = valid.sum().clamp(min=1.0)
    mean = lambda x: (x * valid).sum() / denom  # noqa: E731
    results = []
    for model, out, roles in zip(models, outs, roles_list):
        # o_t is decoded with z_{t-1}, never with z_t (computed from o_t: the decoder would read its target).
        pred = model.decode(out["deter"], out["stoch"], None if roles is None else previous(roles))  # [T, M, O]
        recon = F.mse_loss(at_least_fp32(pred), target, reduction="none").sum(-1)  # sum_O (pred - target)^2 [T, M]
        # fp32 for the reductions whatever the precision of the networks (post / prior may be bf16)
        dyn, rep = kl_losses(at_least_fp32(out["post"]), at_least_fp32(out["prior"]), model.free_bits,
                             model.unimix)  # [T, M] each
        total = recon + model.dyn_scale * dyn + model.rep_scale * rep
        results.append({"recon": mean(recon), "dyn": mean(dyn), "rep": mean(rep), "total": mean(total)})
    return results


def imagine_many(models, deter: list[th.Tensor], stoch: list[th.Tensor], actions: th.Tensor, roles_list,
                 sample: bool = False):
    """RSSM.imagine for several models of the same sizes in one fused loop, without gradient.

    deter / stoch: one [M, D] / [M, SC] start state per model; actions [K, M, A] (shared);
    roles_list: one [K, M, R] (or None) per model. sample: draw each latent from the prior (with
    unimix, inverse-CDF on uniforms drawn model by model, step by step) instead of its mode.
    Returns one dict per model (deter, stoch, prior).
    With gradients being recorded this falls back to each model's step-by-step imagine.
    """
    _check_compatible(models)
    params = [p for m in models for p in m.parameters()]
    if th.is_grad_enabled() and (any(p.requires_grad for p in params)
                                 or any(x.requires_grad for x in (*deter, *stoch))):
        return [m.imagine(d, s, actions, r, sample=sample) for m, d, s, r in zip(models, deter, stoch, roles_list)]
    with th.no_grad():
        first = models[0]
        K, M, _ = actions.shape
        S, C, D = first.stoch, first.classes, first.deter
        G = len(models)
        W_s, W_x, W_h, _, _, _, g_in, b_in, g_c, b_c, _, _ = _scan_weights(models)
        lin1 = [m.prior_head[0] for m in models]
        norm1 = [m.prior_head[1] for m in models]
        lin2 = [m.prior_head[3] for m in models]
        stack = lambda xs: th.stack(xs, 0)  # noqa: E731
        W1, b1 = stack([m.weight.t() for m in lin1]), stack([m.bias for m in lin1]).unsqueeze(1)
        g1, be1 = stack([m.weight for m in norm1]).unsqueeze(1), stack([m.bias for m in norm1]).unsqueeze(1)
        W2, b2 = stack([m.weight.t() for m in lin2]), stack([m.bias for m in lin2]).unsqueeze(1)
        other = stack([m._other_inputs(actions, r) for m, r in zip(models, roles_list)])  # [G, K, M, H]
        deters = actions.new_empty((G, K, M, D))
        stochs = actions.new_empty((G, K, M, S * C))
        priors = actions.new_empty((G, K, M, S * C))
        eps_in, eps_c, eps_1 = first.in_norm.eps, first.cell.norm.eps, norm1[0].eps
        h, s = stack(list(deter)), stack(list(stoch))
        W_s, W_x, W_h, g_in, b_in, g_c, b_c, W1, b1, g1, be1, W2, b2, other, h, s, deters, stochs, priors = (
            _in_autocast_dtype(actions.device.type, W_s, W_x, W_h, g_in, b_in, g_c, b_c, W1, b1, g1, be1, W2, b2,
                               other, h, s, deters, stochs, priors))
        index = None
        for j in range(K):
            a = th.baddbmm(other[:, j], s, W_s) if index is None else _one_hot_matmul(index, W_s, other[:, j])
            x = F.silu(_norm_affine(a, g_in, b_in, eps_in)[0])
            n = _norm_affine(th.baddbmm(th.bmm(h, W_h), x, W_x), g_c, b_c, eps_c)[0]
            ru = th.sigmoid(n[..., :2 * D])
            cand = th.tanh(ru[..., :D] * n[..., 2 * D:])
            h = th.lerp(h, cand, ru[..., D:], out=deters[:, j])
            hidden = F.silu(_norm_affine(th.baddbmm(b1, h, W1), g1, be1, eps_1)[0])
            logits = th.baddbmm(b2, hidden, W2, out=priors[:, j]).view(G, M, S, C)
            if sample:  # inverse-CDF sample of the unimix prior
                noise = th.rand((G, M, S, 1), device=logits.device, dtype=logits.dtype)
                index = _draw(th.softmax(logits, -1), first.unimix, noise)
            else:
                index = logits.max(-1, keepdim=True).indices
            _one_hot_into(index, stochs[:, j].view(G, M, S, C))
        return [{"deter": d, "stoch": st, "prior": p.unflatten(-1, (S, C))}
                for d, st, p in zip(deters.unbind(0), stochs.unbind(0), priors.unbind(0))]

"""R3DM's k-step prediction, the quantity its reward reads: from every start t = 0..T-2 of every stream,
the filtered state at t + 1 (j = 1), then open-loop imagination with the actions and roles taken
(j = 2..k); per imagined step the decoder's squared error on the observation and the prior's
log-probability of the latent it produced.

`predict` is the one definition, on the padded [T, M] layout. It runs the recurrence through
`PLAIN_LOOPS` (each model's RSSM.observe / imagine in turn, autograd-able: the reference and
`wm_fused: false`) or through loops with the same signature and the same draws (the accelerator's
`FUSED_LOOPS`, world_model/accel/). The accelerator's padding-free form is accel/padding_free.py.
"""
from __future__ import annotations

from typing import NamedTuple

import torch as th
from torch.nn import functional as F

from r3dm_epymarl.modules.precision import at_least_fp32, compute_dtype
from r3dm_epymarl.world_model.distributions import one_hot_log_prob, symlog
from r3dm_epymarl.world_model.rssm import imagination_noise


class Loops(NamedTuple):
    """How the models' recurrences run: observe(models, obs, actions, roles_list, sample, obs_symlog) -> one
    RSSM.observe dict per model (drawing as each model's observe in turn), and imagine(models, deters,
    stochs, actions, roles_list, sample, noise) -> one RSSM.imagine dict per model."""

    observe: object
    imagine: object


def _observe_each(models, obs, actions, roles_list, sample, obs_symlog=None):
    return [m.observe(obs, actions, r, sample=sample) for m, r in zip(models, roles_list)]


def _imagine_each(models, deters, stochs, actions, roles_list, sample, noise=None):
    return [m.imagine(d, s, actions, r, sample=sample, noise=None if noise is None else noise[g])
            for g, (m, d, s, r) in enumerate(zip(models, deters, stochs, roles_list))]


PLAIN_LOOPS = Loops(_observe_each, _imagine_each)


def step_errors(model, deter, stoch, prior, dec_roles, targets, with_logp: bool):
    """deter [.., D], stoch [.., SC], prior [.., S, C] logits, dec_roles [.., R] or None, targets [.., O]
    (symlog) -> (err [..]: ||decode - target||^2, logp [..]: log p_prior(stoch), or None), in fp32."""
    pred = model.decode(deter, stoch, dec_roles)
    err = F.mse_loss(at_least_fp32(pred), targets.expand_as(pred), reduction="none").sum(-1)
    logp = (one_hot_log_prob(at_least_fp32(prior), at_least_fp32(stoch).unflatten(-1, prior.shape[-2:]), model.unimix)
            if with_logp else None)
    return err, logp


def predict(models, obs: th.Tensor, actions: th.Tensor, roles_list, k: int, sample: bool = False,
            with_logp: bool = True, loops: Loops = PLAIN_LOOPS):
    """obs [T, M, O], actions [T, M, A], roles [T, M, R] or None per model -> per model (err [k, T-1, M],
    logp [k, T-1, M] or None without `with_logp`). Steps beyond the sequence are computed on zero
    padding (the caller masks them). sample: sampled latents (published) or modes.

    The uniforms are drawn in the dtype the loops compute in (autocast's inside an autocast region), as
    accel/padding_free.py draws them, so both sample the same latents under bf16 too."""
    T, M, _ = obs.shape
    obs_sl = symlog(obs)
    outs = loops.observe(models, obs, actions, roles_list, sample, obs_symlog=obs_sl)
    # j = 1: h'_1 = seq(h_t, s_t, a_t, z_t) is exactly the filtered h_{t+1}; its prior is prior_{t+1}.
    deters = [out["deter"][1:] for out in outs]  # [T-1, M, D]
    priors = [out["prior"][1:] for out in outs]  # [T-1, M, S, C]
    # j = 1 latents: one uniform per latent of every [T-1, M] slot, model by model, in the prior's dtype
    stochs = [m.latent(p.flatten(-2), sample, m.filter_noise(T - 1, M, obs.device, p.dtype) if sample else None)
              for m, p in zip(models, priors)]  # [T-1, M, SC]
    pad = lambda x: th.cat([x, x.new_zeros((k,) + x.shape[1:])], 0)  # [T+k, M, ..]  # noqa: E731
    window = lambda x, j: x[j:j + T - 1]  # rows for t + j, t = 0..T-2  # noqa: E731
    if k > 1:
        act_p, obs_p = pad(actions), pad(obs_sl)  # symlog(0) = 0: padding after symlog is the same
        roles_p = [None if r is None else pad(r) for r in roles_list]
        targets = th.stack([window(obs_p, j) for j in range(1, k + 1)], 0)  # [k, T-1, M, O] (symlog)
    else:  # t + 1 <= T - 1 always exists
        roles_p = list(roles_list)
        targets = obs_sl[1:].unsqueeze(0)
    ims = [None] * len(models)
    if k > 1:
        starts = (T - 1) * M
        acts = th.stack([window(act_p, j - 1) for j in range(2, k + 1)], 0).reshape(k - 1, starts, -1)
        zs = [None if r is None else
              th.stack([window(r, j - 1) for j in range(2, k + 1)], 0).reshape(k - 1, starts, -1) for r in roles_p]
        dtype = compute_dtype(obs.device.type, actions.dtype)
        noise = imagination_noise(models, k - 1, starts, obs.device, dtype) if sample else None
        ims = loops.imagine(models, [d.reshape(starts, -1) for d in deters], [s.reshape(starts, -1) for s in stochs],
                            acts, zs, sample, noise=noise)
    results = []
    for model, deter, stoch, prior, r_p, im in zip(models, deters, stochs, priors, roles_p, ims):
        if im is not None:
            deter = th.cat([deter.unsqueeze(0), im["deter"].reshape(k - 1, T - 1, M, -1)], 0)
            stoch = th.cat([stoch.unsqueeze(0), im["stoch"].reshape(k - 1, T - 1, M, -1)], 0)
            prior = th.cat([prior.unsqueeze(0), im["prior"].reshape((k - 1, T - 1, M) + prior.shape[-2:])], 0)
        else:
            deter, stoch, prior = deter.unsqueeze(0), stoch.unsqueeze(0), prior.unsqueeze(0)
        # deter [k, T-1, M, D], stoch [k, T-1, M, SC], prior [k, T-1, M, S, C]
        # o_{t+j} is decoded with z_{t+j-1} (never z_{t+j}, which is computed from o_{t+j} itself).
        dec_roles = None if r_p is None else th.stack([window(r_p, j - 1) for j in range(1, k + 1)], 0)
        results.append(step_errors(model, deter, stoch, prior, dec_roles, targets, with_logp))
    return results

"""R3DM's k-step world-model prediction on the valid rows only (`wm_skip_padding`).

`predict_packed` gives what `world_model.predict.predict` gives, where the reward reads it (the
imagined steps that stay inside their episode), to float rounding and with the same sampled latents:
filtering runs on the packed rows of each stream (accel/packing.py); imagination starts only
where at least two steps remain, ordered by how many remain, so each imagined step runs on a prefix
of them. Every random draw is made at the padded size and then indexed, so both paths draw the same.
"""
from __future__ import annotations

import torch as th

from r3dm_epymarl.modules.precision import compute_dtype
from r3dm_epymarl.modules.sync import host_side
from r3dm_epymarl.world_model.accel.imagine import imagine_many
from r3dm_epymarl.world_model.accel.packing import Packing, to_device
from r3dm_epymarl.world_model.accel.scan import observe_many
from r3dm_epymarl.world_model.distributions import symlog
from r3dm_epymarl.world_model.predict import step_errors
from r3dm_epymarl.world_model.rssm import imagination_noise


def _starts(packing: Packing, k: int):
    """The imagination starts that take at least two steps, longest first.

    Returns (flat start indices t * M + s in the [T-1, M] grid, on the host, sorted by steps left
    (descending, stable), widths: starts still imagining at steps j = 2, 3, .. up to the last step any
    start reaches, at most k)."""
    T, M = packing.T, packing.M
    with host_side("padding-free imagination: its starts, from the host's episode lengths"):
        t = th.arange(T - 1).unsqueeze(1)  # [T-1, 1]
        left = (packing.lengths_host.unsqueeze(0) - 1 - t).clamp(max=k)  # [T-1, M]: steps t+1.. that exist
        flat = th.nonzero(left.reshape(-1) >= 2).squeeze(1)  # CPU tensors: no device sync
        steps_left, order = left.reshape(-1)[flat].sort(descending=True, stable=True)
        # non-increasing; steps no start reaches (k longer than every episode left) are not run at all
        widths = tuple(w for w in (int((steps_left >= j).sum()) for j in range(2, k + 1)) if w > 0)
        return flat[order], widths


def predict_packed(models, obs: th.Tensor, actions: th.Tensor, roles_list, k: int, packing: Packing,
                   sample: bool, with_logp: bool = True):
    """obs [T, M, O], actions [T, M, A], roles [T, M, R] or None per model -> per model
    (err [k, T-1, M], logp [k, T-1, M] or None) as `predict.predict`, zero where a step leaves its episode."""
    T, M, _ = obs.shape
    device = obs.device
    obs_sl = symlog(obs)
    outs = observe_many(models, obs, actions, roles_list, sample=sample, obs_symlog=obs_sl, packing=packing)
    w0 = packing.widths[0]
    # j = 1: the filtered h_{t+1} and prior_{t+1} of the rows of steps >= 1; start t = step - 1.
    flat1 = packing.rows[w0:]  # flat padded index (t + 1) * M + s
    start1 = flat1 - M  # flat start index t * M + s
    S = models[0].stoch
    flat_obs = obs_sl.reshape(T * M, -1)
    flat_roles = [None if r is None else r.reshape(T * M, -1) for r in roles_list]
    firsts = []
    for model, out in zip(models, outs):
        prior = out["prior"][w0:]  # [P1, S, C]
        noise = None
        if sample:  # the padded path's draw: one uniform per latent of every [T-1, M] slot
            noise = model.filter_noise(T - 1, M, device, prior.dtype).reshape(-1, S, 1)[start1]
        firsts.append((out["deter"][w0:], model.latent(prior.flatten(-2), sample, noise), prior))
    ims = [None] * len(models)
    pad = lambda x: th.cat([x, x.new_zeros((k * M,) + x.shape[1:])], 0)  # [(T + k) * M, ..]  # noqa: E731
    widths = ()
    # the padded call's uniforms, for all k - 1 steps (reached or not): each start takes its own row's
    noise = (imagination_noise(models, k - 1, (T - 1) * M, device, compute_dtype(device.type, actions.dtype))
             if sample and k > 1 else None)
    if k > 1:
        starts_host, widths = _starts(packing, k)
        if widths:
            starts = to_device(starts_host, device)
            # the row of each start among the j = 1 rows
            with host_side("padding-free imagination: the first row of each start, on the host"):
                row_of = th.full((T * M,), -1, dtype=th.long)
                row_of[packing.rows_host[w0:]] = th.arange(len(packing.rows_host) - w0)
                first_rows = row_of[starts_host + M]
            first_rows = to_device(first_rows, device)
            flat_act = pad(actions.reshape(T * M, -1))
            roles_p = [None if r is None else pad(r) for r in flat_roles]
            at = lambda x, j: x[starts + j * M]  # x at step t + j of each start  # noqa: E731
            steps = range(2, 2 + len(widths))  # the imagined steps some start reaches (k at most)
            acts = th.stack([at(flat_act, j - 1) for j in steps], 0)  # [len(widths), Ms, A]
            zs = [None if r is None else th.stack([at(r, j - 1) for j in steps], 0) for r in roles_p]
            ims = imagine_many(models, [d[first_rows] for d, _, _ in firsts], [s[first_rows] for _, s, _ in firsts],
                               acts, zs, sample=sample, noise=noise, widths=widths, draw_rows=starts)
    results = []
    padded_obs = pad(flat_obs) if ims[0] is not None else None  # targets o_{t+j}, j >= 2
    for g, (model, (deter, stoch, prior), roles, im) in enumerate(zip(models, firsts, flat_roles, ims)):
        # j = 1: o_{t+1} decoded with z_t; target symlog o_{t+1}.
        parts = [(0, start1, deter, stoch, prior, None if roles is None else roles[start1], flat_obs[flat1])]
        offset = 0
        for j, w in zip(range(2, k + 1), widths if im is not None else ()):
            # j: o_{t+j} decoded with z_{t+j-1}, from the imagined state of the first w starts
            rows, idx = slice(offset, offset + w), starts[:w]
            offset += w
            parts.append((j - 1, idx, im["deter"][rows], im["stoch"][rows], im["prior"][rows],
                          None if roles is None else roles_p[g][idx + (j - 1) * M], padded_obs[idx + j * M]))
        err = obs.new_zeros((k, (T - 1) * M), dtype=th.promote_types(obs.dtype, th.float32))
        logp = th.zeros_like(err) if with_logp else None
        for j, idx, d, s_, p, z, target in parts:
            e, lp = step_errors(model, d, s_, p, z, target, with_logp)
            err[j].index_copy_(0, idx, e.to(err.dtype))
            if with_logp:
                logp[j].index_copy_(0, idx, lp.to(err.dtype))
        results.append((err.view(k, T - 1, M), None if logp is None else logp.view(k, T - 1, M)))
    return results

"""A DreamerV3-style recurrent state-space model over observations (no reward or continue heads).

Shapes: time-major. T steps, M independent streams (e.g. B * N agent streams; the model is shared
across agents and sees no agent id), O obs features, A actions, R role features (0 = no role input),
D deterministic units, S categoricals of C classes (SC = S * C flattened stochastic state), H hidden.

Time convention (t = 0..T-1):
    h_t  = GRU(h_{t-1}, in([s_{t-1}, a_{t-1}, z_{t-1}]))     (h_{-1} = tanh(learned), s_{-1} = prior mode
                                                             of h_{-1}, a_{-1} = 0, z_{-1} = 0)
    prior_t     = prior_head(h_t)
    posterior_t = post_head([h_t, embed(symlog o_t)]),  s_t ~ posterior_t
    o_hat_t     = decoder([h_t, s_t, z_{t-1}])               (in symlog space)

The role enters the decoder one step late, as in the published code: z_t = f_r(f_e(o_<=t)) is
computed from o_t itself, so a decoder that saw z_t when reconstructing o_t would read its target
(on i.i.d. noise observations the role model's error then fell to 3% of the agnostic model's).

This module is the one definition of the recurrence: `observe`, `imagine` and `loss` run it step by
step with autograd (`wm_fused: false` trains and computes the reward through them). The linear layers
that see [s, a, z] and [h, embed] are split by input so that the parts that do not depend on the
recurrence (a, z, embed) are computed once for all steps before the loop.

The accelerator (world_model/accel/: several models in one loop, a hand-written backward, padding
skipped) reads the model only through its public methods and `scan_weights()` / `prior_weights()`, and
is held to this module's values, sampled latents and gradients by tests. It draws its random numbers
through `filter_noise` and `imagination_noise`, as this module does, so both draw the same latents.
"""
from __future__ import annotations

from typing import NamedTuple

import torch as th
from torch import nn
from torch.nn import functional as F

from r3dm_epymarl.modules.precision import at_least_fp32
from r3dm_epymarl.world_model.distributions import (
    kl_losses, normalised_log_probs, straight_through, straight_through_sample, symlog, unimix_probs,
)


def previous(x: th.Tensor) -> th.Tensor:
    """x [T, M, ..] -> [x_{-1} = 0, x_0, ..., x_{T-2}]: the value of the step before, time-major."""
    return th.cat([th.zeros_like(x[:1]), x[:-1]], 0)


def imagination_noise(models, steps: int, starts: int, device, dtype) -> th.Tensor:
    """The uniforms of `steps` sampled imagination steps from `starts` states, for each model:
    [G, steps, starts, S, 1], drawn step by step, both models at each step (the draw order of the
    published per-step loop). Every path that imagines with samples draws through here."""
    S = models[0].stoch
    return th.stack([th.rand((len(models), starts, S, 1), device=device, dtype=dtype) for _ in range(steps)], 1)


class ScanWeights(NamedTuple):
    """One model's recurrence parameters in row-vector form (x @ W), for an accelerated loop
    (`RSSM.scan_weights`; stacked over G models they gain a leading [G] dimension)."""

    W_s: th.Tensor  # [SC, H] input layer, latent part (in_stoch)
    W_x: th.Tensor  # [H, 3D] GRU Linear, input part, gates reordered [reset, update, candidate]
    W_h: th.Tensor  # [D, 3D] GRU Linear, recurrent part
    W_pd: th.Tensor  # [D, H] posterior's first layer, h part (post_deter)
    W_po: th.Tensor  # [H, SC] posterior logits (post_out)
    b_po: th.Tensor  # [1, SC]
    g_in: th.Tensor  # [1, H] LayerNorm of the input layer: weight, bias
    b_in: th.Tensor
    g_c: th.Tensor  # [1, 3D] the cell's LayerNorm, gate order as W_x; its bias includes the update bias
    b_c: th.Tensor
    g_p: th.Tensor  # [1, H] the posterior's LayerNorm
    b_p: th.Tensor


class PriorWeights(NamedTuple):
    """The prior head (Linear, LayerNorm, SiLU, Linear) in row-vector form (`RSSM.prior_weights`)."""

    W1: th.Tensor  # [D, H] (no bias: the LayerNorm has one)
    g1: th.Tensor  # [1, H]
    b1: th.Tensor  # [1, H]
    W2: th.Tensor  # [H, SC]
    b2: th.Tensor  # [1, SC]


def _gate_order(x: th.Tensor) -> th.Tensor:
    """[reset, candidate, update] blocks along dim 0 -> [reset, update, candidate]."""
    reset, cand, update = x.chunk(3, 0)
    return th.cat([reset, update, cand], 0)


# The published world models' LayerNorm epsilon (DreamerV3's; PyTorch's default is 1e-5). At a fresh
# initial state some inputs have a variance of the same order, so the value changes sampled latents.
NORM_EPS = 1e-3


def norm(width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, eps=NORM_EPS)


def mlp(in_dim: int, hidden: int, layers: int = 2, out_dim: int | None = None) -> nn.Sequential:
    """`layers` x [Linear (no bias: the LayerNorm after it has one), LayerNorm, SiLU] with `hidden` units,
    then an optional Linear (with bias) to out_dim."""
    modules, dim = [], in_dim
    for _ in range(layers):
        modules += [nn.Linear(dim, hidden, bias=False), norm(hidden), nn.SiLU()]
        dim = hidden
    if out_dim is not None:
        modules.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*modules)


@th.no_grad()
def trunc_normal_init(linears: list[nn.Linear], fan_in: int | None = None) -> None:
    """DreamerV3's initialisation of a hidden Linear (published `tools.weight_init`): a normal of std
    sqrt(1 / fan_avg) / 0.8796 truncated at 2 std (0.8796 is the std of a unit normal cut at 2), zero
    bias. `linears` are the column blocks of ONE published Linear split by input (x W = x_1 W_1 + ...):
    its fan-in is their summed in_features (or `fan_in`)."""
    fan_in = sum(lin.in_features for lin in linears) if fan_in is None else fan_in
    std = (2.0 / (fan_in + linears[0].out_features)) ** 0.5 / 0.87962566103423978
    for lin in linears:
        nn.init.trunc_normal_(lin.weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)
        if lin.bias is not None:
            lin.bias.zero_()


@th.no_grad()
def uniform_init(linear: nn.Linear, scale: float = 1.0) -> None:
    """DreamerV3's initialisation of an output head (published `tools.uniform_weight_init(scale)`):
    uniform in +-sqrt(3 scale / fan_avg), zero bias."""
    limit = (3.0 * scale / ((linear.in_features + linear.out_features) / 2.0)) ** 0.5
    nn.init.uniform_(linear.weight, -limit, limit)
    if linear.bias is not None:
        linear.bias.zero_()


def init_mlp(net: nn.Sequential, out_scale: float = 1.0) -> None:
    """trunc_normal_init on each hidden Linear of an `mlp`, uniform_init on its output Linear
    (LayerNorms keep weight 1, bias 0)."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    has_out = not isinstance(net[-1], nn.SiLU)
    for lin in linears[:-1] if has_out else linears:
        trunc_normal_init([lin])
    if has_out:
        uniform_init(linears[-1], out_scale)


class LayerNormGRUCell(nn.Module):
    """DreamerV3's GRU: one Linear on [x, h] -> 3D, LayerNorm, then reset / candidate / update gates."""

    def __init__(self, input_dim: int, deter: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(input_dim + deter, 3 * deter, bias=False)  # LayerNorm supplies the bias
        self.norm = norm(3 * deter)
        self.update_bias = update_bias

    def forward(self, x: th.Tensor, h: th.Tensor) -> th.Tensor:
        """x [M, in], h [M, D] -> h' [M, D]."""
        return self.gates(self.linear(th.cat([x, h], -1)), h)

    def gates(self, parts: th.Tensor, h: th.Tensor) -> th.Tensor:
        """parts [M, 3D] = linear([x, h]) (before the norm), h [M, D] -> h' [M, D]."""
        reset, cand, update = self.norm(parts).chunk(3, -1)
        reset = th.sigmoid(reset)
        cand = th.tanh(reset * cand)
        update = th.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, role_dim: int = 0, hidden: int = 128, deter: int = 128,
                 stoch: int = 16, classes: int = 16, unimix: float = 0.01, free_bits: float = 1.0,
                 dyn_scale: float = 0.5, rep_scale: float = 0.1):
        super().__init__()
        self.obs_dim, self.act_dim, self.role_dim, self.hidden = obs_dim, act_dim, role_dim, hidden
        self.deter, self.stoch, self.classes = deter, stoch, classes
        self.unimix, self.free_bits = unimix, free_bits
        self.dyn_scale, self.rep_scale = dyn_scale, rep_scale
        sc = stoch * classes

        self.encoder = mlp(obs_dim, hidden)  # symlog(o) [.., O] -> embed [.., H]
        # Sequence-model input Linear([s, a, z]) split into its s part (in the loop) and a, z part (outside).
        # As every Linear that feeds a LayerNorm here (published), neither part has a bias.
        self.in_stoch = nn.Linear(sc, hidden, bias=False)
        self.in_other = nn.Linear(act_dim + role_dim, hidden, bias=False)
        self.in_norm = norm(hidden)
        self.cell = LayerNormGRUCell(hidden, deter)
        self.h_init = nn.Parameter(th.zeros(deter))  # h_{-1} = tanh(h_init)
        self.prior_head = mlp(deter, hidden, layers=1, out_dim=sc)  # h [.., D] -> logits [.., SC]
        # Posterior MLP on [h, embed], first Linear split into its h part (in the loop) and embed part.
        self.post_deter = nn.Linear(deter, hidden, bias=False)
        self.post_embed = nn.Linear(hidden, hidden, bias=False)
        self.post_norm = norm(hidden)
        self.post_out = nn.Linear(hidden, sc)
        self.decoder = mlp(deter + sc + role_dim, hidden, out_dim=obs_dim)  # [h, s, z] -> symlog o_hat
        self.reset_parameters()

    @th.no_grad()
    def reset_parameters(self) -> None:
        """The published (DreamerV3) initialisation: truncated normals for the hidden Linears, uniform
        for the two latent heads and the decoder's output (scale 1), zero biases, LayerNorm (1, 0)."""
        init_mlp(self.encoder)
        trunc_normal_init([self.in_stoch, self.in_other])
        trunc_normal_init([self.cell.linear])
        init_mlp(self.prior_head)
        trunc_normal_init([self.post_deter, self.post_embed])
        uniform_init(self.post_out)
        init_mlp(self.decoder)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        self.h_init.zero_()

    # --- pieces (the accelerator calls these too) --------------------------------------------------
    def latent(self, logits: th.Tensor, sample: bool, noise: th.Tensor | None = None) -> th.Tensor:
        """logits [.., SC] -> one-hot latent [.., SC]: a straight-through sample, or the mode.

        A sample (inverse CDF on the uniforms `noise` [.., S, 1], drawn here when None) carries the
        gradient of the unimix probabilities; the mode (the argmax of the logits, which unimix keeps)
        that of the normalised unimix LOG-probabilities, as the published `OneHotDist.mode`
        (one_hot + logits - logits.detach()), only when gradients are being recorded.
        """
        logits = logits.unflatten(-1, (self.stoch, self.classes))  # [.., S, C]
        if sample:
            return straight_through_sample(unimix_probs(logits, self.unimix), noise).flatten(-2)
        mode = th.zeros_like(logits).scatter_(-1, logits.max(-1, keepdim=True).indices, 1.0)  # first maximum
        if th.is_grad_enabled() and logits.requires_grad:
            mode = straight_through(normalised_log_probs(logits, self.unimix), mode)
        return mode.flatten(-2)

    def initial(self, m: int) -> tuple[th.Tensor, th.Tensor]:
        """The learned initial state (h_{-1} [M, D], s_{-1} [M, SC]) = (tanh(w), prior mode of it)."""
        h = th.tanh(self.h_init)
        s = self.latent(self.prior_head(h), sample=False)
        return h.expand(m, -1), s.expand(m, -1)

    def embed(self, obs_symlog: th.Tensor) -> th.Tensor:
        """symlog(obs) [.., O] -> the observation's part of the posterior's first layer [.., H]."""
        return self.post_embed(self.encoder(obs_symlog))

    def step_inputs(self, actions: th.Tensor, roles: th.Tensor | None) -> th.Tensor:
        """actions [.., A], roles [.., R] or None -> the a, z part of the input layer [.., H]."""
        x = actions if self.role_dim == 0 else th.cat([actions, roles], -1)
        return self.in_other(x)

    def seq_step(self, h: th.Tensor, s: th.Tensor, other: th.Tensor) -> th.Tensor:
        """h [M, D], s [M, SC], other [M, H] (from step_inputs) -> next h [M, D]."""
        x = F.silu(self.in_norm(self.in_stoch(s) + other))
        return self.cell(x, h)

    def posterior(self, h: th.Tensor, embed: th.Tensor) -> th.Tensor:
        """h [M, D], embed [M, H] (from `embed`) -> posterior logits [M, SC]."""
        return self.post_out(F.silu(self.post_norm(self.post_deter(h) + embed)))

    def prior(self, deter: th.Tensor) -> th.Tensor:
        """deter [.., D] -> prior logits [.., S, C]."""
        return self.prior_head(deter).unflatten(-1, (self.stoch, self.classes))

    def decode(self, deter: th.Tensor, stoch: th.Tensor, roles: th.Tensor | None = None) -> th.Tensor:
        """deter [.., D], stoch [.., SC], roles [.., R] -> predicted symlog(obs) [.., O].

        roles are the ones of the step BEFORE the decoded observation (z_{t-1} for o_t).

        The first Linear on [h, s, z] is applied block by block (h W_h + s W_s + z W_z + b), which
        spares the concatenated copy of the inputs."""
        parts = [deter, stoch] if self.role_dim == 0 else [deter, stoch, roles]
        first = self.decoder[0]
        blocks = first.weight.split([p.shape[-1] for p in parts], dim=1)
        x = F.linear(parts[0], blocks[0], first.bias)
        for part, block in zip(parts[1:], blocks[1:]):
            x = x + F.linear(part, block)
        return self.decoder[1:](x)

    def filter_noise(self, T: int, M: int, device, dtype) -> th.Tensor:
        """The uniforms of T sampled filtering steps of M streams [T, M, S, 1], drawn at once."""
        return th.rand((T, M, self.stoch, 1), device=device, dtype=dtype)

    # --- the recurrence: filtering, imagination, loss (autograd through every step) --------------------
    def filter_step(self, h: th.Tensor, s: th.Tensor, other: th.Tensor, embed: th.Tensor,
                    noise: th.Tensor | None = None):
        """One filtering step: h [M, D], s [M, SC], other [M, H] (a, z part), embed [M, H] (`embed` of the
        observation), noise [M, S, 1] (a sample) or None (the mode) -> (h', s' [M, SC], posterior logits [M, SC])."""
        h = self.seq_step(h, s, other)
        logits = self.posterior(h, embed)
        return h, self.latent(logits, noise is not None, noise), logits

    def observe(self, obs: th.Tensor, actions: th.Tensor, roles: th.Tensor | None = None,
                sample: bool = True, noise: th.Tensor | None = None, step=None) -> dict[str, th.Tensor]:
        """Filter a sequence.

        obs [T, M, O] (raw), actions [T, M, A] (a_t = action taken at t), roles [T, M, R] (z_t) or None;
        step t's sequence model reads a_{t-1} and z_{t-1}.
        sample: straight-through posterior samples (training) from the uniforms `noise` [T, M, S, 1]
        (drawn here, all at once, when None), or the posterior mode (deterministic).
        step: a replacement for `filter_step` (e.g. a compiled one).
        Returns deter [T, M, D], stoch [T, M, SC], post [T, M, S, C] logits, prior [T, M, S, C] logits.
        """
        T, M, _ = obs.shape
        other = self.step_inputs(previous(actions), None if roles is None else previous(roles))  # [T, M, H]
        embed = self.embed(symlog(obs))  # [T, M, H]
        if sample and noise is None:
            noise = self.filter_noise(T, M, obs.device, obs.dtype)
        h, s = self.initial(M)
        deters, stochs, posts = [], [], []
        for t in range(T):
            h, s, logits = (step or self.filter_step)(h, s, other[t], embed[t], noise[t] if sample else None)
            deters.append(h), stochs.append(s), posts.append(logits)
        deter = th.stack(deters)
        return {"deter": deter, "stoch": th.stack(stochs), "prior": self.prior(deter),
                "post": th.stack(posts).unflatten(-1, (self.stoch, self.classes))}

    def imagine(self, deter: th.Tensor, stoch: th.Tensor, actions: th.Tensor, roles: th.Tensor | None = None,
                sample: bool = False, noise: th.Tensor | None = None) -> dict[str, th.Tensor]:
        """Roll the prior forward from a state with given actions (open loop).

        deter [M, D], stoch [M, SC]: the state to start from; actions [K, M, A], roles [K, M, R]:
        the sequence-model inputs of each step (the action taken, and z, at the step being left;
        the same z decodes the step's observation). sample=False uses the prior mode (deterministic);
        sample=True draws each latent from the prior, with the uniforms noise [K, M, S, 1] when given.
        Returns deter [K, M, D], stoch [K, M, SC], prior [K, M, S, C] logits (the prior that produced stoch).
        """
        other = self.step_inputs(actions, roles)  # [K, M, H]
        h, s = deter, stoch
        deters, stochs, priors = [], [], []
        for j in range(actions.shape[0]):
            h = self.seq_step(h, s, other[j])
            logits = self.prior_head(h)  # [M, SC]
            s = self.latent(logits, sample, None if noise is None else noise[j])
            deters.append(h)
            stochs.append(s)
            priors.append(logits)
        return {
            "deter": th.stack(deters, 0),
            "stoch": th.stack(stochs, 0),
            "prior": th.stack(priors, 0).unflatten(-1, (self.stoch, self.classes)),
        }

    def loss(self, obs: th.Tensor, actions: th.Tensor, roles: th.Tensor | None = None,
             valid: th.Tensor | None = None, step=None) -> dict[str, th.Tensor]:
        """obs [T, M, O], actions [T, M, A], roles [T, M, R] or None, valid [T, M] (1 = observation exists).

        Per step: recon = sum_O (o_hat - symlog o)^2, dyn / rep = KL terms clipped at free bits;
        total = recon + dyn_scale * dyn + rep_scale * rep. Each returned scalar is averaged over valid steps.
        """
        out = self.observe(obs, actions, roles, sample=True, step=step)
        target = symlog(obs)
        valid = th.ones(obs.shape[:-1], device=obs.device, dtype=obs.dtype) if valid is None else valid
        mean = lambda x: (x * valid).sum() / valid.sum().clamp(min=1.0)  # noqa: E731
        pred = self.decode(out["deter"], out["stoch"], None if roles is None else previous(roles))  # z_{t-1} decodes o_t
        recon = F.mse_loss(at_least_fp32(pred), target, reduction="none").sum(-1)  # [T, M]
        dyn, rep = kl_losses(at_least_fp32(out["post"]), at_least_fp32(out["prior"]), self.free_bits, self.unimix)
        total = recon + self.dyn_scale * dyn + self.rep_scale * rep
        return {"recon": mean(recon), "dyn": mean(dyn), "rep": mean(rep), "total": mean(total)}

    # --- the interface of an accelerated loop -----------------------------------------------------
    def scan_weights(self) -> ScanWeights:
        """The filtering recurrence's parameters (differentiable: gradients reach this model's layers)."""
        H = self.hidden
        w = _gate_order(self.cell.linear.weight)  # [3D, H + D]
        r_bias, c_bias, u_bias = self.cell.norm.bias.chunk(3, 0)
        row = lambda x: x.unsqueeze(0)  # noqa: E731
        return ScanWeights(
            self.in_stoch.weight.t(), w[:, :H].t(), w[:, H:].t(), self.post_deter.weight.t(), self.post_out.weight.t(),
            row(self.post_out.bias), row(self.in_norm.weight), row(self.in_norm.bias),
            row(_gate_order(self.cell.norm.weight)), row(th.cat([r_bias, u_bias + self.cell.update_bias, c_bias], 0)),
            row(self.post_norm.weight), row(self.post_norm.bias))

    def prior_weights(self) -> PriorWeights:
        first, norm_layer, out = self.prior_head[0], self.prior_head[1], self.prior_head[3]
        return PriorWeights(first.weight.t(), norm_layer.weight.unsqueeze(0), norm_layer.bias.unsqueeze(0),
                            out.weight.t(), out.bias.unsqueeze(0))

    def norm_eps(self) -> tuple[float, float, float, float]:
        """The LayerNorm epsilons of the input layer, the cell, the posterior and the prior head."""
        return self.in_norm.eps, self.cell.norm.eps, self.post_norm.eps, self.prior_head[1].eps

    def sizes(self) -> tuple:
        """What models run together in one accelerated loop must share."""
        return self.deter, self.hidden, self.stoch, self.classes, self.unimix, self.norm_eps()

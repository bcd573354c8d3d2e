"""Batched K-means for role clustering (ACORM / R3DM).

The published code clusters the N agent embeddings of every active (episode, step) with one
scikit-learn `KMeans` fit each: about 2,000 fits per learner update, dominated by Python and
sklearn overhead on tiny problems (N = 2..27 points, D = 128). Here all G groups are clustered at
once in torch on the input's device, as a few batched matmuls per Lloyd iteration.

Algorithm (per group, all groups in parallel):
  * Centre the points per group (translation does not change the clustering; it makes the
    squared-distance expansion ||x||^2 - 2 x.c + ||c||^2 far less prone to float32 cancellation).
  * Greedy k-means++ initialisation (as scikit-learn): the first centre is a uniform random point;
    each next centre is the best of `2 + floor(ln k)` candidates sampled with probability
    proportional to D^2 (squared distance to the closest centre chosen so far), "best" meaning the
    lowest resulting potential. N is small, so the seeding reads one [G, N, N] distance matrix.
    If every D^2 is zero (duplicate points) the candidates are drawn uniformly: never NaN.
  * Lloyd iterations: assign to the nearest centroid, move each centroid to its points' mean.
    EMPTY CLUSTERS KEEP THEIR PREVIOUS CENTROID (simple, deterministic, never NaN). With k-means++
    seeds at data points a cluster can only start empty when points are duplicated, and
    re-seeding would then only duplicate a centroid again.
  * `n_init` restarts are batched too: the R runs of a group are stored as R*K centroids of that
    group ([G, R*K, D]), so x is never copied; each run takes the argmin over its own K block.
    The run with the lowest inertia is kept per group.
  * Labels are canonical: per group, clusters are numbered in order of first appearance (the
    cluster of point 0 is 0, the next new cluster is 1, ...); centroids are permuted to match and
    clusters left empty take the last labels.

Convergence: stop once no centroid of any group moved by more than `tol` (Euclidean distance;
one host sync per iteration, through `host_read`), else after `n_iter` iterations. Unlike scikit-learn, `tol` is
absolute, not relative to the data variance; once the assignments stop changing the centroids
stop moving exactly, so the default only matters for pathological ties.

The reported inertia is recomputed from direct differences x_n - c (not the expansion), like
sklearn's inertia_. Maths run in float32 (float64 if the input is float64); inputs must be
finite. Results are deterministic for a given generator seed on a given device.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from r3dm_epymarl.modules.sync import host_read


class KMeansResult(NamedTuple):
    labels: torch.Tensor  # [G, N] int64 in [0, K), canonical order (first appearance)
    centroids: torch.Tensor  # [G, K, D], dtype of x (float32 for non-float input)
    inertia: torch.Tensor  # [G] float32 (float64 for float64 x): sum of squared distances
    #                        of the points to their centroid


def batched_kmeans(x: torch.Tensor, k: int, n_iter: int = 20, n_init: int = 1,
                   generator: torch.Generator | None = None, tol: float = 1e-6) -> KMeansResult:
    """Cluster each group of `x` ([G, N, D]: G groups of N points) into `k` clusters.

    `generator` (a torch.Generator on x's device; None = torch's global RNG) makes the result
    deterministic. `n_init` independent k-means++ starts are run per group and the one with the
    lowest inertia kept. Raises ValueError for bad shapes/arguments, including k > N.
    """
    _check_args(x, k, n_iter, n_init, generator, tol)
    with torch.no_grad():
        return _batched_kmeans(x.detach(), k, n_iter, n_init, generator, tol)


def _check_args(x, k, n_iter, n_init, generator, tol):
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"batched_kmeans expects a tensor of shape [G, N, D], got {shape}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k-means needs an integer number of clusters k >= 1, got k={k!r}: "
                         "set role_clusters to at least 1")
    n = x.shape[1]
    if k > n:
        raise ValueError(f"k-means with k={k} clusters needs at least {k} points per group, "
                         f"got N={n}: lower role_clusters")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be an integer >= 0, got {n_iter!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"n_init must be an integer >= 1, got {n_init!r}")
    if not (tol >= 0):  # also rejects NaN
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device} but x is on {x.device}: "
                         "pass a torch.Generator created on x's device")


def _batched_kmeans(x, k, n_iter, n_init, generator, tol):
    out_dtype = x.dtype if x.is_floating_point() else torch.float32
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(dtype).contiguous()  # [G, N, D]
    g, n, d = xf.shape
    r = n_init
    if g == 0:
        return KMeansResult(torch.empty(0, n, dtype=torch.long, device=x.device),
                            torch.empty(0, k, d, dtype=out_dtype, device=x.device),
                            torch.empty(0, dtype=dtype, device=x.device))

    mean = xf.mean(dim=1, keepdim=True)  # [G, 1, D]
    xc = xf - mean  # [G, N, D], centred (a copy: x itself is never modified)
    xc_sq = _sq_norm(xc)  # [G, N]

    seeds = _kmeans_plus_plus(xc, xc_sq, k, r, generator)  # [G, R, K] point indices
    c = _gather_rows(xc, seeds.view(g, r * k))  # [G, R*K, D]: R runs side by side

    # The loop is memory-bound on CPU, and fresh large tensors cost page faults there, so it
    # writes into buffers allocated once: distances, one-hot and the next centroids.
    dist = torch.empty(g, n, r * k, dtype=dtype, device=x.device)  # [G, N, R*K]
    onehot = torch.empty_like(dist)  # [G, N, R*K]
    c_next = torch.empty_like(c)  # [G, R*K, D]
    for _ in range(n_iter):
        labels = _sq_dists(xc, xc_sq, c, out=dist).view(g, n, r, k).argmin(-1)  # [G, N, R]
        onehot.zero_().view(g, n, r, k).scatter_(3, labels.unsqueeze(-1), 1.0)
        counts = onehot.sum(1).unsqueeze(-1)  # [G, R*K, 1]
        empty = (counts == 0).to(dtype)  # [G, R*K, 1]
        # new = per-cluster sum / count; an empty cluster keeps its previous centroid (its sum
        # is 0, so adding the old centroid back gives exactly it; never 0/0).
        torch.bmm(onehot.transpose(1, 2), xc, out=c_next)
        c_next.div_(counts.clamp(min=1)).addcmul_(c, empty)
        shift = torch.linalg.vector_norm(c.sub_(c_next), dim=-1).max()  # c is free after this
        c, c_next = c_next, c
        if host_read(shift, "k-means stops once no centroid moved by more than tol") <= tol:  # the only sync
            break

    # Final assignment so labels and centroids agree; pick the best run per group.
    min_d, labels = _sq_dists(xc, xc_sq, c, out=dist).view(g, n, r, k).min(-1)  # [G, N, R]
    best = min_d.sum(1).argmin(-1)  # [G]
    labels = labels.gather(2, best.view(g, 1, 1).expand(g, n, 1)).squeeze(2)  # [G, N]
    cents = _gather_rows(c.view(g, r, k * d), best.unsqueeze(1)).view(g, k, d)  # [G, K, D]
    labels, cents = _canonical(labels, cents)

    # Exact inertia from direct differences (not the expansion, which loses precision for tight
    # clusters far from the origin), as sklearn's inertia_. In place on xc, which is free now:
    # xc - onehot @ cents is x_n minus its centroid (a matmul with a one-hot row is exact).
    hot = _one_hot(labels, k, dtype)  # [G, N, K]
    inertia = torch.linalg.vector_norm(xc.baddbmm_(hot, cents, alpha=-1.0), dim=(1, 2)).square()
    cents = cents + mean  # [G, K, D], back to the input's frame
    return KMeansResult(labels, cents.to(out_dtype), inertia)


def _kmeans_plus_plus(x, x_sq, k, r, generator):
    """Greedy k-means++ seeds for R runs per group: point indices [G, R, K]."""
    g, n, _ = x.shape
    n_trials = 2 + int(math.log(k))  # scikit-learn's choice
    # N is small, so all distances the seeding needs come from one [G, N, N] matrix; the loop
    # below then never touches the D dimension.
    pair = _sq_dists(x, x_sq, x)  # [G, N, N]
    pair.diagonal(dim1=1, dim2=2).zero_()  # a point is exactly 0 from itself
    seeds = torch.empty(g, r, k, dtype=torch.long, device=x.device)
    first = torch.randint(n, (g, r), generator=generator, device=x.device)  # [G, R]
    seeds[:, :, 0] = first
    # closest: squared distance of every point to its nearest chosen centre, [G, R, N]
    closest = _gather_rows(pair, first)
    for j in range(1, k):
        w = closest.reshape(g * r, n)
        # All D^2 zero (all points duplicates of chosen centres): sample uniformly instead.
        w = torch.where(w.sum(-1, keepdim=True) > 0, w, torch.ones_like(w))
        cand = torch.multinomial(w, n_trials, replacement=True, generator=generator)
        cand = cand.view(g, r * n_trials)  # [G, R*L]
        cd = _gather_rows(pair, cand).view(g, r, n_trials, n)  # [G, R, L, N]
        trial = torch.minimum(closest.unsqueeze(2), cd)  # [G, R, L, N]
        pick = trial.sum(-1).argmin(-1)  # [G, R]: candidate with the lowest potential
        closest = trial.gather(2, pick.view(g, r, 1, 1).expand(g, r, 1, n)).squeeze(2)
        seeds[:, :, j] = cand.view(g, r, n_trials).gather(2, pick.unsqueeze(-1)).squeeze(-1)
    return seeds


def _sq_dists(x, x_sq, c, out=None):
    """Squared distances [G, N, M] between x [G, N, D] (norms x_sq [G, N]) and c [G, M, D]."""
    dist = torch.baddbmm(x_sq.unsqueeze(-1), x, c.transpose(1, 2), alpha=-2.0, out=out)
    dist += _sq_norm(c).unsqueeze(1)
    return dist.clamp_(min=0.0)  # rounding can make the expansion slightly negative


def _gather_rows(t, idx):
    """t [G, N, D], idx [G, M] -> t[g, idx[g, m]] as [G, M, D].

    A flat index_select: on CPU it is several times faster than gather with an expanded index.
    """
    g, n, d = t.shape
    flat = idx + n * torch.arange(g, device=idx.device).unsqueeze(1)  # [G, M]
    return t.reshape(g * n, d).index_select(0, flat.reshape(-1)).view(g, idx.shape[1], d)


def _sq_norm(t):
    """Squared Euclidean norms over the last dim (one fused reduction, no [.., D] temporary)."""
    return torch.linalg.vector_norm(t, dim=-1).square()


def _one_hot(labels, k, dtype):
    """labels [...] -> float one-hot [..., K] (a matmul turns it into per-cluster sums)."""
    return (labels.unsqueeze(-1) == torch.arange(k, device=labels.device)).to(dtype)


def _canonical(labels, cents):
    """Renumber clusters per group by first appearance; labels [G, N], centroids [G, K, D]."""
    g, n = labels.shape
    k = cents.shape[1]
    pos = torch.arange(n, device=labels.device).view(1, n, 1)
    # First point index of each cluster; empty clusters get N + old label (they sort last).
    first = torch.where(_one_hot(labels, k, torch.bool), pos, n + k)  # [G, N, K]
    first = torch.minimum(first.min(1).values, n + torch.arange(k, device=labels.device))
    order = first.argsort(dim=1)  # [G, K]: new label j <- old label order[:, j]
    rank = order.argsort(dim=1)  # [G, K]: old label -> new label
    new_labels = rank.gather(1, labels)
    new_cents = _gather_rows(cents, order)
    return new_labels, new_cents

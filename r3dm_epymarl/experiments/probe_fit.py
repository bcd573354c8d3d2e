"""The probe's estimator: how much an agent's role adds to predicting its future, on held-out episodes.

A sample is one agent at one step t of one episode, with
- h: what the agent has just seen (its observation o_t and previous action a_{t-1}, the features the
  agent network itself reads), the same features for every algorithm;
- z: its role embedding z_t; e: its trajectory embedding e_t (the role network's summary of its whole
  history, from which z_t is computed);
- the future: its next k actions a_t .. a_{t+k-1} and next k observations o_{t+1} .. o_{t+k}.

For each input set, (h), (h, z) and (h, e), a fresh MLP of the same size is fit from scratch on the
training episodes (early stopping on a share of them) and scored on held-out episodes: cross-entropy in
nats per predicted action; for observations (standardised per dimension on the training episodes) the
mean squared error. The role's gain is CE(h) - CE(h, z) in nats (> 0: the role says more about the
future than what the agent has just seen); for observations MSE(h, z) / MSE(h) (< 1: the role helps),
also given as nats per predicted step under each predictor's maximum-likelihood isotropic Gaussian on
the held-out episodes, (O / 2) log(MSE(h) / MSE(h, z)) for O observation dimensions. z is a function of the whole history, so the gain
estimates I(z; future | h) from below, as far as the predictors fit. e gives the reference: how much
of the history's predictive information the role keeps. 95% CIs: a bootstrap over held-out episodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INPUT_SETS = {"h": ("h",), "hz": ("h", "z"), "he": ("h", "e")}


@dataclass
class Samples:
    h: np.ndarray  # [S, H] history features
    z: np.ndarray  # [S, R] role embeddings
    e: np.ndarray  # [S, E] trajectory embeddings
    actions: np.ndarray  # [S, k] int: a_t .. a_{t+k-1}
    obs: np.ndarray  # [S, k, O]: o_{t+1} .. o_{t+k}
    episode: np.ndarray  # [S] int: which episode the sample comes from
    n_actions: int

    def __len__(self) -> int:
        return len(self.episode)

    def inputs(self, input_set: str) -> np.ndarray:
        return np.concatenate([getattr(self, name) for name in INPUT_SETS[input_set]], axis=1).astype(np.float32)


@dataclass
class FitOptions:
    held_out: float = 0.3  # share of episodes scored, never trained on
    validation: float = 0.15  # share of the training episodes for early stopping
    hidden: int = 128  # units in each of the predictors' two hidden layers
    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation loss before stopping
    batch_size: int = 256
    lr: float = 1e-3
    reps: int = 2000  # bootstrap resamples of the held-out episodes
    seed: int = 0


@dataclass
class Estimate:
    value: float
    lo: float
    hi: float
    replicates: np.ndarray = field(repr=False)  # [reps] bootstrap values, for differences between probes

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


def split_episodes(episodes: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask over samples: True for the samples of a random `share` of the episodes (>= 1)."""
    unique = np.unique(episodes)
    if len(unique) < 2:
        raise ValueError("the probe needs at least 2 episodes to hold some out")
    chosen = rng.choice(unique, size=min(len(unique) - 1, max(1, round(share * len(unique)))), replace=False)
    return np.isin(episodes, chosen)


def _mlp(n_in: int, n_out: int, hidden: int):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale from the training rows; a constant feature is only centred."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 1e-6, std, 1.0)


def _per_sample_loss(kind: str, out, target, n_actions: int):
    """[S] loss per sample: actions, mean cross-entropy over the k steps; obs, mean over the k steps of
    the squared error summed over dimensions."""
    import torch.nn.functional as F

    if kind == "actions":
        k = target.shape[1]
        logits = out.view(-1, k, n_actions)
        return F.cross_entropy(logits.reshape(-1, n_actions), target.reshape(-1), reduction="none").view(-1, k).mean(1)
    return ((out.view(target.shape) - target) ** 2).sum(-1).mean(1)


def fit_and_score(x: np.ndarray, target: np.ndarray, kind: str, train: np.ndarray, episodes: np.ndarray,
                  n_actions: int, options: FitOptions) -> tuple[np.ndarray, np.ndarray]:
    """Fit one predictor on the `train` rows and return its prediction on every row (logits [S, k*A] for
    actions, standardised means [S, k*O] for observations) and the validation rows (a share of the
    training episodes it stopped on, never fitted). The same seed for every input set."""
    import torch as th

    generator = th.Generator().manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    fit_rows = np.flatnonzero(train)
    val_mask = split_episodes(episodes[fit_rows], options.validation, rng)
    fit, val = fit_rows[~val_mask], fit_rows[val_mask]

    mean, scale = _standardiser(x[fit])
    xs = th.from_numpy(((x - mean) / scale).astype(np.float32))
    ys = th.from_numpy(target.astype(np.int64 if kind == "actions" else np.float32))
    n_out = target.shape[1] * (n_actions if kind == "actions" else target.shape[2])
    th.manual_seed(options.seed)  # the initial weights: one stream, the same for every input set
    model = _mlp(xs.shape[1], n_out, options.hidden)
    optimiser = th.optim.Adam(model.parameters(), lr=options.lr)

    def validation_loss() -> float:
        with th.no_grad():
            return float(_per_sample_loss(kind, model(xs[val]), ys[val], n_actions).mean())

    best, best_state, stale = validation_loss(), {k: v.clone() for k, v in model.state_dict().items()}, 0
    fit_t = th.from_numpy(fit)
    for _ in range(options.max_epochs):
        order = fit_t[th.randperm(len(fit_t), generator=generator)]
        for start in range(0, len(order), options.batch_size):
            rows = order[start:start + options.batch_size]
            loss = _per_sample_loss(kind, model(xs[rows]), ys[rows], n_actions).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        current = validation_loss()
        if current < best - 1e-6:
            best, best_state, stale = current, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            stale += 1
            if stale >= options.patience:
                break
    model.load_state_dict(best_state)
    with th.no_grad():
        return model(xs).numpy(), val


def _cross_entropy(logits: np.ndarray, actions: np.ndarray, n_actions: int) -> np.ndarray:
    """[S] mean over the k steps of -log p(a) under softmax(logits). logits [S, k*A], actions [S, k]."""
    S, k = actions.shape
    logits = logits.reshape(S, k, n_actions).astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_norm = (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[..., 0]
    chosen = np.take_along_axis(logits, actions[..., None], -1)[..., 0]
    return (log_norm - chosen).mean(1)


def _squared_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[S] squared error summed over the (standardised) dimensions, mean over the k steps."""
    return ((pred.reshape(target.shape) - target) ** 2).sum(-1).mean(1)


def gaussian_gain(ratio: Estimate, dims: int) -> Estimate:
    """The MSE ratio as nats per predicted step under the maximum-likelihood isotropic Gaussian of each
    predictor on the held-out rows: (dims / 2) * log(MSE(h) / MSE(h, r)). (Variances fitted on other
    episodes than those scored were tried first: a few nearly constant dimensions, predicted to 1e-2 on
    the validation episodes and off by a unit on a held-out one, then set the sign of the gain.)"""
    to_nats = lambda r: 0.5 * dims * np.log(1.0 / np.asarray(r))  # noqa: E731  decreasing in r
    return Estimate(float(to_nats(ratio.value)), float(to_nats(ratio.hi)), float(to_nats(ratio.lo)),
                    to_nats(ratio.replicates))


def _bootstrap(numerator: np.ndarray, denominator: np.ndarray, episodes: np.ndarray, reps: int,
               rng: np.random.Generator) -> Estimate:
    """sum(numerator) / sum(denominator) over the rows, with a 95% CI from resampling whole episodes."""
    unique, index = np.unique(episodes, return_inverse=True)
    num = np.bincount(index, weights=numerator, minlength=len(unique))
    den = np.bincount(index, weights=denominator, minlength=len(unique))
    draws = rng.integers(0, len(unique), size=(reps, len(unique)))
    replicates = num[draws].sum(1) / den[draws].sum(1)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return Estimate(float(num.sum() / den.sum()), float(lo), float(hi), replicates)


def role_gains(samples: Samples, options: FitOptions | None = None) -> dict:
    """The held-out scores of the three predictors and the role's (and e's) gains, with 95% CIs.

    Returns {"actions": {...}, "obs": {...}, "episodes": {"train": n, "held_out": n}, "samples": {...}}, where
    "actions" has nats_h / nats_hz / nats_he (held-out cross-entropy per predicted action) and gain_z /
    gain_e (Estimate, nats), "obs" has mse_ratio_z / mse_ratio_e and gain_z / gain_e (Gaussian nats per
    predicted step) as Estimates."""
    options = options or FitOptions()
    rng = np.random.default_rng(options.seed)
    held_out = split_episodes(samples.episode, options.held_out, rng)
    train = ~held_out
    ones = np.ones(int(held_out.sum()))
    episodes = samples.episode[held_out]

    obs_mean, obs_scale = _standardiser(samples.obs[train].reshape(-1, samples.obs.shape[-1]))
    obs = ((samples.obs - obs_mean) / obs_scale).astype(np.float32)  # [S, k, O]

    ce, se = {}, {}
    for name in INPUT_SETS:
        x = samples.inputs(name)
        logits, _ = fit_and_score(x, samples.actions, "actions", train, samples.episode, samples.n_actions, options)
        ce[name] = _cross_entropy(logits, samples.actions, samples.n_actions)
        pred, _ = fit_and_score(x, obs, "obs", train, samples.episode, samples.n_actions, options)
        se[name] = _squared_error(pred, obs)

    boot = lambda num, den: _bootstrap(num, den, episodes, options.reps, np.random.default_rng(options.seed + 1))  # noqa: E731
    result = {
        "actions": {f"nats_{n}": float(ce[n][held_out].mean()) for n in INPUT_SETS},
        "obs": {f"mse_{n}": float(se[n][held_out].mean()) for n in INPUT_SETS},
        "episodes": {"train": int(len(np.unique(samples.episode[train]))), "held_out": int(len(np.unique(episodes)))},
        "samples": {"train": int(train.sum()), "held_out": int(held_out.sum())},
    }
    for role in ("z", "e"):
        hr = "h" + role
        result["actions"][f"gain_{role}"] = boot(ce["h"][held_out] - ce[hr][held_out], ones)
        result["obs"][f"mse_ratio_{role}"] = boot(se[hr][held_out], se["h"][held_out])
        result["obs"][f"gain_{role}"] = gaussian_gain(result["obs"][f"mse_ratio_{role}"], obs.shape[-1])
    return result


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a - b for estimates from independent data (two checkpoints' own episodes), CI from the paired
    differences of their bootstrap replicates (each resampled independently)."""
    replicates = a.replicates - b.replicates
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return Estimate(a.value - b.value, float(lo), float(hi), replicates)


def alike_starts(obs0: np.ndarray, labels0: np.ndarray, actions: np.ndarray, quantile: float = 0.1) -> dict:
    """Agents that start an episode alike: do they get different roles, and do their futures then differ?

    obs0 [Ep, N, O] first observations, labels0 [Ep, N] role clusters at t=0, actions [Ep, N, K] their
    first K actions (-1 past an episode's end). Pairs of agents of one episode are "alike" when the
    distance of their standardised first observations is within the `quantile` of all such pairs. For
    alike pairs: the share with different roles, and the share of the first K steps in which their
    actions differ, for pairs with different roles and with the same role."""
    Ep, N, _ = obs0.shape
    mean, scale = _standardiser(obs0.reshape(-1, obs0.shape[-1]))
    x = (obs0 - mean) / scale
    i, j = np.triu_indices(N, 1)
    distance = np.linalg.norm(x[:, i] - x[:, j], axis=-1)  # [Ep, pairs]
    threshold = np.quantile(distance, quantile)
    alike = distance <= threshold
    different = labels0[:, i] != labels0[:, j]
    both = (actions[:, i] >= 0) & (actions[:, j] >= 0)  # [Ep, pairs, K]
    disagree = ((actions[:, i] != actions[:, j]) & both).sum(-1) / np.maximum(both.sum(-1), 1)

    def share(mask):
        return float(disagree[mask].mean()) if mask.any() else float("nan")

    return {"pairs": int(alike.sum()), "threshold": float(threshold), "quantile": quantile,
            "different_roles": float(different[alike].mean()) if alike.any() else float("nan"),
            "action_disagreement_different_roles": share(alike & different),
            "action_disagreement_same_role": share(alike & ~different),
            "steps": int(actions.shape[-1])}

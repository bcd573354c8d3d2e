"""NaN / inf detection that stays on the device between log steps.

Every update marks, for each watched value, whether it is finite and keeps on the device the first
t_env at which it was not; the host reads that once, at the next log step. An update that does not
log then never waits for the device (on a GPU a per-term `bool(isfinite(x).all())` stalls the stream).
"""
from __future__ import annotations

import torch as th


class DivergenceWatch:
    def __init__(self):
        # names -> [len(names)] int64 on the device: the first t_env each was NaN or inf, -1 = never so far
        self._first: dict[tuple[str, ...], th.Tensor] = {}
        self.checked_t: int | None = None  # t_env of the last check (None: no check yet)

    def watch(self, values: dict, t_env: int) -> None:
        """values: name -> tensor (any shape) or float; no host sync."""
        if not values:
            return
        names = tuple(values)
        tensors = [v for v in values.values() if isinstance(v, th.Tensor)]
        device = tensors[0].device if tensors else None
        finite = th.stack([th.isfinite(v).all() if isinstance(v, th.Tensor)
                           else th.tensor(v == v and abs(v) != float("inf"), device=device)
                           for v in values.values()])
        first = self._first.get(names)
        if first is None:
            first = th.full(finite.shape, -1, dtype=th.long, device=finite.device)
        self._first[names] = th.where(first.ge(0) | finite, first, t_env)

    def check(self, t_env: int) -> tuple[str, int, int | None] | None:
        """At a log step (one host read): (name, the t_env it first became NaN or inf, the previous check's
        t_env) of the earliest diverged value, in watch order on ties; None when all stayed finite."""
        since, self.checked_t = self.checked_t, t_env
        if not self._first:
            return None
        names = [name for group in self._first for name in group]
        firsts = th.cat(list(self._first.values())).tolist()
        diverged = [(t, i) for i, t in enumerate(firsts) if t >= 0]
        if not diverged:
            return None
        t, i = min(diverged)
        return names[i], t, since

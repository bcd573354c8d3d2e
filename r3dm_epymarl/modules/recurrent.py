"""Recurrence over time with everything non-recurrent taken out of the loop.

Per-step Python loops are kernel-launch bound; the only work left inside the loop is the GRU cell
itself. Pre- and post-GRU layers run once over all [T * M] rows.
"""
import torch as th
from torch import nn


def unroll_cell(cell: nn.GRUCell, inputs: th.Tensor, h0: th.Tensor) -> th.Tensor:
    """inputs [T, M, in], h0 [M, H] -> hidden states [T, M, H] (h_t after consuming input t)."""
    hs, h = [], h0
    for x_t in inputs.unbind(0):
        h = cell(x_t, h)
        hs.append(h)
    return th.stack(hs, 0)


def last_actions(actions_onehot: th.Tensor) -> th.Tensor:
    """[B, T, N, A] actions taken at t -> the action taken at t-1 (zeros at t = 0)."""
    return th.cat([th.zeros_like(actions_onehot[:, :1]), actions_onehot[:, :-1]], dim=1)

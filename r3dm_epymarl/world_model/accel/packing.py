"""Padding-free row layouts for time-major agent streams (the world models' `wm_skip_padding`).

A host pads a batch of episodes to its longest one, so a third or more of the [T, M] slots of the
world models' streams (M = B * N, one per agent of an episode) hold no observation. A `Packing` lists
only the valid slots, time-major: the streams are ordered by length, longest first (stable), and step
t holds the first `widths[t]` of them, the ones still running (as torch's PackedSequence does). A scan
then runs step t over a prefix of its state, and the per-row layers run on valid rows only.

The dense packing (every stream full length, `Packing.dense`) is the padded layout itself, flattened:
packing and unpacking are reshapes, and the scans take the very same steps as before.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch as th

from r3dm_epymarl.modules.sync import host_side


def to_device(x: th.Tensor, device) -> th.Tensor:
    """A host-built index tensor onto `device` without waiting for the device: on a GPU through pinned
    memory and a non-blocking copy (a plain copy from pageable memory synchronises the stream)."""
    device = th.device(device)
    if device.type == "cpu":
        return x
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


@dataclass(frozen=True)
class Packing:
    T: int  # steps of the padded layout
    M: int  # streams of the padded layout
    widths: tuple[int, ...]  # rows of step t: streams still running at t (non-increasing, all >= 1)
    rows: th.Tensor | None  # [P] index of each packed row in the flattened padded [T * M]; None = dense
    rows_host: th.Tensor | None = None  # `rows` on the CPU, for index arithmetic without a device sync
    lengths_host: th.Tensor | None = None  # [M] each stream's valid steps, on the CPU

    @classmethod
    def dense(cls, T: int, M: int) -> "Packing":
        return cls(T, M, (M,) * T, None)

    @classmethod
    def from_lengths(cls, lengths: list[int], T: int, device) -> "Packing":
        """lengths: each stream's number of valid steps (host ints; 0 <= length <= T), in stream order.

        Built on the host from host values, so it costs no device sync; the index tensors are then
        copied to `device`."""
        M = len(lengths)
        if M == 0 or max(lengths) < 1:
            raise ValueError("a packing needs at least one stream with a valid step")
        order = sorted(range(M), key=lambda i: -lengths[i])  # stable: ties keep stream order
        with host_side("packing: the packed rows' indices, from the host's episode lengths"):
            sorted_lengths = th.tensor([lengths[i] for i in order])  # [M], non-increasing
            steps = int(sorted_lengths[0])
            widths = tuple(int(w) for w in (th.arange(steps).unsqueeze(1) < sorted_lengths.unsqueeze(0)).sum(1))
            order_t = th.tensor(order)
            grid = th.arange(steps).unsqueeze(1) * M + order_t.unsqueeze(0)  # [steps, M] flat padded index
            live = th.arange(steps).unsqueeze(1) < sorted_lengths.unsqueeze(0)  # [steps, M]
            rows = grid[live]  # time-major, within a step in `order` (CPU tensors: no device sync)
            lengths_host = th.tensor(lengths)
        return cls(T, M, widths, to_device(rows, device), rows, lengths_host)

    @property
    def order(self) -> th.Tensor | None:
        """[M] stream ids (host), longest first: step 0 holds every stream; None when dense (identity)."""
        if self.rows_host is None:
            return None
        with host_side("packing: stream order, on the host"):
            return self.rows_host[:self.widths[0]]

    @property
    def size(self) -> int:
        """P, the number of packed rows."""
        return sum(self.widths)

    def pack(self, x: th.Tensor) -> th.Tensor:
        """x [T, M, ...] (padded, time-major) -> [P, ...] (valid rows, packed order)."""
        flat = x.reshape((self.T * self.M,) + x.shape[2:])
        return flat if self.rows is None else flat.index_select(0, self.rows)

    def unpack(self, y: th.Tensor) -> th.Tensor:
        """y [P, ...] -> [T, M, ...] with zeros in the padding."""
        if self.rows is None:
            return y.reshape((self.T, self.M) + y.shape[1:])
        out = y.new_zeros((self.T * self.M,) + y.shape[1:])
        return out.index_copy_(0, self.rows, y).view((self.T, self.M) + y.shape[1:])

    def previous_rows(self) -> th.Tensor | slice:
        """For the rows of steps 1.. (packed order), the packed row of the same stream one step earlier:
        an index tensor [P - widths[0]], or a slice when dense."""
        if self.rows is None:
            return slice(0, self.size - self.M)
        starts, start = [], 0
        for w in self.widths:
            starts.append(start)
            start += w
        device = self.rows.device
        if len(self.widths) == 1:
            return th.zeros(0, dtype=th.long, device=device)
        with host_side("packing: the previous step's rows, from the host's widths"):
            rows = th.cat([th.arange(starts[t - 1], starts[t - 1] + w) for t, w in enumerate(self.widths) if t > 0])
        return to_device(rows, device)

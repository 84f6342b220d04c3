"""Which rows of Z this process holds, and the collectives that join row blocks.

On one process a `RowLayout` holds all N rows and its collectives are identities. Under
an initialized `torch.distributed` process group (gloo on CPU, NCCL on GPUs) each rank
passes its own rows of Z; the full Z is their concatenation in rank order. Small things
(Z itself, N-vectors, (N, p) blocks) are replicated on every rank, so every rank runs the
same float64 bookkeeping on the same numbers and returns the same value; only the O(N^2)
kernel work is split by rows.

The collectives run on the default group, or on the group set by `process_group(group)`
for the duration of a block: the monitor passes its own group there, whose waits are
bounded, so the solver's functions need no group argument. A gloo group takes CPU tensors
only: blocks on another device go through the CPU and come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch

# The group of the solver's collectives in the current context; None is the default group.
# A context variable, so a background thread (which starts with a fresh context) never
# inherits a group set by the main thread.
_GROUP: ContextVar[Any] = ContextVar("dse_callback_solver_group", default=None)


@contextmanager
def process_group(group) -> Iterator[None]:
    """Run the row-sharded solver's collectives on `group` inside the block.

    Args:
        group: a torch.distributed process group holding every rank (ranks are its own
            ranks, rank 0 sends the copies); None for the default group.

    Example:
        >>> with process_group(None):
        ...     single_process_layout(3).sum(torch.ones(2))
        tensor([1., 1.])
    """
    token = _GROUP.set(group)
    try:
        yield
    finally:
        _GROUP.reset(token)


def _wire(tensor: torch.Tensor, group) -> torch.Tensor:
    """`tensor` on the device the group's backend sends from: the CPU for gloo."""
    import torch.distributed as dist

    return tensor.cpu() if dist.get_backend(group) == "gloo" else tensor


@dataclass(frozen=True)
class RowLayout:
    """Rows [lo, hi) of N on this process; `counts` holds every rank's row count; `group`
    is the process group of its collectives (None: the default group)."""

    n: int
    lo: int
    hi: int
    counts: tuple[int, ...]
    distributed: bool = False
    group: Any = field(default=None, compare=False, repr=False)

    def gather_rows(self, local: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's (rows, ...) block in rank order: (N, ...) on every rank."""
        if not self.distributed:
            return local
        import torch.distributed as dist

        largest = max(self.counts)
        padded = _wire(local.new_zeros((largest,) + tuple(local.shape[1:])), self.group)
        padded[: local.shape[0]] = local
        blocks = [torch.empty_like(padded) for _ in self.counts]
        dist.all_gather(blocks, padded.contiguous(), group=self.group)
        return torch.cat([block[:count] for block, count in zip(blocks, self.counts)]).to(local.device)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a tensor (a copy; the input is left alone)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        total = _wire(value, self.group).clone()
        dist.all_reduce(total, group=self.group)
        return total.to(value.device)


def single_process_layout(n: int) -> RowLayout:
    return RowLayout(n=n, lo=0, hi=n, counts=(n,))


def _check_group() -> None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "distributed=True needs an initialized torch.distributed default process group "
            "(torch.distributed.init_process_group('gloo' or 'nccl', ...)); got none. "
            "Pass distributed=False to measure this process's rows alone"
        )


def split_layout(n: int) -> RowLayout:
    """Contiguous, nearly equal row blocks of N, one per rank of the current group."""
    import torch.distributed as dist

    _check_group()
    group = _GROUP.get()
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    counts = tuple(n // world + (1 if r < n % world else 0) for r in range(world))
    lo = sum(counts[:rank])
    return RowLayout(n=n, lo=lo, hi=lo + counts[rank], counts=counts, distributed=True, group=group)


def gather_points(local_points: torch.Tensor) -> torch.Tensor:
    """The full Z (N, D), the concatenation of every rank's rows in rank order, on every rank.

    Raises:
        RuntimeError: no initialized default process group.
        ValueError: the ranks' points disagree in D (shown per rank).
    """
    import torch.distributed as dist

    _check_group()
    group = _GROUP.get()
    shape = _wire(torch.tensor(list(local_points.shape), dtype=torch.long, device=local_points.device), group)
    shapes = [torch.empty_like(shape) for _ in range(dist.get_world_size(group))]
    dist.all_gather(shapes, shape, group=group)
    counts = tuple(int(s[0]) for s in shapes)
    dims = [int(s[1]) for s in shapes]
    if len(set(dims)) != 1:
        raise ValueError(
            f"z has a different number of columns D on each rank ({dict(enumerate(dims))} by rank); "
            "with distributed=True every rank must pass rows of the same (N_rank, D) representation"
        )
    layout = RowLayout(n=sum(counts), lo=0, hi=0, counts=counts, distributed=True, group=group)
    return layout.gather_rows(local_points)


def rank_zero_copy(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rank 0's `value` on every rank of the current group (sent through `device`, which
    NCCL needs to be a GPU; through the CPU on a gloo group); returned on `value`'s own device."""
    import torch.distributed as dist

    _check_group()
    group = _GROUP.get()
    sent = _wire(value.to(device), group).contiguous()
    dist.broadcast(sent, src=0, group=group)
    return sent.to(value.device)

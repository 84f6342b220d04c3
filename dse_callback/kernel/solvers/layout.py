"""Which rows of Z this process holds, and the collectives that join row blocks.

On one process a `RowLayout` holds all N rows and its collectives are identities. Under
an initialized `torch.distributed` default process group (gloo on CPU, NCCL on GPUs) each
rank passes its own rows of Z; the full Z is their concatenation in rank order. Small
things (Z itself, N-vectors, (N, p) blocks) are replicated on every rank, so every rank
runs the same float64 bookkeeping on the same numbers and returns the same value; only the
O(N^2) kernel work is split by rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowLayout:
    """Rows [lo, hi) of N on this process; `counts` holds every rank's row count."""

    n: int
    lo: int
    hi: int
    counts: tuple[int, ...]
    distributed: bool = False

    def gather_rows(self, local: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's (rows, ...) block in rank order: (N, ...) on every rank."""
        if not self.distributed:
            return local
        import torch.distributed as dist

        largest = max(self.counts)
        padded = local.new_zeros((largest,) + tuple(local.shape[1:]))
        padded[: local.shape[0]] = local
        blocks = [torch.empty_like(padded) for _ in self.counts]
        dist.all_gather(blocks, padded.contiguous())
        return torch.cat([block[:count] for block, count in zip(blocks, self.counts)])

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a tensor (a copy; the input is left alone)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        total = value.clone()
        dist.all_reduce(total)
        return total


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
    """Contiguous, nearly equal row blocks of N, one per rank of the default group."""
    import torch.distributed as dist

    _check_group()
    world, rank = dist.get_world_size(), dist.get_rank()
    counts = tuple(n // world + (1 if r < n % world else 0) for r in range(world))
    lo = sum(counts[:rank])
    return RowLayout(n=n, lo=lo, hi=lo + counts[rank], counts=counts, distributed=True)


def gather_points(local_points: torch.Tensor) -> torch.Tensor:
    """The full Z (N, D), the concatenation of every rank's rows in rank order, on every rank.

    Raises:
        RuntimeError: no initialized default process group.
        ValueError: the ranks' points disagree in D (shown per rank).
    """
    import torch.distributed as dist

    _check_group()
    shape = torch.tensor(list(local_points.shape), dtype=torch.long, device=local_points.device)
    shapes = [torch.empty_like(shape) for _ in range(dist.get_world_size())]
    dist.all_gather(shapes, shape)
    counts = tuple(int(s[0]) for s in shapes)
    dims = [int(s[1]) for s in shapes]
    if len(set(dims)) != 1:
        raise ValueError(
            f"z has a different number of columns D on each rank ({dict(enumerate(dims))} by rank); "
            "with distributed=True every rank must pass rows of the same (N_rank, D) representation"
        )
    layout = RowLayout(n=sum(counts), lo=0, hi=0, counts=counts, distributed=True)
    return layout.gather_rows(local_points)


def rank_zero_copy(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rank 0's `value` on every rank of the default group (sent through `device`, which
    NCCL needs to be a GPU); returned on `value`'s own device."""
    import torch.distributed as dist

    _check_group()
    sent = value.to(device).contiguous()
    dist.broadcast(sent, src=0)
    return sent.to(value.device)

"""Splitting a probe across P ranks, and putting the pieces back together in probe order.

The flow of a sharded probe, on every rank r of P:

1. `shard_range(N, r, P)`: rank r forwards a contiguous share of the probe's N rows
   (shares differ by at most one row, so N need not be divisible by P);
2. `padded_batches(...)`: every rank makes the same number of forward calls,
   `forward_batch_count(N, P, batch_size)`, repeating a batch whose outputs are dropped
   (FSDP and DeepSpeed gather parameters collectively inside each forward call);
3. `gather_rows(...)`: the shares are padded to equal length, all-gathered and trimmed, so
   every rank holds all N representations in probe order (no sampler padding inside);
4. `assign_work(costs, P)`: the metric work items (layer x metric) get an owner rank each;
5. `combine_owned(...)`: each rank fills in the values it owns, one small all-gather of a
   float tensor, and every rank ends with the same values.

The collective is passed in (`all_gather(tensor) -> (P, *tensor.shape)`, as Lightning's
`strategy.all_gather` returns it; `torch_all_gather()` adapts torch.distributed), so this
module imports no Lightning and runs under real gloo processes in the tests.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from ._validation import check_positive_int

AllGather = Callable[[torch.Tensor], torch.Tensor]


def _check_rank(rank: int, world_size: int) -> None:
    check_positive_int(world_size, "world_size")
    check_positive_int(rank, "rank", minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")


def shard_range(n: int, rank: int, world_size: int) -> range:
    """The contiguous rows [start, stop) of an N-row probe that rank `rank` of P forwards.

    The first N mod P ranks take ceil(N / P) rows, the others floor(N / P).

    Example:
        >>> [shard_range(7, r, 3) for r in range(3)]
        [range(0, 3), range(3, 5), range(5, 7)]
    """
    check_positive_int(n, "n", minimum=0)
    _check_rank(rank, world_size)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def forward_batch_count(n: int, world_size: int, batch_size: int) -> int:
    """The number of forward calls every rank makes: that of the largest share, at least 1.

    Example:
        >>> forward_batch_count(9, 2, 2)  # shares of 5 and 4 rows: 3 batches each
        3
    """
    check_positive_int(n, "n", minimum=0)
    check_positive_int(world_size, "world_size")
    check_positive_int(batch_size, "batch_size")
    return max(1, math.ceil(math.ceil(n / world_size) / batch_size))


def padded_batches(
    batches: Iterable[Any], n_batches: int, filler: Callable[[], Any] | None = None
) -> Iterator[tuple[Any, bool]]:
    """(batch, is_padding) pairs: the real batches, then repeats until there are `n_batches`.

    The repeat is the last real batch, or `filler()` for a rank whose share is empty; its
    outputs must be dropped by the caller.

    Example:
        >>> [(b, pad) for b, pad in padded_batches(["a", "b"], 3)]
        [('a', False), ('b', False), ('b', True)]
    """
    check_positive_int(n_batches, "n_batches")
    last, count = None, 0
    for batch in batches:
        count += 1
        if count > n_batches:
            raise ValueError(f"n_batches must cover every real batch; got {n_batches} but there are more")
        last = batch
        yield batch, False
    if count < n_batches and last is None:
        if filler is None:
            raise ValueError("this rank's share is empty: pass filler= to make its padding forward calls")
        last = filler()
    for _ in range(n_batches - count):
        yield last, True


def gather_rows(local: torch.Tensor, n: int, rank: int, world_size: int, all_gather: AllGather) -> torch.Tensor:
    """All N rows in probe order on every rank, from each rank's contiguous share.

    Shares are padded to ceil(N / P) rows (all_gather needs one shape everywhere), gathered
    to (P, ceil(N / P), ...) and trimmed back to each rank's length before concatenating.

    Args:
        local: (n_r, ...) this rank's rows, n_r = len(shard_range(n, rank, world_size)).
        n: the probe size N.
        rank, world_size: this process's place.
        all_gather: tensor (M, ...) -> (P, M, ...); not called when world_size is 1.

    Returns:
        (N, ...) on local's device.

    Example:
        >>> gather_rows(torch.arange(3), 3, 0, 1, all_gather=None)
        tensor([0, 1, 2])
    """
    _check_rank(rank, world_size)
    share = shard_range(n, rank, world_size)
    if len(local) != len(share):
        raise ValueError(f"local must have the {len(share)} rows of rank {rank}'s share of {n}, got {len(local)}")
    if world_size == 1:
        return local
    longest = math.ceil(n / world_size)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: len(local)] = local
    gathered = all_gather(padded)
    if tuple(gathered.shape) != (world_size, *padded.shape):
        raise ValueError(f"all_gather must return shape {(world_size, *padded.shape)}, got {tuple(gathered.shape)}")
    return torch.cat([gathered[r, : len(shard_range(n, r, world_size))] for r in range(world_size)])


def assign_work(costs: Sequence[float], world_size: int) -> list[int]:
    """An owner rank per work item: costliest first, each to the least loaded rank.

    Deterministic (ties go to the lower rank, then the earlier item), so every rank computes
    the same assignment without communicating.

    Example:
        >>> assign_work([4.0, 1.0, 1.0, 2.0], 2)  # loads 4 and 1 + 1 + 2
        [0, 1, 1, 1]
    """
    check_positive_int(world_size, "world_size")
    if any(not math.isfinite(c) or c < 0 for c in costs):
        raise ValueError(f"costs must be finite and >= 0, got {list(costs)}")
    loads = [0.0] * world_size
    owners = [0] * len(costs)
    for item in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        owners[item] = rank
        loads[rank] += costs[item]
    return owners


def combine_owned(
    values: torch.Tensor, owners: Sequence[int], rank: int, world_size: int, all_gather: AllGather
) -> torch.Tensor:
    """Every item's value from its owner rank, the same on every rank.

    Each rank passes (W, ...) values in which only its own items' rows matter (the others
    may hold anything, NaN included); one all-gather to (P, W, ...) then picks row i of
    rank owners[i]. Picking, not summing, keeps NaN and Inf results exact.

    Example:
        >>> combine_owned(torch.tensor([1.5, float("nan")]), [0, 0], 0, 1, all_gather=None)
        tensor([1.5000,    nan])
    """
    _check_rank(rank, world_size)
    if len(owners) != len(values) or any(not 0 <= o < world_size for o in owners):
        raise ValueError(f"owners must give a rank in [0, {world_size}) for each of {len(values)} items, got {list(owners)}")
    if world_size == 1:
        return values
    gathered = all_gather(values)
    return gathered[torch.as_tensor(list(owners), device=gathered.device), torch.arange(len(values), device=gathered.device)]


def torch_all_gather(group=None) -> AllGather:
    """An `all_gather` over torch.distributed (initialized), stacking to (P, ...)."""
    import torch.distributed as dist

    def all_gather(tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.stack(parts)

    return all_gather

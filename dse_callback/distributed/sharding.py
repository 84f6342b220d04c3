"""Putting a sharded probe back together in probe order, and spreading the metric work.

After each rank r of P forwarded its share (`probe.shares`):

1. `gather_rows(...)`: the shares are padded to equal length, all-gathered and trimmed, so
   every rank holds all N representations in probe order (no sampler padding inside);
2. `assign_work(costs, P)`: the metric work items (layer x metric) get an owner rank each;
3. `combine_owned(...)`: each rank fills in the values it owns, one small all-gather of a
   float tensor, and every rank ends with the same values.

The collective is passed in (`all_gather(tensor) -> (P, *tensor.shape)`, as Lightning's
`strategy.all_gather` returns it; `torch_all_gather()` adapts torch.distributed), so this
module imports no Lightning and runs under real gloo processes in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..kernel.validation import check_positive_int
from ..probe.shares import check_rank, shard_range

AllGather = Callable[[torch.Tensor], torch.Tensor]


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
    check_rank(rank, world_size)
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
    check_rank(rank, world_size)
    if len(owners) != len(values) or any(not 0 <= o < world_size for o in owners):
        raise ValueError(
            f"owners must give a rank in [0, {world_size}) for each of {len(values)} items, got {list(owners)}"
        )
    if world_size == 1:
        return values
    gathered = all_gather(values)
    return gathered[
        torch.as_tensor(list(owners), device=gathered.device), torch.arange(len(values), device=gathered.device)
    ]


def torch_all_gather(group=None) -> AllGather:
    """An `all_gather` over torch.distributed (initialized) on `group` (None: the default
    group), stacking to (P, ...) on the tensor's device; a gloo group's data goes through
    the CPU (gloo gathers CPU tensors only)."""
    import torch.distributed as dist

    def all_gather(tensor: torch.Tensor) -> torch.Tensor:
        sent = tensor.cpu() if dist.get_backend(group) == "gloo" else tensor
        parts = [torch.empty_like(sent) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, sent.contiguous(), group=group)
        return torch.stack(parts).to(tensor.device)

    return all_gather

"""Splitting a probe of N rows into P contiguous shares, with equal forward calls.

1. `shard_range(N, r, P)`: rank r forwards a contiguous share of the probe's rows (shares
   differ by at most one row, so N need not be divisible by P);
2. `forward_batch_count(N, P, batch_size)`: every rank makes that many forward calls,
   and `padded_batches` repeats a batch (marked as padding, its outputs dropped) until a
   shorter share has made as many (FSDP and DeepSpeed gather parameters collectively
   inside each forward call).

Pure bookkeeping, no collectives: `distributed.sharding` puts the shares back together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..kernel.validation import check_positive_int


def check_rank(rank: int, world_size: int) -> None:
    """Raise unless 0 <= rank < world_size."""
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
    check_rank(rank, world_size)
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

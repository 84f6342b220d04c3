"""The Gaussian bandwidth sigma: a number, or a value resolved from the points.

A fixed sigma (the paper's setting) is used as it is; "median" resolves to the median
distance between distinct points, from at most 2,048 rows (one GEMM, no N x N matrix).
"""

from __future__ import annotations

import torch

from ..validation import check_positive
from .distances import centered_with_squared_norms, squared_distances_from_rows

# Rows of the distance matrix used to estimate the median distance for sigma="median".
_MEDIAN_ROWS = 2048


def median_bandwidth(points: torch.Tensor) -> float:
    """A scale-aware sigma: the median distance between distinct points of Z (N, D).

    Estimated from the distances of at most 2,048 evenly spaced rows to all N points (one
    GEMM, no N x N matrix), so it is deterministic and costs far less than the eigensolve.
    Falls back to 1.0 when all points coincide.

    Example:
        >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0], [7.0]]))
        3.5
    """
    n = points.shape[0]
    rows = torch.linspace(0, n - 1, steps=min(n, _MEDIAN_ROWS), device=points.device).long()
    block = squared_distances_from_rows(*centered_with_squared_norms(points), rows)
    off_diagonal = torch.ones_like(block, dtype=torch.bool)
    off_diagonal[torch.arange(len(rows), device=points.device), rows] = False
    values = block[off_diagonal]
    # The two middle order statistics, averaged: the median of an even count.
    lower = float(values.kthvalue((values.numel() + 1) // 2).values.sqrt())
    upper = float(values.kthvalue(values.numel() // 2 + 1).values.sqrt())
    median = (lower + upper) / 2
    return median if median > 0 else 1.0


def resolve_sigma(sigma: float | str) -> float | str:
    """Validate sigma: a positive number, or "median" for the scale-aware bandwidth."""
    if isinstance(sigma, str):
        if sigma != "median":
            raise ValueError(f'sigma must be a number > 0 or "median", got {sigma!r}')
        return sigma
    return check_positive(sigma, "sigma")


def bandwidth_for(points: torch.Tensor, sigma: float | str) -> float:
    """The numeric bandwidth: `sigma` itself, or the median distance of `points` for "median"."""
    return median_bandwidth(points) if sigma == "median" else float(sigma)

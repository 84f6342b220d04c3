"""The classic Shannon entropy baseline (CSE) of the paper: binned rows, counted.

Each dimension is min-max scaled to [0, 1] and cut into `bins_per_dim` equal bins; CSE is
the entropy (bits) of the counts of distinct binned rows. CSMI, the same in the MI
formula, lives in `mutual_info`.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (doctest examples)
import torch

from .reference.binning import bin_rows
from .validation import as_points, check_positive_int


def entropy_of_rows(codes: torch.Tensor) -> float:
    """Shannon entropy (bits) of the empirical distribution of distinct rows of `codes`."""
    _, counts = torch.unique(codes, dim=0, return_counts=True)
    probabilities = counts.to(torch.float64) / counts.sum()
    return float(-(probabilities * probabilities.log2()).sum())


def classic_shannon_entropy(z, bins_per_dim: int = 2) -> float:
    """Classic Shannon entropy of points Z, the paper's baseline, in bits.

    Each dimension is min-max scaled to [0, 1] and cut into `bins_per_dim` equal bins; CSE
    is the entropy of the counts of distinct binned rows: -sum_r (n_r / N) log2 (n_r / N).
    It lies in [0, log2 N].

    Args:
        z: points, shape (N, D), a tensor or a NumPy array.
        bins_per_dim: bins per dimension, >= 2.

    Returns:
        CSE in bits.

    Example:
        >>> classic_shannon_entropy(np.array([[0.0], [0.1], [0.9], [1.0]]))
        1.0
    """
    points = as_points(z)
    bins_per_dim = check_positive_int(bins_per_dim, "bins_per_dim", minimum=2)
    return entropy_of_rows(bin_rows(points, bins_per_dim))

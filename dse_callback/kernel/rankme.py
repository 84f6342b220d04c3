"""RankMe: the effective rank of a representation from its singular values.

Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the downstream performance of
pretrained self-supervised representations by their rank", ICML 2023. Users compare it
with DSE: both summarize a spectrum, RankMe that of Z itself, DSE that of a diffusion
operator on Z.
"""

from __future__ import annotations

import math

import numpy as np  # noqa: F401  (doctest examples)
import torch

from .validation import as_points

# Garrido et al.'s epsilon: keeps log p finite for zero singular values.
_EPSILON = 1e-7


def rankme_of_singular_values(singular_values: torch.Tensor) -> float:
    """RankMe from singular values sigma_k >= 0 (any order), shape (K,).

    p_k = sigma_k / sum_j sigma_j + eps;  RankMe = exp(-sum_k p_k log p_k), in [1, K].

    Example:
        >>> round(rankme_of_singular_values(torch.ones(4)), 4)
        4.0
    """
    values = singular_values.to(torch.float64)
    total = values.sum()
    if not bool(total > 0):
        return 1.0
    probabilities = values / total + _EPSILON
    return math.exp(float(-(probabilities * probabilities.log()).sum()))


def rankme(z) -> float:
    """RankMe of points Z (N, D): the effective rank of Z, in [1, min(N, D)].

    The entropy, in nats, of Z's normalized singular values, exponentiated. Z is not
    centred, as in Garrido et al. Computed in float64 on Z's device.

    Args:
        z: points, shape (N, D): a tensor or a NumPy array.

    Returns:
        The effective rank (a float).

    Example:
        >>> round(rankme(np.eye(3)), 4)
        3.0
    """
    points = as_points(z).to(torch.float64)
    return rankme_of_singular_values(torch.linalg.svdvals(points))

"""The diffusion operator of Z and its full spectrum, on Z's device.

    G_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)),   A_ij = G_ij / sqrt(deg_i deg_j)

(with per-point scales, G_ij = exp(-|z_i - z_j|^2 / (2 s_i s_j)), under sigma="knn")

A has the eigenvalues of the random-walk operator diag(deg)^-1 G, all in [-1, 1], largest
1. Both public functions validate once and build A in one place (`_operator_of`). A full
spectrum needs every eigenvalue (eigvalsh); an approximate DSE's top eigenvalues are in
`DSEEstimate.top_eigenvalues`.
"""

from __future__ import annotations

import numpy as np
import torch

from .geometry.affinity import affinity_of_points
from .geometry.bandwidth import Bandwidth, ResolvedBandwidth
from .request import operator_request
from .solvers.exact import exact_eigenvalues


def _operator_of(z, sigma, precision, max_samples=None, seed=0, sampler="torch") -> torch.Tensor:
    """A (N, N) of validated, subsampled Z in the working dtype."""
    return affinity_of_points(*operator_request(z, sigma, precision, max_samples, seed, sampler))


def diffusion_operator(
    z, sigma: float | str | Bandwidth | ResolvedBandwidth = 10.0, *, precision: str | None = None
) -> torch.Tensor:
    """The symmetric diffusion operator A of points Z, on Z's device.

    A_ij = G_ij / sqrt(deg_i deg_j) with G_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)).

    Args:
        z: points, shape (N, D), a tensor or a NumPy array.
        sigma: Gaussian bandwidth, as in `diffusion_spectral_entropy` (a number, "median",
            "rms", "knn", a `Bandwidth` or a `ResolvedBandwidth`).
        precision: "float64", "float32", or None for float64 on the CPU and float32 on GPUs.

    Returns:
        Tensor of shape (N, N), symmetric, with eigenvalues in [-1, 1] and largest 1.

    Example:
        >>> a = diffusion_operator(torch.zeros(4, 3))
        >>> torch.allclose(a, torch.full((4, 4), 0.25, dtype=torch.float64))
        True
    """
    return _operator_of(z, sigma, precision)


def diffusion_spectrum(
    z,
    sigma: float | str | Bandwidth | ResolvedBandwidth = 10.0,
    *,
    max_samples: int | None = 10_000,
    seed: int = 0,
    sampler: str = "torch",
    precision: str | None = None,
):
    """Eigenvalues of the diffusion operator of Z, in ascending order.

    A_ij = G_ij / sqrt(deg_i deg_j), G_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)); A has the
    eigenvalues of the random-walk operator diag(deg)^-1 G, all in [-1, 1], largest 1.

    Args:
        z: points, shape (N, D): a tensor (computed on its device) or a NumPy array.
        sigma: Gaussian bandwidth, as in `diffusion_spectral_entropy` (a number, "median",
            "rms", "knn", a `Bandwidth` or a `ResolvedBandwidth`).
        max_samples: above this many rows, a seeded random subset of this size is used
            (None: never subsample).
        seed: seed of the subsample (a private generator; the global RNG is untouched).
        sampler: "torch" or "python_random" (reproduces the `dse-dsmi` reference).
        precision: "float64", "float32", or None (float64 on the CPU, float32 on GPUs).

    Returns:
        Eigenvalues, shape (N,): a tensor on Z's device, or a NumPy array for NumPy input.

    Example:
        >>> values = diffusion_spectrum(np.array([[0.0], [1000.0]]))
        >>> values.tolist()
        [1.0, 1.0]
    """
    affinity = _operator_of(z, sigma, precision, max_samples=max_samples, seed=seed, sampler=sampler)
    values = exact_eigenvalues(affinity).sort().values
    return values.cpu().numpy() if isinstance(z, np.ndarray) else values

"""Eigenvalues of the diffusion operator.

Solvers live in `SOLVERS` by name so that an approximate large-N solver can slot in
beside the exact one: a solver takes symmetric matrices (..., N, N) and returns their
eigenvalues (..., N) in any order.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch

from ._validation import as_points, check_choice, check_max_samples, resolve_dtype
from .diffusion import affinity_of_points, resolve_sigma
from .errors import EigensolverFallbackWarning
from .sampling import SAMPLERS, subsample_rows

# Failures worth a retry: LinAlgError (a RuntimeError), CUDA out-of-memory (also one),
# and NotImplementedError from backends without an eigensolver (MPS).
_RETRYABLE = (RuntimeError, NotImplementedError)


def exact_eigenvalues(matrices: torch.Tensor) -> torch.Tensor:
    """All eigenvalues of symmetric matrices (..., N, N), with fallbacks.

    `torch.linalg.eigvalsh` on CUDA has failed on near-rank-one float32 matrices (a large
    sigma makes the kernel nearly all ones). On failure this retries in float64 on the
    same device, then in float64 on the CPU, warning each time; results come back in the
    input's dtype on the input's device.

    Example:
        >>> exact_eigenvalues(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
        tensor([1., 3.])
    """
    try:
        return torch.linalg.eigvalsh(matrices)
    except _RETRYABLE as first_error:
        failure = first_error
    attempts = []
    if matrices.dtype != torch.float64:
        attempts.append(("float64 on " + str(matrices.device), matrices.device))
    if matrices.device.type != "cpu":
        attempts.append(("float64 on the CPU", torch.device("cpu")))
    for description, device in attempts:
        warnings.warn(
            f"eigvalsh failed on {tuple(matrices.shape)} {matrices.dtype} matrices on "
            f"{matrices.device} ({failure}); retrying in {description}",
            EigensolverFallbackWarning,
            stacklevel=2,
        )
        try:
            values = torch.linalg.eigvalsh(matrices.to(device=device, dtype=torch.float64))
            return values.to(device=matrices.device, dtype=matrices.dtype)
        except _RETRYABLE as error:
            failure = error
    raise failure


SOLVERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"exact": exact_eigenvalues}


def spectrum_of_points(
    points: torch.Tensor, sigma: float | str, dtype: torch.dtype, solver: str = "exact"
) -> tuple[torch.Tensor, float]:
    """Eigenvalues of the diffusion operator of validated points; also the sigma used."""
    affinity, bandwidth = affinity_of_points(points, sigma, dtype)
    return SOLVERS[solver](affinity), bandwidth


def prepare_points(
    z, max_samples: int | None, seed: int, sampler: str
) -> torch.Tensor:
    """Validate Z (N, D) and apply the seeded `max_samples` subsample."""
    points = as_points(z)
    check_choice(sampler, "sampler", SAMPLERS)
    rows = subsample_rows(points.shape[0], check_max_samples(max_samples), seed=seed, sampler=sampler)
    return points if rows is None else points[rows.to(points.device)]


def diffusion_spectrum(
    z,
    sigma: float | str = 10.0,
    *,
    max_samples: int | None = 10_000,
    seed: int = 0,
    sampler: str = "torch",
    precision: str | None = None,
    solver: str = "exact",
):
    """Eigenvalues of the diffusion operator of Z, in ascending order.

    A_ij = G_ij / sqrt(deg_i deg_j), G_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)); A has the
    eigenvalues of the random-walk operator diag(deg)^-1 G, all in [-1, 1], largest 1.

    Args:
        z: points, shape (N, D): a tensor (computed on its device) or a NumPy array.
        sigma: Gaussian bandwidth (> 0), or "median" for the median pairwise distance.
        max_samples: above this many rows, a seeded random subset of this size is used
            (None: never subsample).
        seed: seed of the subsample (a private generator; the global RNG is untouched).
        sampler: "torch" or "python_random" (reproduces the `dse-dsmi` reference).
        precision: "float64", "float32", or None (float64 on the CPU, float32 on GPUs).
        solver: a name in `SOLVERS` ("exact").

    Returns:
        Eigenvalues, shape (N,): a tensor on Z's device, or a NumPy array for NumPy input.

    Example:
        >>> values = diffusion_spectrum(np.array([[0.0], [1000.0]]))
        >>> values.tolist()
        [1.0, 1.0]
    """
    sigma = resolve_sigma(sigma)
    check_choice(solver, "solver", tuple(SOLVERS))
    points = prepare_points(z, max_samples, seed, sampler)
    dtype = resolve_dtype(precision, points.device)
    values, _ = spectrum_of_points(points, sigma, dtype, solver)
    values = values.sort().values
    return values.cpu().numpy() if isinstance(z, np.ndarray) else values

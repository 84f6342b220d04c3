"""Eigenvalues of the diffusion operator, and the registry of DSE solvers.

`SOLVERS` maps a name to a function from an `EntropyRequest` to a `DSEEstimate`:
"exact" (every eigenvalue, eigvalsh), "slq" (deflated stochastic Lanczos quadrature with
error bars, O(N^2) per product, bounded memory, rows shardable across processes) and
"auto" (exact up to `EXACT_MAX_N[device type]` points, slq above). `estimate_entropy` is
the one entry the public functions share.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch

from ._validation import as_points, check_choice, check_max_samples, check_positive_int, resolve_dtype
from .diffusion import affinity_of_points, bandwidth_for, resolve_sigma
from .errors import EigensolverFallbackWarning
from .sampling import SAMPLERS, subsample_rows
from .solvers.estimate import DSEEstimate, SLQOptions
from .solvers.layout import gather_points, single_process_layout, split_layout
from .solvers.run import EntropyRequest, auto_solver, exact_solver, resolved_solver, slq_solver

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


SOLVERS: dict[str, Callable[[EntropyRequest], DSEEstimate]] = {
    "exact": exact_solver,
    "slq": slq_solver,
    "auto": auto_solver,
}
# Solvers that give every eigenvalue (`diffusion_spectrum`); "auto" means "exact" there.
SPECTRUM_SOLVERS = ("exact", "auto")


def spectrum_of_points(
    points: torch.Tensor, sigma: float | str, dtype: torch.dtype, solver: str = "exact"
) -> tuple[torch.Tensor, float]:
    """Eigenvalues of the diffusion operator of validated points; also the sigma used."""
    check_choice(solver, "solver", SPECTRUM_SOLVERS)
    affinity, bandwidth = affinity_of_points(points, sigma, dtype)
    return exact_eigenvalues(affinity), bandwidth


def prepare_points(
    z, max_samples: int | None, seed: int, sampler: str, distributed: bool = False
) -> torch.Tensor:
    """Validate Z (N, D) and apply the seeded `max_samples` subsample.

    With `distributed=True` z holds this rank's rows (at least 1); the full Z is gathered
    on every rank first, so every rank subsamples the same rows.
    """
    check_choice(sampler, "sampler", SAMPLERS)
    if distributed:
        points = gather_points(as_points(z, min_rows=0))
        points = as_points(points)
    else:
        points = as_points(z)
    rows = subsample_rows(points.shape[0], check_max_samples(max_samples), seed=seed, sampler=sampler)
    return points if rows is None else points[rows.to(points.device)]


def check_solver_settings(solver: str, memory_budget, options) -> SLQOptions:
    """Validate `solver`, `memory_budget` and `solver_options`; the options to use."""
    check_choice(solver, "solver", tuple(SOLVERS))
    if memory_budget is not None:
        check_positive_int(memory_budget, "memory_budget")
    if options is None:
        return SLQOptions()
    if not isinstance(options, SLQOptions):
        raise TypeError(f"solver_options must be an SLQOptions or None, got {type(options).__name__}")
    for name in ("probes", "lanczos_steps", "block", "depth"):
        check_positive_int(getattr(options, name), f"solver_options.{name}", minimum=2 if name == "probes" else 1)
    return options


def solver_dtype(precision: str | None, solver: str, device: torch.device) -> torch.dtype:
    """The working dtype: explicit, else float32 for "slq" (float64 bookkeeping) and the
    exact default (float64 on the CPU, float32 on GPUs) otherwise."""
    if precision is None and solver == "slq":
        return torch.float32
    return resolve_dtype(precision, device)


def estimate_entropy(
    points: torch.Tensor,
    sigma: float | str,
    t: float,
    *,
    precision: str | None,
    solver: str,
    seed: int,
    distributed: bool = False,
    memory_budget: int | None = None,
    options: SLQOptions | None = None,
) -> DSEEstimate:
    """The DSE of validated points (the full Z on every rank) with the named solver.

    Under `distributed=True`, the kernel's rows are split evenly across the ranks of the
    default process group; every rank returns the same estimate.
    """
    options = options or SLQOptions()
    chosen = resolved_solver(solver, points.shape[0], points.device)
    dtype = solver_dtype(precision, chosen, points.device)
    points = points.to(dtype)
    bandwidth = bandwidth_for(points, sigma)
    n = points.shape[0]
    layout = split_layout(n) if distributed else single_process_layout(n)
    request = EntropyRequest(points, bandwidth, t, dtype, seed, layout, memory_budget, options)
    return SOLVERS[chosen](request)


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
        solver: "exact" or "auto" (the same here: a full spectrum needs every eigenvalue;
            an approximate run's top eigenvalues are in `DSEEstimate.top_eigenvalues`).

    Returns:
        Eigenvalues, shape (N,): a tensor on Z's device, or a NumPy array for NumPy input.

    Example:
        >>> values = diffusion_spectrum(np.array([[0.0], [1000.0]]))
        >>> values.tolist()
        [1.0, 1.0]
    """
    sigma = resolve_sigma(sigma)
    check_choice(solver, "solver", SPECTRUM_SOLVERS)
    points = prepare_points(z, max_samples, seed, sampler)
    dtype = resolve_dtype(precision, points.device)
    values, _ = spectrum_of_points(points, sigma, dtype, solver)
    values = values.sort().values
    return values.cpu().numpy() if isinstance(z, np.ndarray) else values

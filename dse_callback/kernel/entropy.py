"""Diffusion spectral entropy (DSE), the public entry, and the saturation diagnosis.

`diffusion_spectral_entropy` validates its arguments once (`request.entropy_request`),
then the solver runs the request (`solvers.run.solve`). The entropy of a given spectrum is
`solvers.exact.entropy_of_spectrum`; the Shannon baseline is in `shannon`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np  # noqa: F401  (doctest examples)

from .errors import BandwidthWarning
from .geometry.bandwidth import Bandwidth, ResolvedBandwidth
from .request import entropy_request
from .solvers.estimate import DSEEstimate, SLQOptions
from .solvers.exact import entropy_of_spectrum
from .solvers.run import solve

__all__ = ["diffusion_spectral_entropy", "entropy_of_spectrum", "saturation_message"]

# DSE within this fraction of log2 N of either end means the bandwidth does not fit Z.
_SATURATION_FRACTION = 0.02


def saturation_message(entropy: float, n: int, sigma: float) -> str | None:
    """Why DSE says more about sigma than about Z, when it sits at 0 or at log2 N; else None."""
    ceiling = math.log2(n)
    if ceiling == 0 or not math.isfinite(entropy):
        return None
    if entropy <= _SATURATION_FRACTION * ceiling:
        return (
            f"DSE = {entropy:.4f} bits is at its floor 0 (N={n}, sigma={sigma:g}): the points are "
            "close together relative to sigma, so the diffusion operator is almost rank one. "
            'Try a smaller sigma or a scale-free one (sigma="rms", "median" or "knn").'
        )
    if entropy >= (1 - _SATURATION_FRACTION) * ceiling:
        return (
            f"DSE = {entropy:.4f} bits is at its ceiling log2 N = {ceiling:.4f} (N={n}, sigma={sigma:g}): "
            "the points are far apart relative to sigma, so the diffusion operator is almost "
            'the identity. Try a larger sigma or a scale-free one (sigma="rms", "median" or "knn").'
        )
    return None


def diffusion_spectral_entropy(
    z,
    sigma: float | str | Bandwidth | ResolvedBandwidth = 10.0,
    t: float = 1,
    *,
    max_samples: int | None = 10_000,
    seed: int = 0,
    sampler: str = "torch",
    precision: str | None = None,
    solver: str = "auto",
    warn_saturation: bool = True,
    return_details: bool = False,
    distributed: bool = False,
    memory_budget: int | None = None,
    solver_options: SLQOptions | None = None,
) -> float | DSEEstimate:
    """Diffusion spectral entropy of points Z, in bits.

    With A the symmetric diffusion operator of Z (see `diffusion_operator`) and lambda its
    eigenvalues: p_i = |lambda_i|^t / sum_j |lambda_j|^t, DSE = -sum_i p_i log2 p_i,
    which lies in [0, log2 N]. Identical points give 0; N points far apart relative to
    sigma give log2 N; k tight, well-separated, equal clusters give about log2 k.

    Args:
        z: points, shape (N, D): a tensor (computed on its device) or a NumPy array.
        sigma: Gaussian bandwidth: a number > 0 (the paper's fixed sigma; DSE then depends on
            the scale of Z), or a scale-free preset resolved on Z: "median" (median pairwise
            distance), "rms" (RMS distance to the centroid), "knn" (per-point distance to the
            k-th neighbour, kernel exp(-d2_ij / (2 s_i s_j))), a `Bandwidth(kind, scale, k)`
            for a multiplier, or a `ResolvedBandwidth` from `resolve_bandwidth` (used as it
            is). See `kernel.geometry.bandwidth`.
        t: diffusion time (> 0): eigenvalues are raised to this power.
        max_samples: above this many rows, a seeded random subset of this size is used
            (None: never subsample; the reference subsamples to 10,000).
        seed: seed of that subsample (a private generator; the global RNG is untouched).
        sampler: "torch" or "python_random" (reproduces the `dse-dsmi` reference).
        precision: "float64", "float32", or None (exact: float64 on the CPU, float32 on
            GPUs; slq: float32 products with float64 sums).
        solver: "exact" (every eigenvalue, O(N^3)), "slq" (deflated stochastic Lanczos
            quadrature with an error bar, O(N^2) per product) or "auto" (exact up to
            `solvers.run.EXACT_MAX_N` points for the device, 4,096 on the CPU; slq above).
        warn_saturation: emit a `BandwidthWarning` when DSE is within 2% of 0 or log2 N.
        return_details: return a `DSEEstimate` (value, stderr, interval, solver, n, sigma,
            t, seconds, top_eigenvalues, ...) instead of a float.
        distributed: z holds this rank's rows of Z under an initialized torch.distributed
            default process group (the full Z is their concatenation in rank order); each
            rank builds only its row block of the kernel and every rank returns the same value.
        memory_budget: bytes the stored kernel (or this rank's rows of it) may take for
            "slq"; above it the blocked, matrix-free path recomputes kernel rows for every
            product (memory O(N * block)). None: 70% of the free memory.
        solver_options: `SLQOptions` (probes, Lanczos steps, deflation block, ...).

    Returns:
        DSE in bits, or a `DSEEstimate` with `return_details=True`.

    Example:
        >>> round(diffusion_spectral_entropy(np.eye(4) * 1000.0, warn_saturation=False), 6)
        2.0
        >>> estimate = diffusion_spectral_entropy(np.eye(4) * 1000.0, warn_saturation=False, return_details=True)
        >>> estimate.solver, estimate.n, estimate.stderr
        ('exact', 4, 0.0)
    """
    estimate = solve(
        entropy_request(
            z,
            sigma,
            t,
            max_samples=max_samples,
            seed=seed,
            sampler=sampler,
            precision=precision,
            solver=solver,
            distributed=distributed,
            memory_budget=memory_budget,
            solver_options=solver_options,
        )
    )
    message = saturation_message(estimate.value, estimate.n, estimate.sigma) if warn_saturation else None
    if message:
        warnings.warn(message, BandwidthWarning, stacklevel=2)
    return estimate if return_details else estimate.value

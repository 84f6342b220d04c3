"""The entropy profile: DSE against the bandwidth, to see at a glance whether it saturates.

    profile(c) = DSE(Z; sigma = c * s),   c over a log-spaced grid of multipliers,

where s is the bandwidth `sigma` resolved on Z (a number is its own s; under "knn" every
point's scale is multiplied by c). Divided by log2 n, each value lies in [0, 1]: a curve
pinned near 1 (or 0) around c = 1 says that the DSE at that bandwidth mostly reflects the
size of Z against sigma, not its structure.

Cost. The profile runs one DSE per multiplier, so by default it runs on a seeded subsample
of `PROFILE_MAX_SAMPLES` (1,024) rows with the exact solver (on one thread), the bandwidth
resolved once on the full Z first. At N = 10,000 and D = 512 it stays within 3x one default
DSE of all N points (benchmarks/bench_bandwidth.py measures it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np  # noqa: F401  (doctest examples)
import torch

from .geometry.bandwidth import Bandwidth, ResolvedBandwidth
from .request import entropy_request
from .solvers.estimate import SLQOptions
from .solvers.operator import torch_threads
from .solvers.run import solve
from .validation import check_positive

__all__ = ["DEFAULT_PROFILE_SCALES", "PROFILE_MAX_SAMPLES", "EntropyProfile", "diffusion_entropy_profile"]

# The multipliers c: powers of 2 from 1/16 to 16. Over this range DSE moves from near
# log2 n (sigma far below the distances) to near 0 (far above) on the data we tested.
DEFAULT_PROFILE_SCALES = tuple(2.0**exponent for exponent in range(-4, 5))
# Rows of the default subsample: 9 exact DSEs of 1,024 points cost less than one slq DSE
# of 10,000 (2,048 points took 4 to 10 times as long, eigvalsh being cubic).
PROFILE_MAX_SAMPLES = 1024


@dataclass(frozen=True)
class EntropyProfile:
    """DSE at each bandwidth multiplier.

    Attributes:
        scales: the multipliers c, as given.
        bandwidths: the recorded bandwidth c * s at each (the median local scale for "knn").
        values: DSE in bits at each.
        n: the number of rows used (after the subsample).
    """

    scales: tuple[float, ...]
    bandwidths: tuple[float, ...]
    values: tuple[float, ...]
    n: int

    @property
    def normalized(self) -> tuple[float, ...]:
        """values / log2 n, each in [0, 1]."""
        return tuple(value / math.log2(self.n) for value in self.values)


def _check_scales(scales) -> tuple[float, ...]:
    try:
        values = tuple(scales)
    except TypeError:
        raise TypeError(f"scales must be a sequence of multipliers > 0, got {scales!r}") from None
    if not values:
        raise ValueError("scales must hold at least one multiplier > 0, got an empty sequence")
    return tuple(check_positive(value, f"scales[{index}]") for index, value in enumerate(values))


def diffusion_entropy_profile(
    z,
    scales=DEFAULT_PROFILE_SCALES,
    sigma: float | str | Bandwidth | ResolvedBandwidth = "rms",
    t: float = 1,
    *,
    max_samples: int | None = PROFILE_MAX_SAMPLES,
    seed: int = 0,
    sampler: str = "torch",
    precision: str | None = None,
    solver: str = "auto",
    distributed: bool = False,
    memory_budget: int | None = None,
    solver_options: SLQOptions | None = None,
) -> EntropyProfile:
    """DSE of Z (N, D) at the bandwidths c * s, for each multiplier c in `scales`.

    s is `sigma` resolved once on the full Z (before the subsample), and each DSE is the
    entropy of the spectrum of A at sigma = c * s, as in `diffusion_spectral_entropy`.
    `normalized` divides by log2 n, n the rows used.

    Args:
        z: points, shape (N, D): a tensor or a NumPy array.
        scales: the multipliers c > 0 (default: 1/16, 1/8, ..., 16).
        sigma: the bandwidth multiplied: a number, "median", "rms", "knn", a `Bandwidth` or
            a `ResolvedBandwidth` (resolved on this Z, or on the Z before the subsample).
        t: diffusion time (> 0).
        max_samples: rows of the seeded subsample the DSEs run on (default 1,024, which
            keeps the profile's cost within 3x one DSE at N = 10,000; None: all rows).
        seed, sampler, precision, solver, distributed, memory_budget, solver_options: as in
            `diffusion_spectral_entropy` ("auto" is exact at the default subsample).

    Returns:
        An `EntropyProfile` (scales, bandwidths, values, n; `normalized` = values / log2 n).

    Example:
        >>> z = np.eye(4) * 1000.0
        >>> profile = diffusion_entropy_profile(z, scales=(1e-3, 1e6), sigma=1.0)
        >>> [round(value, 4) for value in profile.values], profile.bandwidths, profile.n
        ([2.0, 0.0], (0.001, 1000000.0), 4)
    """
    multipliers = _check_scales(scales)
    request = entropy_request(
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
        bandwidth_on_full=True,
    )
    bandwidths, values = [], []
    # One thread for the exact solves: on a busy 2-core CPU, eigvalsh of 1,024 x 1,024 took
    # 3 to 8 s on two threads (their spin-waits collide with other processes) and 0.5 s on one.
    with torch_threads(1 if request.solver == "exact" else torch.get_num_threads()):
        for multiplier in multipliers:
            bandwidth = request.bandwidth.scaled(multiplier)
            values.append(solve(dataclasses.replace(request, bandwidth=bandwidth)).value)
            bandwidths.append(bandwidth.value)
    return EntropyProfile(multipliers, tuple(bandwidths), tuple(values), request.points.shape[0])

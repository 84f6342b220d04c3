"""Diffusion spectral mutual information (DSMI) and its classic Shannon baseline (CSMI).

For points Z (N, D) and a discrete reference B with classes b of n_b members:

    MI(Z; B) = sum_b (n_b / N) * ( mean_r H(Z_{S_r}) - H(Z_{B=b}) )

where S_1..S_R are random subsets of size n_b, so both terms see the same number of
points, and H is DSE (for DSMI) or CSE (for CSMI). A class with fewer than 2 members is
skipped with a warning: it adds 0, and the weights stay n_b / N over all N points, which
matches the reference (the DSE of a single point is 0 for both terms).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np  # noqa: F401  (doctest examples)
import torch

from .errors import SkippedClassWarning
from .geometry.bandwidth import Bandwidth, ResolvedBandwidth
from .reference.binning import bin_rows
from .reference.sampling import random_subsets
from .request import mutual_information_request, points_and_classes
from .shannon import entropy_of_rows
from .solvers.estimate import DSMIEstimate, SLQOptions
from .solvers.subsets import DiffusionSubsetEntropies, SubsetEntropies
from .validation import check_positive_int, check_seed

# Maps index sets (B, n) of equal size to the entropy of each subset of Z.
SubsetEntropyFunction = Callable[[torch.Tensor], SubsetEntropies]


@dataclass(frozen=True)
class MutualInformation:
    """sum_b (n_b / N) (mean_r H(S_r) - H(B=b)), its variance, and the solvers that ran."""

    value: float
    variance: float
    solvers: frozenset


def mutual_information(
    classes: torch.Tensor, subset_entropies: SubsetEntropyFunction, n_repetitions: int, seed: int, sampler: str
) -> MutualInformation:
    """The MI formula over the classes of B, one batched entropy call per class.

    The variances of independent terms add: (n_b / N)^2 (sum_r var_r / R^2 + var_b).
    """
    n = len(classes)
    class_ids, counts = torch.unique(classes, return_counts=True)
    total, variance, solvers = 0.0, 0.0, frozenset()
    for class_id, count in zip(class_ids.tolist(), counts.tolist()):
        if count < 2:
            warnings.warn(
                f"class {class_id} of the reference has {count} member; it is skipped and adds 0 "
                "(weights stay n_b / N over all N)",
                SkippedClassWarning,
                stacklevel=3,
            )
            continue
        members = (classes == class_id).nonzero().reshape(1, -1).cpu()
        subsets = random_subsets(n, count, n_repetitions, seed=seed, sampler=sampler)
        entropies = subset_entropies(torch.cat([members, subsets]))
        values, variances = entropies.values, entropies.variances
        total += count / n * float(values[1:].mean() - values[0])
        variance += (count / n) ** 2 * float(variances[1:].sum() / n_repetitions**2 + variances[0])
        solvers |= entropies.solvers
    return MutualInformation(total, variance, solvers)


def diffusion_spectral_mutual_information(
    z,
    reference,
    *,
    sigma: float | str | Bandwidth | ResolvedBandwidth = 10.0,
    t: float = 1,
    reference_type: str = "auto",
    n_clusters: int = 10,
    n_repetitions: int = 5,
    sampler: str = "torch",
    seed: int = 0,
    max_samples: int | None = 10_000,
    precision: str | None = None,
    solver: str = "auto",
    return_details: bool = False,
    distributed: bool = False,
    memory_budget: int | None = None,
    solver_options: SLQOptions | None = None,
) -> float | DSMIEstimate:
    """Diffusion spectral mutual information DSMI(Z; B), in bits.

    DSMI = sum_b (n_b / N) (mean over R random subsets S of size n_b of DSE(Z_S)
    - DSE(Z_{B=b})). Each class builds its R + 1 equal-size diffusion matrices in one
    batched GEMM and solves them in one batched eigensolve.

    Args:
        z: points, shape (N, D): a tensor (computed on its device) or a NumPy array.
        reference: B, one row per point: class labels or precomputed cluster ids (integer
            dtype), continuous scalars (floating, (N,) or (N, 1): binned into `n_clusters`
            equal bins), or vectors such as images ((N, ...): flattened and grouped by
            `spectral_clusters` into `n_clusters`). To reuse clusters across calls, compute
            them once with `spectral_clusters` and pass them as labels.
        sigma: Gaussian bandwidth, as in `diffusion_spectral_entropy` (a number, "median",
            "rms", "knn", a `Bandwidth` or a `ResolvedBandwidth`). A preset is resolved once,
            on all N points, and serves every subset ("knn": each point keeps its own scale).
        t: diffusion time (> 0).
        reference_type: "auto", "labels", "scalars" or "vectors" (see `reference`).
        n_clusters: bins or clusters for a continuous reference.
        n_repetitions: R, the random subsets per class for the marginal term.
        sampler: "torch" (a private torch.Generator) or "python_random" (reproduces the
            `dse-dsmi` reference exactly: seeded with `seed` afresh for every class).
        seed: seed of the subsets, of the `max_samples` subsample and of the clustering.
        max_samples: above this many rows, Z and B are jointly subsampled (None: never).
        precision: "float64", "float32", or None (as in `diffusion_spectral_entropy`).
        solver: "exact", "slq" or "auto", applied to each subset by its size. "auto" keeps
            every term exact while N <= `solvers.run.EXACT_MAX_N` (4,096 on the CPU); above,
            subsets of `solvers.run.BATCHED_SLQ_MIN_N` (512) points or more go "slq", which
            runs each class's R + 1 subsets as one batch (see `solvers.batched`).
        return_details: return a `DSMIEstimate` (value, stderr, solver, n, sigma, t,
            seconds) instead of a float; stderr combines the slq terms' errors (0 if exact).
        distributed: z and reference hold this rank's rows (see `diffusion_spectral_entropy`);
            they are gathered on every rank, and slq subsets split their kernel rows.
        memory_budget, solver_options: as in `diffusion_spectral_entropy`.

    Returns:
        DSMI in bits (about 0 when B says nothing about Z), or a `DSMIEstimate`.

    Example:
        >>> z = torch.cat([torch.zeros(10, 2), torch.full((10, 2), 100.0)]).double()
        >>> labels = torch.arange(20) // 10
        >>> round(diffusion_spectral_mutual_information(z, labels, sampler="python_random"), 6)
        1.0
    """
    started = time.perf_counter()
    plan, classes = mutual_information_request(
        z,
        reference,
        sigma=sigma,
        t=t,
        reference_type=reference_type,
        n_clusters=n_clusters,
        n_repetitions=n_repetitions,
        sampler=sampler,
        seed=seed,
        max_samples=max_samples,
        precision=precision,
        solver=solver,
        distributed=distributed,
        memory_budget=memory_budget,
        solver_options=solver_options,
    )
    result = mutual_information(classes, DiffusionSubsetEntropies(plan), n_repetitions, plan.seed, sampler)
    if not return_details:
        return result.value
    return DSMIEstimate(
        value=result.value,
        stderr=math.sqrt(result.variance),
        solver="+".join(sorted(result.solvers)) or "exact",
        n=len(classes),
        sigma=plan.bandwidth.value,
        t=plan.t,
        seconds=time.perf_counter() - started,
    )


def classic_shannon_mutual_information(
    z,
    reference,
    *,
    bins_per_dim: int = 2,
    reference_type: str = "auto",
    n_clusters: int = 10,
    n_repetitions: int = 5,
    sampler: str = "torch",
    seed: int = 0,
    max_samples: int | None = 10_000,
) -> float:
    """Classic Shannon mutual information CSMI(Z; B), the paper's baseline, in bits.

    The DSMI formula with CSE in place of DSE; every subset is min-max scaled and binned
    on its own, as the reference does. Arguments as in
    `diffusion_spectral_mutual_information`; `bins_per_dim` as in `classic_shannon_entropy`.

    Example:
        >>> z = np.array([[c, i % 2] for c in (0, 1) for i in range(10)], dtype=float)
        >>> round(classic_shannon_mutual_information(z, np.repeat([0, 1], 10)), 3)
        0.902
    """
    bins_per_dim = check_positive_int(bins_per_dim, "bins_per_dim", minimum=2)
    n_repetitions = check_positive_int(n_repetitions, "n_repetitions")
    seed = check_seed(seed)
    points, classes = points_and_classes(z, reference, reference_type, n_clusters, max_samples, seed, sampler)

    def subset_entropies(index_sets: torch.Tensor) -> SubsetEntropies:
        index_sets = index_sets.to(points.device)
        values = torch.tensor(
            [entropy_of_rows(bin_rows(points[rows], bins_per_dim)) for rows in index_sets], dtype=torch.float64
        )
        return SubsetEntropies(values, torch.zeros_like(values), frozenset())

    return mutual_information(classes, subset_entropies, n_repetitions, seed, sampler).value

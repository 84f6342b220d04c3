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
from typing import Callable

import numpy as np  # noqa: F401  (doctest examples)
import torch

from ._validation import (
    as_points,
    as_tensor,
    check_choice,
    check_max_samples,
    check_positive,
    check_positive_int,
    check_seed,
    resolve_dtype,
)
from .clustering import bin_rows, discretize_reference
from .diffusion import bandwidth_for, check_matrix_fits, diffusion_affinity_, pairwise_squared_distances_, resolve_sigma
from .entropy import entropy_of_rows, entropy_of_spectrum
from .errors import SkippedClassWarning
from .sampling import SAMPLERS, random_subsets, subsample_rows
from .solvers.batched import batch_fits, batched_slq_entropies
from .solvers.estimate import DSMIEstimate, SLQOptions
from .solvers.layout import gather_points, rank_zero_copy
from .solvers.run import subset_solver
from .spectrum import check_solver_settings, estimate_entropy, exact_eigenvalues, solver_dtype

# Maps index sets (B, n) of equal size to the entropy of each subset of Z, shape (B,).
SubsetEntropies = Callable[[torch.Tensor], torch.Tensor]


def _gathered(z, reference) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's rows of Z and of B, concatenated in rank order, on every rank."""
    points = gather_points(as_points(z, min_rows=0))
    values = as_tensor(reference, "reference")
    flat = gather_points(values.reshape(len(values), -1).to(points.device))
    return points, flat.reshape((len(flat),) + tuple(values.shape[1:]))


def _points_and_classes(
    z, reference, reference_type: str, n_clusters: int, max_samples, seed: int, sampler: str, distributed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated Z and class ids of B, jointly subsampled to `max_samples` rows."""
    if distributed:
        z, reference = _gathered(z, reference)
    points = as_points(z)
    check_choice(sampler, "sampler", SAMPLERS)
    n = points.shape[0]
    reference_length = len(reference)
    if reference_length != n:
        raise ValueError(f"reference has {reference_length} rows but z has {n}; they must pair up row by row")
    rows = subsample_rows(n, check_max_samples(max_samples), seed=seed, sampler=sampler)
    if rows is not None:
        points = points[rows.to(points.device)]
        reference = reference[rows.numpy() if not isinstance(reference, torch.Tensor) else rows.to(reference.device)]
    classes = discretize_reference(reference, reference_type, n_clusters, seed=seed)
    return points, classes.to(points.device)


def _mutual_information(
    classes: torch.Tensor, subset_entropies: SubsetEntropies, n_repetitions: int, seed: int, sampler: str,
    variances: list | None = None,
) -> float:
    """sum_b (n_b / N) (mean_r H(S_r) - H(B=b)), one batched entropy call per class.

    `subset_entropies` may return (entropies, variances): the variance of the result then
    goes into `variances` (a one-element list), summed over independent terms.
    """
    n = len(classes)
    class_ids, counts = torch.unique(classes, return_counts=True)
    total = 0.0
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
        if isinstance(entropies, tuple):
            entropies, term_variances = entropies
            if variances is not None:
                variances[0] += (count / n) ** 2 * float(term_variances[1:].sum() / n_repetitions**2 + term_variances[0])
        total += count / n * float(entropies[1:].mean() - entropies[0])
    return total


def _diffusion_subset_entropies(
    points: torch.Tensor, bandwidth: float, t: float, n: int, used: set, *, precision, solver: str, seed: int,
    distributed: bool, memory_budget, options: SLQOptions,
) -> SubsetEntropies:
    """DSE of index sets (B, size) of `points`: (values, variances), with the solver for that size.

    Exact subsets share one batched GEMM and one batched eigvalsh. slq subsets share one
    batched slq when their kernels fit the memory budget (probes drawn from one generator
    seeded once, so every class gets fresh ones); larger ones run one by one, stored or
    blocked, their rows split across ranks under `distributed`. The solvers used go into `used`.
    """
    generator = torch.Generator().manual_seed(seed)
    slq_dtype = solver_dtype(precision, "slq", points.device)
    slq_points = None  # Z in the slq dtype, cast on the first slq subset and kept for the rest

    def subset_entropies(index_sets: torch.Tensor):
        nonlocal slq_points
        size = index_sets.shape[1]
        if subset_solver(solver, size, n, points.device) == "exact":
            used.add("exact")
            check_matrix_fits(index_sets.shape[0], size, points.dtype, points.device)
            # Distances per subset in one batched GEMM: for K classes this does (R + 1) / K
            # of the work of one global N x N matrix, and needs no gather.
            d2 = pairwise_squared_distances_(points[index_sets.to(points.device)])
            values = entropy_of_spectrum(exact_eigenvalues(diffusion_affinity_(d2, bandwidth)), t)
            return values, torch.zeros_like(values)
        used.add("slq")
        if batch_fits(index_sets.shape[0], size, slq_dtype, points.device, memory_budget):
            slq_points = points.to(slq_dtype) if slq_points is None else slq_points
            subsets = slq_points[index_sets.to(points.device)]
            values, variances = batched_slq_entropies(subsets, bandwidth, t, slq_dtype, generator, options)
            if distributed:  # every rank computed the same; rank 0's copy makes it exact
                values, variances = (rank_zero_copy(x, points.device) for x in (values, variances))
            return values, variances
        estimates = [
            estimate_entropy(
                points[rows.to(points.device)], bandwidth, t, precision=precision, solver="slq", seed=seed,
                distributed=distributed, memory_budget=memory_budget, options=options,
            )
            for rows in index_sets
        ]
        used.update(estimate.solver for estimate in estimates)
        values = torch.tensor([estimate.value for estimate in estimates], dtype=torch.float64)
        return values, torch.tensor([estimate.stderr**2 for estimate in estimates], dtype=torch.float64)

    return subset_entropies


def diffusion_spectral_mutual_information(
    z,
    reference,
    *,
    sigma: float | str = 10.0,
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
        sigma: Gaussian bandwidth (> 0), or "median" (one value for every subset, taken
            from all N points).
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
    sigma = resolve_sigma(sigma)
    t = check_positive(t, "t")
    n_repetitions = check_positive_int(n_repetitions, "n_repetitions")
    seed = check_seed(seed)
    options = check_solver_settings(solver, memory_budget, solver_options)
    started = time.perf_counter()
    points, classes = _points_and_classes(
        z, reference, reference_type, n_clusters, max_samples, seed, sampler, distributed=bool(distributed)
    )
    points = points.to(resolve_dtype(precision, points.device))
    bandwidth = bandwidth_for(points, sigma)
    used = set()
    subset_entropies = _diffusion_subset_entropies(
        points, bandwidth, t, len(classes), used, precision=precision, solver=solver, seed=seed,
        distributed=bool(distributed), memory_budget=memory_budget, options=options,
    )
    variance = [0.0]
    value = _mutual_information(classes, subset_entropies, n_repetitions, seed, sampler, variance)
    if not return_details:
        return value
    return DSMIEstimate(
        value=value, stderr=math.sqrt(variance[0]), solver="+".join(sorted(used)) or "exact",
        n=len(classes), sigma=bandwidth, t=t, seconds=time.perf_counter() - started,
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
    points, classes = _points_and_classes(z, reference, reference_type, n_clusters, max_samples, seed, sampler)

    def subset_entropies(index_sets: torch.Tensor) -> torch.Tensor:
        index_sets = index_sets.to(points.device)
        entropies = [entropy_of_rows(bin_rows(points[rows], bins_per_dim)) for rows in index_sets]
        return torch.tensor(entropies, dtype=torch.float64)

    return _mutual_information(classes, subset_entropies, n_repetitions, seed, sampler)

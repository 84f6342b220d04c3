"""The DSE of DSMI's subsets: equal-size index sets of one Z, each with the solver for its size.

DSMI asks, class by class, for the entropies of B index sets of n points (the class and
its R size-matched random subsets). `DiffusionSubsetEntropies` answers from one
`SubsetPlan`, resolved once by `request.mutual_information_request`:

- exact subsets share one batched GEMM and one batched eigvalsh;
- slq subsets share one batched slq (`batched`) when their kernels fit the memory budget,
  with probes drawn from one generator seeded once, so every class gets fresh ones;
- larger slq subsets run one by one (`run.slq_solver`), stored or blocked, their kernel
  rows split across ranks under `distributed`.

The bandwidth is the plan's, resolved once on all N points: a per-class bandwidth would
rescale each class to its own spread and hide how compact it is. Under "knn" a subset's
kernel uses the full set's local scales of its own rows; they are never recomputed per subset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry.affinity import check_matrix_fits, diffusion_affinity_, kernel_parameters
from ..geometry.bandwidth import ResolvedBandwidth
from ..geometry.distances import pairwise_squared_distances_
from .batched import batch_fits, batched_slq_entropies
from .estimate import SLQOptions
from .exact import entropy_of_spectrum, exact_eigenvalues
from .layout import rank_zero_copy, single_process_layout, split_layout
from .run import EntropyRequest, slq_solver, subset_solver


@dataclass(frozen=True)
class SubsetPlan:
    """How one DSMI computes its subsets' entropies.

    Attributes:
        points: the full Z (N, D) in the exact dtype, on every rank.
        bandwidth: resolved on all N points (its local scales, under "knn", number N).
        t: diffusion time.
        solver: "exact", "slq" or "auto", applied per subset size (`run.subset_solver`).
        slq_dtype: the working dtype of slq subsets.
        seed, distributed, memory_budget, options: as in `diffusion_spectral_entropy`.
    """

    points: torch.Tensor
    bandwidth: ResolvedBandwidth
    t: float
    solver: str
    slq_dtype: torch.dtype
    seed: int
    distributed: bool
    memory_budget: int | None
    options: SLQOptions


@dataclass(frozen=True)
class SubsetEntropies:
    """Entropies (B,) of B index sets, their variances (B,), float64 CPU, and the solvers that ran."""

    values: torch.Tensor
    variances: torch.Tensor
    solvers: frozenset


class DiffusionSubsetEntropies:
    """Callable: index sets (B, n) of the plan's points -> `SubsetEntropies`."""

    def __init__(self, plan: SubsetPlan):
        self.plan = plan
        self.generator = torch.Generator().manual_seed(plan.seed)
        self._slq_points = None  # Z in the slq dtype, cast on the first slq subset and kept

    def __call__(self, index_sets: torch.Tensor) -> SubsetEntropies:
        plan, (count, size) = self.plan, index_sets.shape
        points = plan.points
        index_sets = index_sets.to(points.device)
        sigma, local = kernel_parameters(plan.bandwidth)
        scales = None if local is None else local[index_sets]  # (B, n): each row keeps its full-set scale
        if subset_solver(plan.solver, size, len(points), points.device) == "exact":
            check_matrix_fits(count, size, points.dtype, points.device)
            # Distances per subset in one batched GEMM: for K classes this does (R + 1) / K
            # of the work of one global N x N matrix, and needs no gather.
            d2 = pairwise_squared_distances_(points[index_sets])
            values = entropy_of_spectrum(exact_eigenvalues(diffusion_affinity_(d2, sigma, scales)), plan.t).cpu()
            return SubsetEntropies(values, torch.zeros_like(values), frozenset({"exact"}))
        if self._slq_points is None:
            self._slq_points = points.to(plan.slq_dtype)
        if batch_fits(count, size, plan.slq_dtype, points.device, plan.memory_budget):
            subsets = self._slq_points[index_sets]
            values, variances = batched_slq_entropies(
                subsets, sigma, plan.t, plan.slq_dtype, self.generator, plan.options, scales
            )
            if plan.distributed:  # every rank computed the same; rank 0's copy makes it exact
                values, variances = (rank_zero_copy(x, points.device) for x in (values, variances))
            return SubsetEntropies(values, variances, frozenset({"slq"}))
        estimates = [slq_solver(self._one_subset(rows)) for rows in index_sets]
        values = torch.tensor([estimate.value for estimate in estimates], dtype=torch.float64)
        variances = torch.tensor([estimate.stderr**2 for estimate in estimates], dtype=torch.float64)
        return SubsetEntropies(values, variances, frozenset(estimate.solver for estimate in estimates))

    def _one_subset(self, rows: torch.Tensor) -> EntropyRequest:
        plan, size = self.plan, len(rows)
        layout = split_layout(size) if plan.distributed else single_process_layout(size)
        return EntropyRequest(
            self._slq_points[rows],
            plan.bandwidth.take(rows),
            plan.t,
            plan.slq_dtype,
            plan.seed,
            layout,
            plan.memory_budget,
            plan.options,
            solver="slq",
        )

"""One DSE or DSMI call, resolved once: validated points, bandwidth, dtype and solver.

The public functions (`entropy`, `mutual_info`, `spectrum`) hand their arguments to this
module at their entry. Each argument is validated here, once, with a message that names it.
The points are gathered across ranks (`distributed=True`) and subsampled (`max_samples`).
Then the working dtype, the bandwidth (on the full set) and the solver are chosen, and one
request object goes down to the solvers and the geometry, which never ask again:

- `entropy_request` -> `solvers.run.EntropyRequest` (DSE; `solvers.run.solve` runs it);
- `mutual_information_request` -> a `solvers.subsets.SubsetPlan` and the class ids of B
  (DSMI; `solvers.subsets.DiffusionSubsetEntropies` runs it per class);
- `operator_request` -> the points, bandwidth and dtype of one diffusion operator (`spectrum`);
  `profile` reuses `entropy_request`, its bandwidth resolved on the full Z.

The bandwidth (`geometry.bandwidth.bandwidth_for`) is resolved once per call, on the full
(gathered, subsampled) Z. A `ResolvedBandwidth` passed as sigma is used as it is; if it was
resolved on the Z before the `max_samples` subsample, its local scales follow the rows kept.
"""

from __future__ import annotations

import torch

from .geometry.bandwidth import ResolvedBandwidth, bandwidth_for, resolve_sigma
from .reference.clustering import discretize_reference
from .reference.sampling import SAMPLERS, subsample_rows
from .solvers.estimate import SLQOptions
from .solvers.layout import gather_points, single_process_layout, split_layout
from .solvers.run import SOLVERS, EntropyRequest, resolved_solver
from .solvers.subsets import SubsetPlan
from .validation import (
    as_points,
    as_tensor,
    check_choice,
    check_max_samples,
    check_positive,
    check_positive_int,
    check_precision,
    check_seed,
    resolve_dtype,
)


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


def _sampled_points(z, max_samples, seed: int, sampler: str, distributed: bool):
    """(validated Z after the `max_samples` subsample, the rows kept or None, the full Z)."""
    check_choice(sampler, "sampler", SAMPLERS)
    points = as_points(gather_points(as_points(z, min_rows=0))) if distributed else as_points(z)
    rows = subsample_rows(points.shape[0], check_max_samples(max_samples), seed=seed, sampler=sampler)
    return (points if rows is None else points[rows.to(points.device)]), rows, points


def prepare_points(z, max_samples: int | None, seed: int, sampler: str, distributed: bool = False) -> torch.Tensor:
    """Validate Z (N, D) and apply the seeded `max_samples` subsample.

    With `distributed=True` z holds this rank's rows (at least 1); the full Z is gathered
    on every rank first, so every rank subsamples the same rows.
    """
    return _sampled_points(z, max_samples, seed, sampler, distributed)[0]


def _follow_subsample(sigma, rows: torch.Tensor | None, n_before: int):
    """A `ResolvedBandwidth` resolved on the N rows before the subsample keeps its rows' local scales."""
    if isinstance(sigma, ResolvedBandwidth) and sigma.local is not None and rows is not None:
        if len(sigma.local) == n_before:
            return sigma.take(rows)
    return sigma


def operator_request(z, sigma, precision, max_samples=None, seed=0, sampler="torch"):
    """(points in the working dtype, the resolved bandwidth, the dtype) of one diffusion operator."""
    sigma = resolve_sigma(sigma)
    check_precision(precision)
    points, rows, full = _sampled_points(z, max_samples, seed, sampler, distributed=False)
    dtype = resolve_dtype(precision, points.device)
    points = points.to(dtype)
    return points, bandwidth_for(points, _follow_subsample(sigma, rows, len(full))), dtype


def entropy_request(
    z,
    sigma,
    t,
    *,
    max_samples,
    seed,
    sampler,
    precision,
    solver,
    distributed,
    memory_budget,
    solver_options,
    bandwidth_on_full: bool = False,
) -> EntropyRequest:
    """The request of one DSE; arguments as in `diffusion_spectral_entropy`.

    `bandwidth_on_full`: resolve a preset on the full Z before the `max_samples` subsample
    (the entropy profile's choice) instead of on the rows kept.
    """
    sigma = resolve_sigma(sigma)
    t = check_positive(t, "t")
    seed = check_seed(seed)
    options = check_solver_settings(solver, memory_budget, solver_options)
    check_precision(precision)
    distributed = bool(distributed)
    points, rows, full = _sampled_points(z, max_samples, seed, sampler, distributed)
    n = points.shape[0]
    chosen = resolved_solver(solver, n, points.device)
    dtype = solver_dtype(precision, chosen, points.device)
    points = points.to(dtype)
    layout = split_layout(n) if distributed else single_process_layout(n)
    if bandwidth_on_full and rows is not None:
        on_full = bandwidth_for(full.to(dtype), sigma, split_layout(len(full)) if distributed else None)
        bandwidth = on_full.take(rows)
    else:
        bandwidth = bandwidth_for(points, _follow_subsample(sigma, rows, len(full)), layout if distributed else None)
    return EntropyRequest(points, bandwidth, t, dtype, seed, layout, memory_budget, options, solver=chosen)


def _gathered(z, reference) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's rows of Z and of B, concatenated in rank order, on every rank."""
    points = gather_points(as_points(z, min_rows=0))
    values = as_tensor(reference, "reference")
    flat = gather_points(values.reshape(len(values), -1).to(points.device))
    return points, flat.reshape((len(flat),) + tuple(values.shape[1:]))


def points_and_classes(
    z, reference, reference_type: str, n_clusters: int, max_samples, seed: int, sampler: str, distributed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated Z and class ids of B, jointly subsampled to `max_samples` rows."""
    points, classes, _, _ = _sampled_points_and_classes(
        z, reference, reference_type, n_clusters, max_samples, seed, sampler, distributed
    )
    return points, classes


def _sampled_points_and_classes(z, reference, reference_type, n_clusters, max_samples, seed, sampler, distributed):
    """`points_and_classes`, and the rows kept (None: all) and N before the subsample."""
    if distributed:
        z, reference = _gathered(z, reference)
    points = as_points(z)
    check_choice(sampler, "sampler", SAMPLERS)
    n = points.shape[0]
    if len(reference) != n:
        raise ValueError(f"reference has {len(reference)} rows but z has {n}; they must pair up row by row")
    rows = subsample_rows(n, check_max_samples(max_samples), seed=seed, sampler=sampler)
    if rows is not None:
        points = points[rows.to(points.device)]
        reference = reference[rows.numpy() if not isinstance(reference, torch.Tensor) else rows.to(reference.device)]
    classes = discretize_reference(reference, reference_type, n_clusters, seed=seed)
    return points, classes.to(points.device), rows, n


def mutual_information_request(
    z,
    reference,
    *,
    sigma,
    t,
    reference_type,
    n_clusters,
    n_repetitions,
    sampler,
    seed,
    max_samples,
    precision,
    solver,
    distributed,
    memory_budget,
    solver_options,
) -> tuple[SubsetPlan, torch.Tensor]:
    """The plan of one DSMI and the class ids (N,) of B; arguments as in
    `diffusion_spectral_mutual_information`. The bandwidth is resolved once, on all N points
    (their kNN scales split by rows across ranks under `distributed`), and serves every class
    subset."""
    sigma = resolve_sigma(sigma)
    t = check_positive(t, "t")
    check_positive_int(n_repetitions, "n_repetitions")
    seed = check_seed(seed)
    options = check_solver_settings(solver, memory_budget, solver_options)
    check_precision(precision)
    distributed = bool(distributed)
    points, classes, rows, n_before = _sampled_points_and_classes(
        z, reference, reference_type, n_clusters, max_samples, seed, sampler, distributed
    )
    points = points.to(resolve_dtype(precision, points.device))
    layout = split_layout(len(points)) if distributed else None
    plan = SubsetPlan(
        points=points,
        bandwidth=bandwidth_for(points, _follow_subsample(sigma, rows, n_before), layout),
        t=t,
        solver=solver,
        slq_dtype=solver_dtype(precision, "slq", points.device),
        seed=seed,
        distributed=distributed,
        memory_budget=memory_budget,
        options=options,
    )
    return plan, classes

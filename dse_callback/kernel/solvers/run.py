"""The DSE solvers, `SOLVERS`: each maps one `EntropyRequest` to a `DSEEstimate`.

- "exact": all eigenvalues of the stored N x N operator (eigvalsh); O(N^3).
- "slq": deflated stochastic Lanczos quadrature with control variates (see `slq`), with
  certified top-k bounds at t = 2 when they are tight; O(N^2) per product, stored or
  blocked by the memory budget, rows sharded under torch.distributed.
- "auto": "exact" up to `EXACT_MAX_N[device type]` points, "slq" above (`resolved_solver`,
  applied once when the request is made).

`subset_solver` makes the same choice for DSMI's subsets, which `subsets` runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..geometry.affinity import affinity_of_points, kernel_parameters
from ..geometry.bandwidth import ResolvedBandwidth
from .bounds import top_k_bounds
from .estimate import DSEEstimate, SLQOptions
from .exact import entropy_of_spectrum, exact_eigenvalues
from .krylov import top_eigenpairs
from .layout import RowLayout
from .operator import DiffusionOperator, torch_threads
from .slq import entropy_and_stderr, slq_moments, student_quantile

# "auto" stays exact up to this N, per device type. CPU: measured with
# benchmarks/bench_large_n.py (see README "Large N"); CUDA: not measured here (no GPU).
EXACT_MAX_N = {"cpu": 4096, "cuda": 4096}
_EXACT_MAX_N_OTHER = 4096
# Below this N "slq" has too few directions to deflate and probe: it runs "exact".
_SLQ_MIN_N = 64
# Above EXACT_MAX_N, "auto" runs DSMI's subsets of at least this many points through batched
# slq: from here it beats a batched float64 eigvalsh on the CPU (1.6x to 2.9x at 512 points,
# 3.7x to 4.1x at 1,024 in three runs of benchmarks/bench_large_n.py; about even at 256).
BATCHED_SLQ_MIN_N = 512


@dataclass(frozen=True)
class EntropyRequest:
    """One DSE to compute, resolved by `request.entropy_request`: the full Z (N, D) on this
    rank in the working `dtype`, the bandwidth resolved on it (its `value` is recorded as
    sigma), and the solver that runs ("exact" or "slq"; "auto" is resolved before)."""

    points: torch.Tensor
    bandwidth: ResolvedBandwidth
    t: float
    dtype: torch.dtype
    seed: int
    layout: RowLayout
    memory_budget: int | None
    options: SLQOptions
    solver: str = "exact"


def exact_max_n(device: torch.device) -> int:
    return EXACT_MAX_N.get(device.type, _EXACT_MAX_N_OTHER)


def exact_solver(request: EntropyRequest) -> DSEEstimate:
    start = time.perf_counter()
    affinity = affinity_of_points(request.points, request.bandwidth, request.dtype)
    eigenvalues = exact_eigenvalues(affinity).to(torch.float64).cpu()
    del affinity
    value = float(entropy_of_spectrum(eigenvalues, request.t))
    top = eigenvalues.sort(descending=True).values
    return DSEEstimate(
        value=value,
        stderr=0.0,
        interval=(value, value),
        solver="exact",
        n=request.points.shape[0],
        sigma=kernel_parameters(request.bandwidth)[0],
        t=request.t,
        seconds=time.perf_counter() - start,
        top_eigenvalues=top,
    )


def slq_solver(request: EntropyRequest) -> DSEEstimate:
    n = request.points.shape[0]
    if n < _SLQ_MIN_N:
        return exact_solver(request)
    start = time.perf_counter()
    operator = DiffusionOperator(
        request.points, request.bandwidth, request.dtype, request.layout, request.memory_budget
    )
    options = request.options
    # Keep the Krylov basis (depth + 1) * block + 1 well inside N.
    block = max(1, min(options.block, (n // 2) // (options.depth + 1)))
    generator = torch.Generator(device="cpu").manual_seed(request.seed)
    with torch_threads(1):  # the operator's products still use every thread
        pairs = top_eigenpairs(
            operator,
            generator,
            block=block,
            depth=options.depth,
            tolerance=options.tolerance,
        )
        solver, stderr = "topk", 0.0
        # The certificate needs the deflated values to be the largest in magnitude: a positive
        # semi-definite kernel guarantees it, "knn"'s self-tuning kernel does not (see geometry.bandwidth).
        certifiable = request.t == 2 and kernel_parameters(request.bandwidth)[1] is None
        low, high = top_k_bounds(operator.frobenius_squared, n, pairs) if certifiable else (0.0, math.inf)
        value = (low + high) / 2
        if high - low > options.bound_tolerance:  # loose or no bounds: probe
            solver = "slq"
            value, stderr = map(float, entropy_and_stderr(*slq_moments(operator, request.t, generator, options, pairs)))
            half_width = student_quantile(options.probes - 1) * stderr
            low, high = value - half_width, value + half_width
    return DSEEstimate(
        value=value,
        stderr=stderr,
        interval=(low, high),
        solver=solver,
        n=n,
        sigma=kernel_parameters(request.bandwidth)[0],
        t=request.t,
        seconds=time.perf_counter() - start,
        top_eigenvalues=pairs.values.cpu(),
        storage="stored" if operator.stored else "blocked",
        products=operator.products,
    )


def resolved_solver(solver: str, n: int, device: torch.device) -> str:
    """The solver that runs for N = `n` points: "auto" is "exact" up to EXACT_MAX_N, "slq" above."""
    if solver != "auto":
        return solver
    return "exact" if n <= exact_max_n(device) else "slq"


def subset_solver(solver: str, size: int, n: int, device: torch.device) -> str:
    """ "exact" or "slq" for DSMI's subsets of `size` points drawn from N = `n` points.

    "auto" keeps every term exact while the whole Z is (N <= EXACT_MAX_N), so a DSMI there
    matches the reference; above, subsets of BATCHED_SLQ_MIN_N points or more go slq.
    """
    if solver == "exact" or size < _SLQ_MIN_N:
        return "exact"
    if solver == "slq":
        return "slq"
    return "exact" if resolved_solver(solver, n, device) == "exact" or size < BATCHED_SLQ_MIN_N else "slq"


# The solver names a caller may pass; "auto" is resolved per size (`resolved_solver`).
SOLVERS = ("exact", "slq", "auto")
_RUNNERS = {"exact": exact_solver, "slq": slq_solver}


def solve(request: EntropyRequest) -> DSEEstimate:
    """The DSE estimate of a resolved request."""
    return _RUNNERS[request.solver](request)

"""slq on a batch of small diffusion operators at once: the subsets of DSMI.

DSMI solves K (R + 1) operators of about N / K points each. One at a time, slq pays its
Krylov bookkeeping per matrix and loses to a batched eigvalsh at N / K ~ 1,000; on a
(B, n, n) batch, with one batched product per Lanczos step for every matrix and probe, it
wins (benchmarks/bench_large_n.py measures both). The estimator is `slq`'s (quadratic
control variate with exact traces, Hutchinson with Lanczos quadrature), with one
difference: only the known top pair (eigenvalue 1, eigenvector sqrt(deg)/||sqrt(deg)||)
is deflated. At this size block Krylov deflation of more pairs costs as many products as
the probes it would save; the error bar reports what that leaves.

Kernels, products and Lanczos vectors use the working dtype (float32 by default); degrees,
traces, the tridiagonal matrices and the fits are float64.
"""

from __future__ import annotations

import torch

from ..geometry.affinity import gaussian_kernel_
from ..geometry.distances import full_precision_matmul, pairwise_squared_distances_
from .estimate import SLQOptions
from .krylov import lanczos_quadrature
from .operator import memory_budget_bytes, row_sums_float64
from .slq import entropy_and_stderr, probe_estimates


class BatchedDiffusionOperator:
    """B diffusion operators A (B, n, n) of point sets (B, n, D), stored, as products only.

    `scales` (B, n): each point's own scale under "knn" (taken from the full set's); None:
    the fixed `bandwidth`.

    Attributes:
        trace: tr A = sum 1/deg, shape (B,).
        frobenius_squared: ||A||_F^2, shape (B,).
        top_vector: sqrt(deg)/||sqrt(deg)||, the eigenvector of eigenvalue 1, shape (B, n).
        products: columns multiplied per operator so far.
    """

    def __init__(self, points: torch.Tensor, bandwidth: float, dtype: torch.dtype, scales: torch.Tensor | None = None):
        kernel = gaussian_kernel_(pairwise_squared_distances_(points.to(dtype)), bandwidth, scales, scales)
        b, n, _ = kernel.shape
        degree = row_sums_float64(kernel.reshape(b * n, n)).reshape(b, n)
        scale = degree.rsqrt().to(dtype)
        self.matrices = kernel.mul_(scale.unsqueeze(-1)).mul_(scale.unsqueeze(-2))
        self.trace = degree.reciprocal().sum(dim=-1)
        self.frobenius_squared = (
            row_sums_float64(self.matrices.reshape(b * n, n), square=True).reshape(b, n).sum(dim=-1)
        )
        root = degree.sqrt()
        self.top_vector = root / root.norm(dim=-1, keepdim=True)
        self.products = 0

    def matmul(self, vectors: torch.Tensor) -> torch.Tensor:
        """A @ X for X (B, n, p), in X's dtype."""
        self.products += vectors.shape[-1]
        with full_precision_matmul():
            return torch.bmm(self.matrices, vectors.to(self.matrices.dtype)).to(vectors.dtype)


def batch_fits(n_matrices: int, n: int, dtype: torch.dtype, device: torch.device, memory_budget: int | None) -> bool:
    """Whether `n_matrices` kernels of n x n fit the budget (None: 70% of free memory)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return n_matrices * n * n * itemsize <= memory_budget_bytes(memory_budget, device)


def batched_slq_entropies(
    points: torch.Tensor,
    bandwidth: float,
    t: float,
    dtype: torch.dtype,
    generator: torch.Generator,
    options: SLQOptions,
    scales: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """slq DSE estimates of B point sets of equal size at once.

    Args:
        points: (B, n, D), validated, on the compute device.
        bandwidth, t: sigma > 0 and the diffusion time.
        scales: (B, n) per-point scales under "knn" (then `bandwidth` is unused), or None.
        dtype: the working dtype (float32 or float64).
        generator: a CPU generator for the Rademacher probes; it advances, so successive
            batches get fresh probes.
        options: `probes` and `lanczos_steps` are used.

    Returns:
        DSE values (B,) and their squared standard errors (B,), float64 CPU.
    """
    operator = BatchedDiffusionOperator(points, bandwidth, dtype, scales)
    b, n, _ = points.shape
    signs = torch.randint(0, 2, (b, n, options.probes), generator=generator, dtype=torch.float64).mul_(2).sub_(1)
    steps = max(1, min(options.lanczos_steps, n - 1))
    deflation = operator.top_vector.unsqueeze(-1).to(dtype)
    quadrature = lanczos_quadrature(operator, deflation, signs.to(device=points.device, dtype=dtype), steps)
    # Over the range of P = I - u u^T with A u = u: tr(PAP) = tr A - 1, tr((PAP)^2) = ||A||_F^2 - 1.
    traces = (n - 1, operator.trace.cpu() - 1.0, operator.frobenius_squared.cpu() - 1.0)
    top = torch.ones(b, 1, dtype=torch.float64)
    values, stderr = entropy_and_stderr(*probe_estimates(quadrature, t, traces, top))
    return values, stderr.square()

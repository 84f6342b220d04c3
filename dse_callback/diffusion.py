"""Distances, Gaussian affinity and the symmetric diffusion operator, in pure torch.

For points Z (N, D) and bandwidth sigma:

    d2_ij = |z_i - z_j|^2
    G_ij  = exp(-d2_ij / (2 sigma^2))
    A_ij  = G_ij / sqrt(deg_i deg_j),   deg_i = sum_j G_ij

A is symmetric and similar to the random-walk operator P = diag(deg)^-1 G, so it has
P's eigenvalues. Every function accepts a leading batch dimension: (..., N, D) in,
(..., N, N) out. The N x N buffer is allocated once and transformed in place.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

import torch

from ._validation import as_points, check_positive, resolve_dtype

# Rows of the distance matrix used to estimate the median distance for sigma="median".
_MEDIAN_ROWS = 2048


@contextlib.contextmanager
def full_precision_matmul() -> Iterator[None]:
    """Keep float32 matrix products out of TF32, whose 10-bit mantissa moves DSE by ~1e-3 bits."""
    previous_precision = torch.get_float32_matmul_precision()
    previous_cuda_flag = torch.backends.cuda.matmul.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous_precision)
        torch.backends.cuda.matmul.allow_tf32 = previous_cuda_flag


def centered_with_squared_norms(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (..., N, D) minus their mean, and each centered point's squared norm (..., N).

    Distances are translation invariant, and centering keeps |x|^2 + |y|^2 - 2 x.y small
    enough that its three terms cancel without losing digits.
    """
    centered = points - points.mean(dim=-2, keepdim=True)
    return centered, (centered * centered).sum(dim=-1)


def squared_distances_from_rows(centered: torch.Tensor, squared_norms: torch.Tensor, rows) -> torch.Tensor:
    """Squared distances (R, N) from the points `rows` (an index tensor or a slice) to all N.

    Takes the output of `centered_with_squared_norms`; one GEMM that adds |z_j|^2 as it
    writes, then |z_i|^2 and the clamp at 0 in place: three passes over the (R, N) block
    where the plain expression made five, which took a third of the N = 10,000 kernel's time.
    """
    with full_precision_matmul():
        block = torch.addmm(squared_norms[None, :], centered[rows], centered.T, alpha=-2.0)
    return block.add_(squared_norms[rows, None]).clamp_(min=0.0)


def pairwise_squared_distances_(z: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances with one GEMM: |z_i|^2 + |z_j|^2 - 2 z_i.z_j.

    Z is centered first (see `centered_with_squared_norms`); the result is clamped at 0 and
    its diagonal set to exactly 0. The N x N buffer is transformed in place.

    Args:
        z: points, shape (..., N, D), already validated and in the working dtype.

    Returns:
        Tensor of shape (..., N, N).

    Example:
        >>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
        >>> pairwise_squared_distances_(z)
        tensor([[ 0., 25.],
                [25.,  0.]], dtype=torch.float64)
    """
    centered, squared_norms = centered_with_squared_norms(z)
    with full_precision_matmul():
        d2 = torch.matmul(centered, centered.transpose(-1, -2))
    d2.mul_(-2.0)
    d2.add_(squared_norms.unsqueeze(-1)).add_(squared_norms.unsqueeze(-2))
    d2.clamp_(min=0.0)
    d2.diagonal(dim1=-2, dim2=-1).zero_()
    return d2


def diffusion_affinity_(d2: torch.Tensor, sigma: float) -> torch.Tensor:
    """Turn squared distances (..., N, N) into the symmetric diffusion operator A, in place.

    Rows and columns are scaled by deg^-1/2 through broadcasting: no diagonal matrices,
    no extra N x N buffer.
    """
    d2.mul_(-1.0 / (2.0 * sigma * sigma)).exp_()
    inverse_sqrt_degree = d2.sum(dim=-1).rsqrt_()
    d2.mul_(inverse_sqrt_degree.unsqueeze(-1)).mul_(inverse_sqrt_degree.unsqueeze(-2))
    return d2


def median_bandwidth(points: torch.Tensor) -> float:
    """A scale-aware sigma: the median distance between distinct points of Z (N, D).

    Estimated from the distances of at most 2,048 evenly spaced rows to all N points (one
    GEMM, no N x N matrix), so it is deterministic and costs far less than the eigensolve.
    Falls back to 1.0 when all points coincide.

    Example:
        >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0], [7.0]]))
        3.5
    """
    n = points.shape[0]
    rows = torch.linspace(0, n - 1, steps=min(n, _MEDIAN_ROWS), device=points.device).long()
    block = squared_distances_from_rows(*centered_with_squared_norms(points), rows)
    off_diagonal = torch.ones_like(block, dtype=torch.bool)
    off_diagonal[torch.arange(len(rows), device=points.device), rows] = False
    values = block[off_diagonal]
    # The two middle order statistics, averaged: the median of an even count.
    lower = float(values.kthvalue((values.numel() + 1) // 2).values.sqrt())
    upper = float(values.kthvalue(values.numel() // 2 + 1).values.sqrt())
    median = (lower + upper) / 2
    return median if median > 0 else 1.0


def resolve_sigma(sigma: float | str) -> float | str:
    """Validate sigma: a positive number, or "median" for the scale-aware bandwidth."""
    if isinstance(sigma, str):
        if sigma != "median":
            raise ValueError(f'sigma must be a number > 0 or "median", got {sigma!r}')
        return sigma
    return check_positive(sigma, "sigma")


def bandwidth_for(points: torch.Tensor, sigma: float | str) -> float:
    """The numeric bandwidth: `sigma` itself, or the median distance of `points` for "median"."""
    return median_bandwidth(points) if sigma == "median" else float(sigma)


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on `device`: the CUDA allocator's view, or MemAvailable on the host."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_matrix_fits(n_matrices: int, n: int, dtype: torch.dtype, device: torch.device) -> None:
    """Raise MemoryError before allocating `n_matrices` (N, N) matrices that cannot fit.

    Counts the affinity buffer and the eigensolver's own copy of it.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    needed = 2 * n_matrices * n * n * itemsize
    available = available_memory_bytes(device)
    if needed > available:
        raise MemoryError(
            f"{n_matrices} diffusion matrices of {n} x {n} in {dtype} need about "
            f"{needed / 2**30:.1f} GiB but {device} has {available / 2**30:.1f} GiB free; "
            f"pass max_samples (for example max_samples={int(math.sqrt(available / (2 * itemsize * n_matrices) / 2))}) "
            "or precision='float32'"
        )


def affinity_of_points(points: torch.Tensor, sigma: float | str, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """The diffusion operator (N, N) of validated points in `dtype`, and the bandwidth used."""
    check_matrix_fits(1, points.shape[0], dtype, points.device)
    points = points.to(dtype)
    bandwidth = bandwidth_for(points, sigma)
    return diffusion_affinity_(pairwise_squared_distances_(points), bandwidth), bandwidth


def diffusion_operator(
    z, sigma: float | str = 10.0, *, precision: str | None = None
) -> torch.Tensor:
    """The symmetric diffusion operator A of points Z, on Z's device.

    A_ij = G_ij / sqrt(deg_i deg_j) with G_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)).

    Args:
        z: points, shape (N, D), a tensor or a NumPy array.
        sigma: Gaussian bandwidth (> 0), or "median" for the median pairwise distance.
        precision: "float64", "float32", or None for float64 on the CPU and float32 on GPUs.

    Returns:
        Tensor of shape (N, N), symmetric, with eigenvalues in [-1, 1] and largest 1.

    Example:
        >>> a = diffusion_operator(torch.zeros(4, 3))
        >>> torch.allclose(a, torch.full((4, 4), 0.25, dtype=torch.float64))
        True
    """
    points = as_points(z)
    sigma = resolve_sigma(sigma)
    affinity, _ = affinity_of_points(points, sigma, resolve_dtype(precision, points.device))
    return affinity

"""The symmetric diffusion operator of a point cloud, built in place, and its memory check.

For squared distances d2 (..., N, N) and bandwidth sigma (or per-point scales s, "knn"):

    G_ij  = exp(-d2_ij / (2 sigma^2))     or     G_ij = exp(-d2_ij / (2 s_i s_j))
    A_ij  = G_ij / sqrt(deg_i deg_j),   deg_i = sum_j G_ij

A is symmetric and similar to the random-walk operator P = diag(deg)^-1 G, so it has
P's eigenvalues. Rows and columns are scaled by broadcasting: no diagonal matrices.
"""

from __future__ import annotations

import math
import os

import torch

from .bandwidth import ResolvedBandwidth
from .distances import pairwise_squared_distances_


def kernel_parameters(bandwidth: ResolvedBandwidth | float) -> tuple[float, torch.Tensor | None]:
    """(sigma, per-point scales or None) of a resolved bandwidth; a plain number is a fixed sigma."""
    if isinstance(bandwidth, ResolvedBandwidth):
        return bandwidth.value, bandwidth.local
    return float(bandwidth), None


def gaussian_kernel_(
    d2: torch.Tensor, sigma: float, row_scales: torch.Tensor | None = None, column_scales: torch.Tensor | None = None
) -> torch.Tensor:
    """Turn squared distances (..., R, C) into the Gaussian kernel G, in place.

    G_ij = exp(-d2_ij / (2 sigma^2)) without scales; with per-point scales of the rows
    (..., R) and of the columns (..., C) ("knn"), G_ij = exp(-d2_ij / (2 s_i s_j)), which is
    symmetric when the rows and the columns are the same points.
    """
    if row_scales is None:
        return d2.mul_(-1.0 / (2.0 * sigma * sigma)).exp_()
    rows = (-0.5 / row_scales).to(d2.dtype).unsqueeze(-1)
    columns = column_scales.reciprocal().to(d2.dtype).unsqueeze(-2)
    return d2.mul_(rows).mul_(columns).exp_()


def diffusion_affinity_(d2: torch.Tensor, sigma: float, scales: torch.Tensor | None = None) -> torch.Tensor:
    """Turn squared distances (..., N, N) into the symmetric diffusion operator A, in place.

    `scales` (..., N): the points' own scales for "knn" (see `gaussian_kernel_`); None: sigma.
    Rows and columns are scaled by deg^-1/2 through broadcasting: no diagonal matrices,
    no extra N x N buffer.
    """
    gaussian_kernel_(d2, sigma, scales, scales)
    inverse_sqrt_degree = d2.sum(dim=-1).rsqrt_()
    d2.mul_(inverse_sqrt_degree.unsqueeze(-1)).mul_(inverse_sqrt_degree.unsqueeze(-2))
    return d2


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


def affinity_of_points(points: torch.Tensor, bandwidth: ResolvedBandwidth | float, dtype: torch.dtype) -> torch.Tensor:
    """The diffusion operator (N, N) of validated points (N, D) in `dtype`, for a resolved bandwidth."""
    check_matrix_fits(1, points.shape[0], dtype, points.device)
    return diffusion_affinity_(pairwise_squared_distances_(points.to(dtype)), *kernel_parameters(bandwidth))

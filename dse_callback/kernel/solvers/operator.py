"""Products A @ X with the diffusion operator, from a stored row block or recomputed rows.

    G_ij = exp(-|z_i - z_j|^2 / (2 sigma^2))  (or exp(-|z_i - z_j|^2 / (2 s_i s_j)) for "knn"),
    deg_i = sum_j G_ij,
    A = D^-1/2 G D^-1/2,  A_ii = 1 / deg_i,  A sqrt(deg) = sqrt(deg).

This process owns rows [lo, hi) of A (all of them without torch.distributed). When that
row block fits the memory budget it is built once and stored; otherwise every product
recomputes row chunks of the kernel from Z, so memory grows as O(N * chunk) instead of
O(N^2). Both build kernel rows with the same code, so they give the same products.
Products run in the working dtype (float32 by default); vectors and sums are float64.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..geometry.affinity import available_memory_bytes, gaussian_kernel_, kernel_parameters
from ..geometry.bandwidth import ResolvedBandwidth
from ..geometry.distances import centered_with_squared_norms, full_precision_matmul, squared_distances_from_rows
from .layout import RowLayout

# Elements in one chunk of kernel rows: a few hundred MB of temporaries at most.
_CHUNK_ELEMENTS = 2**25
# Columns summed in the working dtype before the float64 accumulation (`row_sums_float64`).
_SUM_SEGMENT = 4096
# Share of free memory a stored row block may take when no budget is given.
_MEMORY_SHARE = 0.7


def row_sums_float64(block: torch.Tensor, square: bool = False) -> torch.Tensor:
    """Row sums of a (rows, N) block (of its squares with `square`), accumulated in float64.

    Each run of at most `_SUM_SEGMENT` columns is summed in the block's own dtype (pairwise,
    so a float32 segment is off by about 1e-7 relative, the kernel entries' own rounding),
    and the segments in float64. `block.sum(dim=1, dtype=torch.float64)` gives the same to
    that precision but casts element by element: 20 times slower on a CPU at N = 10,000.
    """
    total = torch.zeros(block.shape[0], dtype=torch.float64, device=block.device)
    for start in range(0, block.shape[1], _SUM_SEGMENT):
        segment = block[:, start : start + _SUM_SEGMENT]
        total += (torch.linalg.vector_norm(segment, dim=1).square() if square else segment.sum(dim=1)).to(torch.float64)
    return total


def memory_budget_bytes(memory_budget: int | None, device: torch.device) -> float:
    """Bytes stored kernels may take: `memory_budget`, or 70% of the device's free memory."""
    return memory_budget if memory_budget is not None else _MEMORY_SHARE * available_memory_bytes(device)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` intra-op threads, then restore the previous count.

    The Krylov bookkeeping (small QR and eigh, (N, p) updates) runs on one thread: on a
    busy CPU, multithreaded LAPACK on a 160 x 160 matrix took 1 s instead of 3 ms. Only
    the O(N^2) products use all threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DiffusionOperator:
    """The symmetric diffusion operator A (N, N) of points Z, as products only.

    Args:
        points: the full Z (N, D) on the compute device, already validated.
        bandwidth: the `ResolvedBandwidth` (or a number sigma > 0); under "knn" its local
            scales (N,) weigh each kernel row and column.
        dtype: dtype of the kernel and its products (float32 or float64).
        layout: this process's rows and collectives.
        memory_budget: bytes the stored row block may take (None: 70% of free memory);
            above it the blocked, matrix-free path recomputes kernel rows per product.

    Attributes:
        n, stored, trace (tr A = sum 1/deg), frobenius_squared (||A||_F^2, known after
        the first product on the blocked path), top_vector (sqrt(deg) / ||sqrt(deg)||,
        the eigenvector of eigenvalue 1), products (columns multiplied so far).
    """

    def __init__(
        self,
        points: torch.Tensor,
        bandwidth: ResolvedBandwidth | float,
        dtype: torch.dtype,
        layout: RowLayout,
        memory_budget: int | None = None,
    ):
        self.layout, self.n, self.dtype, self.device = layout, points.shape[0], dtype, points.device
        self.threads = torch.get_num_threads()
        self._sigma, self._scales = kernel_parameters(bandwidth)
        self._centered, self._squared_norms = centered_with_squared_norms(points.to(dtype))
        itemsize = torch.empty((), dtype=dtype).element_size()
        rows = layout.hi - layout.lo
        budget = memory_budget_bytes(memory_budget, self.device)
        # Every rank stores or none does (free memory differs between devices), so all of
        # them take the same path and run the same sequence of collectives.
        misfits = torch.tensor(float(rows * self.n * itemsize > budget), dtype=torch.float64, device=self.device)
        self.stored = float(layout.sum(misfits)) == 0.0
        chunk_budget = _CHUNK_ELEMENTS if self.stored else max(1, int(budget) // (4 * itemsize))
        self._chunk = max(1, min(rows, chunk_budget // self.n))
        self.products = 0
        local_degree = torch.empty(rows, dtype=torch.float64, device=self.device)
        self._matrix = torch.empty((rows, self.n), dtype=dtype, device=self.device) if self.stored else None
        for start, stop in self._chunks():
            kernel = self._kernel_rows(start, stop)
            local_degree[start - layout.lo : stop - layout.lo] = row_sums_float64(kernel)
            if self.stored:
                self._matrix[start - layout.lo : stop - layout.lo] = kernel
            del kernel
        degree = layout.gather_rows(local_degree)
        self.inverse_sqrt_degree = degree.rsqrt()
        self.trace = float(degree.reciprocal().sum())
        self.top_vector = degree.sqrt() / degree.sqrt().norm()
        self.frobenius_squared: float | None = None
        if self.stored:
            self._normalize_stored()

    def _chunks(self):
        for start in range(self.layout.lo, self.layout.hi, self._chunk):
            yield start, min(start + self._chunk, self.layout.hi)

    def _kernel_rows(self, start: int, stop: int) -> torch.Tensor:
        """G[start:stop] (rows, N) with an exact 1 on the diagonal."""
        block = squared_distances_from_rows(self._centered, self._squared_norms, slice(start, stop))
        block[torch.arange(stop - start, device=self.device), torch.arange(start, stop, device=self.device)] = 0.0
        if self._scales is None:
            return gaussian_kernel_(block, self._sigma)
        return gaussian_kernel_(block, self._sigma, self._scales[start:stop], self._scales)

    def _normalize_stored(self) -> None:
        """Scale the stored rows to A in place, and take ||A||_F^2 from them."""
        column = self.inverse_sqrt_degree.to(self.dtype)
        partial = torch.zeros((), dtype=torch.float64, device=self.device)
        for start, stop in self._chunks():
            rows = self._matrix[start - self.layout.lo : stop - self.layout.lo]
            rows.mul_(column[start:stop, None]).mul_(column[None, :])
            partial += row_sums_float64(rows, square=True).sum()
        self.frobenius_squared = float(self.layout.sum(partial))

    def matmul(self, vectors: torch.Tensor) -> torch.Tensor:
        """A @ X for X (N, p) in float64; returns (N, p) float64 on every rank."""
        self.products += vectors.shape[1]
        with full_precision_matmul(), torch_threads(self.threads):
            if self.stored:
                local = self._matrix @ vectors.to(self.dtype)
            else:
                local = self._blocked_matmul(vectors)
        return self.layout.gather_rows(local.to(torch.float64))

    def _blocked_matmul(self, vectors: torch.Tensor) -> torch.Tensor:
        """Recompute G row chunks: (A X)_rows = s_rows * (G_rows @ (s * X)), s = deg^-1/2."""
        s = self.inverse_sqrt_degree
        scaled = (vectors * s[:, None]).to(self.dtype)
        local = torch.empty((self.layout.hi - self.layout.lo, vectors.shape[1]), dtype=self.dtype, device=self.device)
        want_frobenius = self.frobenius_squared is None
        partial = torch.zeros((), dtype=torch.float64, device=self.device)
        squared_scale = (s * s).to(self.dtype)
        for start, stop in self._chunks():
            kernel = self._kernel_rows(start, stop)
            local[start - self.layout.lo : stop - self.layout.lo] = (kernel @ scaled) * s[start:stop, None].to(
                self.dtype
            )
            if want_frobenius:
                # sum_ij A_ij^2 = sum_i s_i^2 sum_j G_ij^2 s_j^2, fused into the first product.
                row_sums = kernel.square_() @ squared_scale
                partial += (row_sums.to(torch.float64) * s[start:stop].square()).sum()
            del kernel
        if want_frobenius:
            self.frobenius_squared = float(self.layout.sum(partial))
        return local

"""Squared Euclidean distances of point clouds, in pure torch.

    d2_ij = |z_i - z_j|^2 = |z_i|^2 + |z_j|^2 - 2 z_i.z_j    (one GEMM)

Z is centered first and the GEMM is kept out of TF32. Every function accepts a leading
batch dimension: (..., N, D) in, (..., N, N) out; the N x N buffer is allocated once and
transformed in place. The lowest layer of the kernel: it imports nothing of the package.

Cancellation. The formula's error is up to about 9 eps (|z_i|^2 + |z_j|^2) (measured; eps =
2^-24 in float32), whatever d2 is. Centering removes a common offset but not tight clusters
far from the global mean: with centres ~ N(0, 1000^2) in 32 dimensions the terms are ~3e7 and
a cluster's distances ~1e-2, so float32 invents spread inside every cluster (100 clusters of
50 at sigma 10: DSE 7.456 instead of 6.6445, exact and slq alike). Below float64, each entry
with d2_ij < CANCELLATION (|z_i|^2 + |z_j|^2), j != i, is therefore recomputed as a sum of
squared differences, sum_d (z_id - z_jd)^2, which cancels nothing; a row with more than
WHOLE_ROW_SHARE N such entries is recomputed whole by a float64 GEMM of the same centered
points instead, then rounded once. A screen finds the rows (each row's nearest other point,
one read-only pass), an exact test the entries. Every other entry keeps the float32 formula
bit for bit (self-pairs aside, set to 0), with a relative error below 64 x 9 eps = 3.4e-5,
which moves a Gaussian kernel entry by at most 1.3e-5 for any sigma (x e^-x <= 1/e).
float64 input is never recomputed: bit-identical to the plain formula.

When precision still limits the answer:

- float32 points far from the origin are already rounded: a translation of 1e4 puts them on
  a 1e-3 grid. Centering in float32 then rounds each coordinate to eps |z - mean| (exact when
  the offset dominates, as there). A recomputed entry is exact for the centered points, not for
  the data before the cast; pass float64 points when the raw coordinates hold more.
- The recompute has a cost (`benchmarks/bench_distances.py`): a row recomputed whole costs a
  float64 GEMM, about 2x a float32 one on CPUs and data-centre GPUs but up to 64x on consumer
  GPUs; data made of clusters tight and far from their mean, with more than 1/32 of the
  points in each, recompute every row that way.
- The kernel itself is float32 (relative 6e-8 per entry). When its spectrum is a few unit
  eigenvalues and a tail near 1e-6 (clusters tighter than 1e-3 sigma), float32 slq still
  misses by up to 0.01 bits (its control variate takes ||A||_F^2 minus the top lambda^2,
  which cancels); precision="float64" removes that.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

# An entry d2_ij below this share of |z_i|^2 + |z_j|^2 is recomputed (its row is flagged)
# (1/8 flagged 54% of the rows of random conv features of MNIST, 1/64 7%, 1/512 none; every
# choice in [1/512, 1/32] fixed the tight far clusters to 1e-6 bits).
CANCELLATION = 1.0 / 64.0
# A flagged row with more entries to recompute than this share of N is recomputed whole in
# float64, which is cheaper from about 3%: clusters of 2% of N cost 2.5x the plain formula
# entry by entry and 2.9x by whole rows, of 4% 3.8x and 3.1x (N = 4,000, D = 512, one thread).
WHOLE_ROW_SHARE = 1.0 / 32.0
# Elements of one chunk of the row test's and the recompute's temporaries.
_CHUNK_ELEMENTS = 2**22


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


def _row_indices(rows, n: int, device: torch.device) -> torch.Tensor:
    """`rows` (an index tensor or a slice into N points) as an index tensor."""
    if isinstance(rows, slice):
        return torch.arange(n, device=device)[rows]
    return torch.as_tensor(rows, device=device).reshape(-1)


def _cancelled_rows(block: torch.Tensor, squared_norms: torch.Tensor, row_index: torch.Tensor) -> torch.Tensor:
    """Positions in `block` (R, N) of the rows with an entry d2_ij < CANCELLATION (|z_i|^2 + |z_j|^2), j != i.

    One read-only pass takes each row's nearest other point, at d2 = m_i. A row is flagged
    outright when m_i < CANCELLATION |z_i|^2, and cleared when m_i >= CANCELLATION (|z_i|^2
    + min(max_j |z_j|^2, ratio |z_i|^2)): a flagged pair has (|z_i| - |z_j|)^2 <= d2_ij <
    CANCELLATION (|z_i|^2 + |z_j|^2), so |z_j|^2 < ratio |z_i|^2 (`_partner_ratio`: 1.43).
    Only the rows in between get the exact test, in chunks. Sets the self-pairs
    (r, row_index[r]) to 0, their exact value.
    """
    positions = torch.arange(len(row_index), device=block.device)
    block[positions, row_index] = float("inf")
    nearest = block.amin(dim=1)
    row_norms = squared_norms[row_index]
    sure = nearest < CANCELLATION * row_norms
    largest_partner = torch.clamp(row_norms * _partner_ratio(CANCELLATION), max=float(squared_norms.max()))
    candidates = positions[~sure & (nearest < CANCELLATION * (row_norms + largest_partner))]
    flagged = [positions[sure]]
    for chunk in candidates.split(_chunk_rows(block.shape[1])):
        # min_j (d2_ij - CANCELLATION |z_j|^2) < CANCELLATION |z_i|^2; the self-pair holds inf.
        shifted = block[chunk].sub_(squared_norms[None, :], alpha=CANCELLATION)
        flagged.append(chunk[shifted.amin(dim=1) < CANCELLATION * row_norms[chunk]])
    block[positions, row_index] = 0.0
    return torch.cat(flagged)


def _partner_ratio(share: float) -> float:
    """The largest |z_j|^2 / |z_i|^2 of a pair with d2_ij < share (|z_i|^2 + |z_j|^2), 0 < share < 1.

    From (|z_j| - |z_i|)^2 <= d2_ij: the larger root of (1 - share) x^2 - 2 x + (1 - share) = 0, squared.
    """
    return ((1.0 + math.sqrt(share * (2.0 - share))) / (1.0 - share)) ** 2


def _chunk_rows(n: int) -> int:
    """Rows of N columns per chunk of the screen and the recompute: about 2^22 elements."""
    return max(1, _CHUNK_ELEMENTS // n)


def _compensate_cancellation_(block: torch.Tensor, centered: torch.Tensor, squared_norms: torch.Tensor, rows) -> None:
    """Recompute, in place, the entries of a low-precision block where the GEMM formula cancels.

    In each flagged row, the entries with d2_ij < CANCELLATION (|z_i|^2 + |z_j|^2) become
    sums of squared differences, sum_d (z_id - z_jd)^2, which cancel nothing (relative error
    ~1e-7). A row with more such entries than WHOLE_ROW_SHARE of N is recomputed whole by a
    float64 GEMM of the same centered points instead, then rounded once: cheaper there.

    Args:
        block: squared distances (R, N) from the points `rows` to all N, from the GEMM formula.
        centered, squared_norms: the output of `centered_with_squared_norms`, (N, D) and (N,).
        rows: an index tensor or a slice.
    """
    n = centered.shape[0]
    if block.numel() == 0 or n < 2:
        return
    row_index = _row_indices(rows, n, block.device)
    whole = [row_index[:0]]
    for chunk in _cancelled_rows(block, squared_norms, row_index).split(_chunk_rows(n)):
        targets = row_index[chunk]
        shifted = block[chunk].sub_(squared_norms[None, :], alpha=CANCELLATION)
        close = shifted < CANCELLATION * squared_norms[targets, None]  # d2_ij < CANCELLATION (|z_i|^2 + |z_j|^2)
        close[torch.arange(len(chunk), device=block.device), targets] = False
        entry_rows, columns = close.nonzero(as_tuple=True)  # counting from here: a bool sum casts to int64
        many = torch.bincount(entry_rows, minlength=len(chunk)) > WHOLE_ROW_SHARE * n
        whole.append(chunk[many])
        single = ~many[entry_rows]
        _recompute_entries_(block, centered, row_index, chunk[entry_rows[single]], columns[single])
    _recompute_rows_float64_(block, centered, row_index, torch.cat(whole))


def _recompute_entries_(block, centered, row_index, positions: torch.Tensor, columns: torch.Tensor) -> None:
    """block[p, c] = sum_d (z_{row_index[p], d} - z_{c, d})^2 for each (p, c), in chunks of about 2^22 elements."""
    step = _chunk_rows(centered.shape[1])
    for start in range(0, len(positions), step):
        p, c = positions[start : start + step], columns[start : start + step]
        block[p, c] = (centered[row_index[p]] - centered[c]).square_().sum(dim=1)


def _recompute_rows_float64_(block: torch.Tensor, centered: torch.Tensor, row_index: torch.Tensor, positions) -> None:
    """Rows `positions` of the block from a float64 GEMM of the exactly cast centered points, rounded once."""
    if positions.numel() == 0:
        return
    exact = centered.to(torch.float64)
    exact_norms = (exact * exact).sum(dim=-1)
    for chunk in positions.split(_chunk_rows(centered.shape[0])):
        targets = row_index[chunk]
        recomputed = torch.addmm(exact_norms[None, :], exact[targets], exact.T, alpha=-2.0)
        recomputed.add_(exact_norms[targets, None]).clamp_(min=0.0)
        recomputed[torch.arange(len(targets), device=block.device), targets] = 0.0
        block[chunk] = recomputed.to(block.dtype)


def squared_distances_from_rows(centered: torch.Tensor, squared_norms: torch.Tensor, rows) -> torch.Tensor:
    """Squared distances (R, N) from the points `rows` (an index tensor or a slice) to all N.

    Takes the output of `centered_with_squared_norms`; one GEMM that adds |z_j|^2 as it
    writes, then |z_i|^2 and the clamp at 0 in place: three passes over the (R, N) block
    where the plain expression made five, which took a third of the N = 10,000 kernel's time.
    Below float64, the entries where the formula cancels are recomputed (see the module
    docstring), and the self-pairs are exactly 0.
    """
    with full_precision_matmul():
        block = torch.addmm(squared_norms[None, :], centered[rows], centered.T, alpha=-2.0)
    block.add_(squared_norms[rows, None]).clamp_(min=0.0)
    if block.dtype != torch.float64:
        _compensate_cancellation_(block, centered, squared_norms, rows)
    return block


def pairwise_squared_distances_(z: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances with one GEMM: |z_i|^2 + |z_j|^2 - 2 z_i.z_j.

    Z is centered first (see `centered_with_squared_norms`); the result is clamped at 0 and
    its diagonal set to exactly 0. The N x N buffer is transformed in place. Below float64,
    the entries where the formula cancels are recomputed (see the module docstring).

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
    if d2.dtype != torch.float64:
        n = z.shape[-2]
        for matrix, points, norms in zip(
            d2.view(-1, n, n), centered.reshape(-1, n, z.shape[-1]), squared_norms.reshape(-1, n)
        ):  # a view: the recompute writes into d2
            _compensate_cancellation_(matrix, points, norms, slice(None))
    d2.diagonal(dim1=-2, dim2=-1).zero_()
    return d2

"""Discretizing a reference variable for mutual information: labels, bins or clusters.

- Class labels (integers) are used as they are.
- Continuous scalars are min-max scaled and cut into equal bins.
- Vectors (for example flattened images) are grouped by spectral clustering on a
  symmetric k-nearest-neighbour graph.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F

from ..geometry.distances import centered_with_squared_norms, squared_distances_from_rows
from ..validation import as_points, as_tensor, check_choice, check_positive_int
from .binning import bin_rows

REFERENCE_TYPES = ("auto", "labels", "scalars", "vectors")

# Rows per block of the k-nearest-neighbour search: bounds its memory to this many x N.
_KNN_BLOCK_ROWS = 1024


def _knn_neighbours(x: torch.Tensor, n_others: int) -> torch.Tensor:
    """Indices (N, n_others) of each point's nearest other points, in blocks of rows."""
    centered, squared_norms = centered_with_squared_norms(x)
    neighbours = []
    for start in range(0, len(x), _KNN_BLOCK_ROWS):
        d2 = squared_distances_from_rows(centered, squared_norms, slice(start, start + _KNN_BLOCK_ROWS))
        rows = torch.arange(len(d2), device=x.device)
        d2[rows, rows + start] = float("inf")  # a point is not its own neighbour
        neighbours.append(d2.topk(n_others, dim=1, largest=False).indices)
    return torch.cat(neighbours)


def _normalized_knn_affinity(x: torch.Tensor, n_neighbors: int) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """M = D^-1/2 W D^-1/2 with W = (C + C^T) / 2, C the kNN connectivity (self excluded)."""
    n = len(x)
    neighbours = _knn_neighbours(x, n_neighbors - 1).cpu().numpy()
    rows = np.repeat(np.arange(n), neighbours.shape[1])
    connectivity = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, neighbours.ravel())), shape=(n, n))
    affinity = ((connectivity + connectivity.T) * 0.5).tocsr()
    sqrt_degree = np.sqrt(np.asarray(affinity.sum(axis=1)).ravel())
    inverse = scipy.sparse.diags(1.0 / sqrt_degree)
    return (inverse @ affinity @ inverse).tocsr(), sqrt_degree


def _top_eigenvectors(matrix: scipy.sparse.csr_matrix, k: int, seed: int) -> np.ndarray:
    """Eigenvectors (N, k) of the k largest eigenvalues of a symmetric sparse matrix.

    LOBPCG is a block method: unlike single-vector Lanczos (ARPACK), it finds every copy
    of a repeated eigenvalue, which a kNN graph with several connected components has
    (eigenvalue 1, once per component). The seeded start block makes it deterministic.
    """
    start = np.random.RandomState(seed).normal(size=(matrix.shape[0], k))
    with warnings.catch_warnings():
        # A slow last digit is harmless here: labels depend on the subspace, not on 1e-6.
        warnings.filterwarnings("ignore", message=".*(not reaching|Exited).*", category=UserWarning)
        _, vectors = scipy.sparse.linalg.lobpcg(matrix, start, largest=True, tol=1e-6, maxiter=500)
    return vectors


def _assign_by_column_pivoted_qr(embedding: np.ndarray) -> np.ndarray:
    """Cluster labels from a spectral embedding (N, k), with no random initialization.

    The CPQR method of Damle, Minden and Ying (2019): pivoted QR of the embedding's
    transpose picks k well-spread rows; the orthogonal polar factor of those rows rotates
    the embedding so that each cluster aligns with one axis; a point's label is the axis
    where its rotated coordinate is largest in magnitude. Invariant to any orthogonal
    change of basis of the embedding, so eigenvector signs and rotations do not matter.
    """
    k = embedding.shape[1]
    _, _, pivots = scipy.linalg.qr(embedding.T, pivoting=True, mode="economic")
    left, _, right_t = scipy.linalg.svd(embedding[pivots[:k]].T)
    return np.abs(embedding @ (left @ right_t)).argmax(axis=1)


def spectral_clusters(x, n_clusters: int, n_neighbors: int = 10, seed: int = 0):
    """Spectral clustering of points X on a symmetric k-nearest-neighbour graph.

    W = (C + C^T) / 2 where C_ij = 1 if j is among the `n_neighbors` nearest points of i
    (counting i itself, which the Laplacian then ignores); the embedding is the top
    `n_clusters` eigenvectors of D^-1/2 W D^-1/2 divided by sqrt(degree); labels come from
    column-pivoted QR, which is deterministic. The neighbour search runs on X's device.

    Args:
        x: points, shape (N, D) (flatten images first), a tensor or a NumPy array.
        n_clusters: number of clusters k, 2 <= k < N.
        n_neighbors: neighbours per point including itself, 2 <= n_neighbors <= N.
        seed: seed of the eigensolver's start vector.

    Returns:
        int64 labels in [0, k), shape (N,): a tensor on X's device, or a NumPy array for
        NumPy input.

    Example:
        >>> blobs = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 50.0)])
        >>> blobs += np.random.default_rng(0).normal(size=blobs.shape)
        >>> labels = spectral_clusters(blobs, n_clusters=2)
        >>> labels[:20].tolist() == [1] * 20, labels[20:].tolist() == [0] * 20
        (True, True)
    """
    points = as_points(x, name="x")
    n = points.shape[0]
    n_clusters = check_positive_int(n_clusters, "n_clusters", minimum=2)
    if n_clusters >= n:
        raise ValueError(f"n_clusters must be smaller than the number of points N={n}, got {n_clusters}")
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors", minimum=2)
    if n_neighbors > n:
        raise ValueError(f"n_neighbors must be at most N={n}, got {n_neighbors}")
    affinity, sqrt_degree = _normalized_knn_affinity(points, n_neighbors)
    vectors = _top_eigenvectors(affinity, n_clusters, seed)
    embedding = vectors / sqrt_degree[:, None]
    labels = _assign_by_column_pivoted_qr(embedding)
    if isinstance(x, np.ndarray):
        return labels.astype(np.int64)
    return torch.as_tensor(labels, dtype=torch.long, device=points.device)


def downsample_images(images, size: int = 64) -> torch.Tensor:
    """Flatten images (N, C, H, W) to (N, C*h*w), first shrinking any side above `size`.

    The paper clusters inputs at 64 x 64; smaller images (MNIST's 28 x 28) stay as they are.
    Antialiased bilinear resizing keeps the downsampled image faithful.
    """
    batch = as_tensor(images, "images")
    if batch.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(batch.shape)}")
    batch = batch.float()
    height, width = batch.shape[-2:]
    if max(height, width) > size:
        target = (min(height, size), min(width, size))
        batch = F.interpolate(batch, size=target, mode="bilinear", antialias=True, align_corners=False)
    return batch.reshape(len(batch), -1)


def discretize_reference(reference, reference_type: str = "auto", n_clusters: int = 10, seed: int = 0) -> torch.Tensor:
    """Class ids (N,) for a reference variable B.

    Args:
        reference: labels (N,) of an integer or bool dtype (also precomputed cluster ids),
            scalars (N,) or (N, 1) of a floating dtype, or vectors (N, ...) flattened to
            (N, D') with D' > 1.
        reference_type: "auto" (decide as above), "labels", "scalars" or "vectors".
        n_clusters: bins for scalars, clusters for vectors.
        seed: seed of the spectral clustering.

    Returns:
        int64 tensor (N,) on the reference's device.
    """
    check_choice(reference_type, "reference_type", REFERENCE_TYPES)
    values = as_tensor(reference, "reference")
    if values.ndim == 0:
        raise ValueError("reference must have one row per sample, got a scalar")
    flat = values.reshape(len(values), -1)
    if reference_type == "auto":
        if flat.shape[1] > 1:
            reference_type = "vectors"
        elif values.is_floating_point() or values.is_complex():
            reference_type = "scalars"
        else:
            reference_type = "labels"
    if reference_type == "labels":
        if flat.shape[1] != 1:
            raise ValueError(f"labels must have shape (N,) or (N, 1), got {tuple(values.shape)}")
        return flat[:, 0].long()
    n_clusters = check_positive_int(n_clusters, "n_clusters", minimum=2)
    if reference_type == "scalars":
        if flat.shape[1] != 1:
            raise ValueError(f"scalars must have shape (N,) or (N, 1), got {tuple(values.shape)}")
        return bin_rows(as_points(flat, name="reference", min_rows=1), n_clusters)[:, 0]
    return spectral_clusters(flat, n_clusters, seed=seed)

"""Seeded generators of the toy data sets: every function takes a numpy Generator.

>>> g = np.random.default_rng(0)
>>> points, labels = random_walk_tree(branches=3, points_per_branch=4, dim=2, generator=g)
>>> points.shape, np.bincount(labels).tolist()
((12, 2), [4, 4, 4])
"""

from __future__ import annotations

import numpy as np

DISTRIBUTIONS = ("uniform", "normal")


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_fraction(value, name: str) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
    return float(value)


def add_uniform_noise(points: np.ndarray, level: float, generator: np.random.Generator) -> np.ndarray:
    """points + level * U[-1, 1], independently on every coordinate (the paper's noise)."""
    if not level >= 0:
        raise ValueError(f"level must be >= 0; got {level!r}")
    return points + level * generator.uniform(-1.0, 1.0, size=points.shape)


def subspace_points(
    n: int, dim: int, intrinsic_dim: int, distribution: str, generator: np.random.Generator
) -> np.ndarray:
    """N points in D dimensions whose first d coordinates vary and the rest are one constant.

    The first d coordinates are U[-1, 1] ("uniform") or N(0, 1) ("normal"); the other D - d
    all equal one value drawn from N(0, 1), so the data lie in a d-dimensional affine subspace.

    Returns:
        shape (n, dim), float64.
    """
    n, dim = _check_int(n, "n", 1), _check_int(dim, "dim", 1)
    intrinsic_dim = _check_int(intrinsic_dim, "intrinsic_dim", 1)
    if intrinsic_dim > dim:
        raise ValueError(f"intrinsic_dim must be at most dim = {dim}; got {intrinsic_dim}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}; got {distribution!r}")
    points = np.full((n, dim), generator.normal())
    draw = (
        generator.uniform(-1.0, 1.0, (n, intrinsic_dim))
        if distribution == "uniform"
        else generator.normal(size=(n, intrinsic_dim))
    )
    points[:, :intrinsic_dim] = draw
    return points


def random_walk_tree(
    branches: int, points_per_branch: int, dim: int, generator: np.random.Generator, step_std: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A tree of random-walk branches (after PHATE's tree generator; our own code).

    Branch 0 is a walk from the origin: cumulative sums of N(0, step_std^2) steps. Each
    later branch b starts at the last point of a branch drawn uniformly from 0..b-1 and
    walks on from there. Labels are the branch ids.

    Returns:
        points (branches * points_per_branch, dim) and labels (same length,), each id
        appearing exactly points_per_branch times.
    """
    branches = _check_int(branches, "branches", 1)
    points_per_branch = _check_int(points_per_branch, "points_per_branch", 1)
    dim = _check_int(dim, "dim", 1)
    if not step_std > 0:
        raise ValueError(f"step_std must be > 0; got {step_std!r}")
    walks = []
    for branch in range(branches):
        start = np.zeros(dim) if branch == 0 else walks[generator.integers(branch)][-1]
        walks.append(start + np.cumsum(generator.normal(0.0, step_std, (points_per_branch, dim)), axis=0))
    return np.concatenate(walks), np.repeat(np.arange(branches), points_per_branch)


def corrupt_labels(labels: np.ndarray, fraction: float, generator: np.random.Generator) -> np.ndarray:
    """A copy of labels in which a random fraction r of the entries is permuted among themselves.

    floor(r N) positions are drawn without replacement and their labels shuffled, so the
    class sizes stay the same; r = 1 shuffles every label.
    """
    fraction = _check_fraction(fraction, "fraction")
    labels = np.asarray(labels)
    chosen = generator.choice(len(labels), size=int(fraction * len(labels)), replace=False)
    corrupted = labels.copy()
    corrupted[chosen] = labels[generator.permutation(chosen)]
    return corrupted


def gaussian_blobs(
    n: int,
    dim: int,
    generator: np.random.Generator,
    centers: int = 3,
    std: float = 1.0,
    box: tuple[float, float] = (-10.0, 10.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs like scikit-learn's make_blobs: centres U[box]^D, N(centre, std^2 I).

    Points are split among the centres as evenly as possible; returns points (n, dim) and labels (n,).
    """
    n, dim, centers = _check_int(n, "n", 1), _check_int(dim, "dim", 1), _check_int(centers, "centers", 1)
    centres = generator.uniform(box[0], box[1], (centers, dim))
    labels = generator.permutation(np.arange(n) % centers)
    return centres[labels] + generator.normal(0.0, std, (n, dim)), labels


def random_spd_matrix(n: int, generator: np.random.Generator) -> np.ndarray:
    """A random symmetric positive semi-definite matrix M M^T / n, M with N(0, 1) entries (Wishart)."""
    n = _check_int(n, "n", 1)
    factor = generator.normal(size=(n, n))
    return factor @ factor.T / n

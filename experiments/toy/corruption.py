"""`corruption`: DSMI against label corruption on random-walk trees (paper Fig. 3B).

Trees of 2, 5 or 10 branches (100 points each, D = 20); labels are the branch ids, and a
fraction r of them is permuted among themselves. DSMI(Z; labels) (sigma 10, several t)
should start near log2(branches) at r = 0 and fall to about 0 at r = 1; CSMI (2 bins per
dimension) does not track r.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from dse_callback import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from dse_callback.report.figures import pyplot

from ..plot import save_figure
from .common import plot_curve, progress, write_csv
from .data import add_uniform_noise, corrupt_labels, random_walk_tree


@dataclasses.dataclass(frozen=True)
class CorruptionGrid:
    dim: int = 20
    points_per_branch: int = 100
    branch_counts: tuple[int, ...] = (2, 5, 10)
    fractions: tuple[float, ...] = tuple(float(r) for r in np.linspace(0, 1, 20))
    noises: tuple[float, ...] = (0.01, 0.1, 0.5)
    times: tuple[float, ...] = (1, 2, 3, 5)
    sigma: float = 10.0
    repetitions: int = 3

    @classmethod
    def quick(cls) -> CorruptionGrid:
        return cls(fractions=tuple(float(r) for r in np.linspace(0, 1, 6)), noises=(0.1,), times=(1, 5), repetitions=1)


def run_corruption(grid: CorruptionGrid, seed: int = 0) -> list[dict]:
    """All rows: one per (branches, noise, r, repetition, estimator[, t])."""
    settings = [
        (branches, noise, repetition, r)
        for branches in grid.branch_counts
        for noise in grid.noises
        for repetition in range(grid.repetitions)
        for r in grid.fractions
    ]
    rows = []
    for branches, noise, repetition, r in progress(settings, "corruption"):
        # One tree per (branches, noise, repetition): the r sweep corrupts the same tree's labels.
        tree_rng = np.random.default_rng([seed, repetition, branches, int(noise * 1000)])
        points, labels = random_walk_tree(branches, grid.points_per_branch, grid.dim, tree_rng)
        points = add_uniform_noise(points, noise, tree_rng)
        corrupted = corrupt_labels(labels, r, np.random.default_rng([seed, repetition, branches, int(r * 1e6)]))
        common = {"branches": branches, "D": grid.dim, "noise": noise, "r": r, "repetition": repetition}
        for t in grid.times:
            value = diffusion_spectral_mutual_information(points, corrupted, sigma=grid.sigma, t=t, seed=repetition)
            rows.append({**common, "t": t, "estimator": "DSMI", "value": value})
        value = classic_shannon_mutual_information(points, corrupted, bins_per_dim=2, seed=repetition)
        rows.append({**common, "estimator": "CSMI", "value": value})
    return rows


def plot_corruption(rows: list[dict], grid: CorruptionGrid, path: pathlib.Path) -> pathlib.Path:
    """One column per branch count, one row per noise level; x = corrupted fraction r."""
    plt = pyplot()
    n_rows, n_cols = len(grid.noises), len(grid.branch_counts)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 3.2 * n_rows), squeeze=False)
    for col, branches in enumerate(grid.branch_counts):
        for row, noise in enumerate(grid.noises):
            axis = axes[row][col]
            for t in grid.times:
                plot_curve(axis, rows, "r", f"DSMI t={t:g}", estimator="DSMI", branches=branches, noise=noise, t=t)
            plot_curve(axis, rows, "r", "CSMI (2 bins)", "--", estimator="CSMI", branches=branches, noise=noise)
            axis.axhline(math.log2(branches), color="grey", linestyle=":", label="log2 branches")
            axis.set(title=f"{branches} branches, noise {noise:g}", xlabel="label corruption r", ylabel="bits")
    axes[0][n_cols - 1].legend(fontsize=7)
    return save_figure(figure, path, f"DSMI vs label corruption (trees in D = {grid.dim}, sigma = {grid.sigma:g})")


def corruption_study(out: pathlib.Path, grid: CorruptionGrid, seed: int = 0) -> tuple[pathlib.Path, pathlib.Path]:
    rows = run_corruption(grid, seed)
    return write_csv(rows, out / "corruption.csv"), plot_corruption(rows, grid, out / "corruption.png")

"""`dimension`: DSE against intrinsic dimension (paper Fig. 3A) and the matrix-mix panel.

N points in D = 2048 whose first d coordinates vary (U[-1, 1] or N(0, 1)) and the rest are
one constant, plus noise * U[-1, 1] everywhere. DSE (sigma 10, several t) should rise with d
and saturate at log2 N, later for larger t; CSE (2 bins per dimension) sits at log2 N.
Matrix mix: DSE (t = 1) of the eigenvalues of (1 - a) S + a I for a random SPD matrix S.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np
import torch

from dse_callback import classic_shannon_entropy, diffusion_spectrum, entropy_of_spectrum
from dse_callback.report.figures import pyplot

from ..plot import save_figure
from .common import plot_curve, progress, write_csv
from .data import DISTRIBUTIONS, add_uniform_noise, random_spd_matrix, subspace_points


@dataclasses.dataclass(frozen=True)
class DimensionGrid:
    n: int = 500
    dim: int = 2048
    intrinsic_dims: tuple[int, ...] = tuple(int(round(d)) for d in np.linspace(102, 2048, 20))
    distributions: tuple[str, ...] = DISTRIBUTIONS
    noises: tuple[float, ...] = (0.01, 0.1, 0.5)
    times: tuple[float, ...] = (1, 2, 3, 5)
    sigma: float = 10.0
    repetitions: int = 3
    mix_sizes: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    mix_weights: tuple[float, ...] = tuple(float(a) for a in np.linspace(0, 1, 21))

    @classmethod
    def quick(cls) -> DimensionGrid:
        return cls(
            intrinsic_dims=tuple(int(round(d)) for d in np.linspace(102, 2048, 6)),
            distributions=("uniform",),
            noises=(0.01, 0.5),
            repetitions=1,
            mix_sizes=(64, 256, 1024),
            mix_weights=tuple(float(a) for a in np.linspace(0, 1, 6)),
        )


def _matrix_mix_rows(grid: DimensionGrid, seed: int) -> list[dict]:
    rows = []
    for n in grid.mix_sizes:
        spd = random_spd_matrix(n, np.random.default_rng([seed, n]))
        # (1 - a) S + a I has the eigenvalues (1 - a) lambda(S) + a: one eigensolve per n.
        eigenvalues = torch.linalg.eigvalsh(torch.from_numpy(spd))
        for a in grid.mix_weights:
            value = float(entropy_of_spectrum((1 - a) * eigenvalues + a, t=1))
            rows.append({"n": n, "a": a, "estimator": "DSE", "value": value})
    return rows


def run_dimension(grid: DimensionGrid, seed: int = 0) -> list[dict]:
    """All rows of the study: one per (distribution, noise, d, repetition, estimator[, t])."""
    settings = [
        (distribution, noise, d, repetition)
        for distribution in grid.distributions
        for noise in grid.noises
        for d in grid.intrinsic_dims
        for repetition in range(grid.repetitions)
    ]
    rows = []
    for distribution, noise, d, repetition in progress(settings, "dimension"):
        generator = np.random.default_rng([seed, repetition, d, DISTRIBUTIONS.index(distribution), int(noise * 1000)])
        points = add_uniform_noise(subspace_points(grid.n, grid.dim, d, distribution, generator), noise, generator)
        common = {
            "distribution": distribution,
            "D": grid.dim,
            "d": d,
            "n": grid.n,
            "noise": noise,
            "repetition": repetition,
        }
        eigenvalues = diffusion_spectrum(points, sigma=grid.sigma)  # one eigensolve serves every t
        for t in grid.times:
            rows.append(
                {
                    **common,
                    "t": t,
                    "estimator": "DSE",
                    "value": float(entropy_of_spectrum(torch.from_numpy(eigenvalues), t)),
                }
            )
        rows.append({**common, "estimator": "CSE", "value": classic_shannon_entropy(points, bins_per_dim=2)})
    return rows + _matrix_mix_rows(grid, seed)


def plot_dimension(rows: list[dict], grid: DimensionGrid, path: pathlib.Path) -> pathlib.Path:
    """Left: the matrix mix; then one column per distribution, one row per noise level."""
    plt = pyplot()
    n_rows, n_cols = len(grid.noises), 1 + len(grid.distributions)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 3.2 * n_rows), squeeze=False)
    mix = axes[0][0]
    for n in grid.mix_sizes:
        plot_curve(mix, rows, "a", f"n = {n}", n=n, estimator="DSE", d=None)
    mix.set(title="DSE of (1 - a) S + a I", xlabel="a", ylabel="DSE (bits)")
    mix.legend(fontsize=7)
    for row in range(1, n_rows):
        axes[row][0].axis("off")
    ceiling = math.log2(grid.n)
    for col, distribution in enumerate(grid.distributions, start=1):
        for row, noise in enumerate(grid.noises):
            axis = axes[row][col]
            for t in grid.times:
                plot_curve(
                    axis, rows, "d", f"DSE t={t:g}", estimator="DSE", distribution=distribution, noise=noise, t=t
                )
            plot_curve(axis, rows, "d", "CSE (2 bins)", "--", estimator="CSE", distribution=distribution, noise=noise)
            axis.axhline(ceiling, color="grey", linestyle=":", label="log2 N")
            axis.set(title=f"{distribution}, noise {noise:g}", xlabel="intrinsic dimension d", ylabel="bits")
            axis.set_ylim(-0.3, ceiling + 0.5)
    axes[0][n_cols - 1].legend(fontsize=7)
    return save_figure(
        figure, path, f"DSE vs intrinsic dimension (N = {grid.n}, D = {grid.dim}, sigma = {grid.sigma:g})"
    )


def dimension_study(out: pathlib.Path, grid: DimensionGrid, seed: int = 0) -> tuple[pathlib.Path, pathlib.Path]:
    rows = run_dimension(grid, seed)
    return write_csv(rows, out / "dimension.csv"), plot_dimension(rows, grid, out / "dimension.png")

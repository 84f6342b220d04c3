"""`blobs`: MI estimators on Gaussian blobs (CISS Fig. 3).

5,000 points around 3 centres (std 1, centres in (-10, 10)^D); the reference is the blob
label, a fraction r of it permuted among itself. Sweep (a): r from 0 to 1 at D = 20 and
100; sweep (b): r = 0 and D from 20 to 20,000. Estimators: DSMI (sigma = sqrt(D), t = 1),
CSMI with 5, 10 and 100 bins per dimension, KSG (k = 3) and MINE, all in bits (the paper
plots MINE in nats). The true I(X; Y) at r = 0 is log2 3 = 1.58 bits.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from dse_callback import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from dse_callback.report.figures import pyplot

from ..mi_estimators import ksg_mutual_information, mine_mutual_information
from ..plot import save_figure
from .common import plot_curve, progress, timed, write_csv
from .data import corrupt_labels, gaussian_blobs

CSMI_BINS = (5, 10, 100)
ESTIMATORS = ("DSMI", *(f"CSMI_{b}" for b in CSMI_BINS), "KSG", "MINE")
FULL_DIMS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


@dataclasses.dataclass(frozen=True)
class BlobsGrid:
    n: int = 5000
    corruption_dims: tuple[int, ...] = (20, 100)
    fractions: tuple[float, ...] = tuple(float(r) for r in np.linspace(0, 1, 11))
    dims: tuple[int, ...] = FULL_DIMS
    repetitions: int = 1
    mine_epochs: int = 200
    ksg_k: int = 3

    @classmethod
    def quick(cls) -> BlobsGrid:
        return cls(n=1000, fractions=tuple(float(r) for r in np.linspace(0, 1, 6)), dims=FULL_DIMS[:6], mine_epochs=20)


def blob_data(n: int, dim: int, r: float, seed: int, repetition: int) -> tuple[np.ndarray, np.ndarray]:
    """Blobs and their labels with a fraction r permuted, seeded by (seed, repetition, D, r)."""
    # The same blobs for every r of a sweep: only the labels' corruption depends on r.
    points, labels = gaussian_blobs(n, dim, np.random.default_rng([seed, repetition, dim]))
    return points, corrupt_labels(labels, r, np.random.default_rng([seed, repetition, dim, int(r * 1e6)]))


def estimate_mi(
    points: np.ndarray,
    labels: np.ndarray,
    *,
    mine_epochs: int,
    ksg_k: int = 3,
    seed: int = 0,
    solvers: tuple[str, ...] = ("exact",),
) -> list[dict]:
    """Every estimator of I(points; labels) in bits, each with its wall-clock seconds."""
    dim = points.shape[1]
    rows = []
    for solver in solvers:
        value, seconds = timed(
            diffusion_spectral_mutual_information, points, labels, sigma=math.sqrt(dim), t=1, seed=seed, solver=solver
        )
        rows.append({"estimator": "DSMI", "solver": solver, "value": value, "seconds": seconds})
    for bins in CSMI_BINS:
        value, seconds = timed(classic_shannon_mutual_information, points, labels, bins_per_dim=bins, seed=seed)
        rows.append({"estimator": f"CSMI_{bins}", "value": value, "seconds": seconds})
    nats, seconds = timed(ksg_mutual_information, points, labels, k=ksg_k)
    rows.append({"estimator": "KSG", "value": nats / math.log(2), "seconds": seconds})
    (bits, _), seconds = timed(
        mine_mutual_information, points, labels, epochs=mine_epochs, batch_size=min(500, len(points)), seed=seed
    )
    rows.append({"estimator": "MINE", "epochs": mine_epochs, "value": bits, "seconds": seconds})
    return rows


def run_blobs(grid: BlobsGrid, seed: int = 0) -> list[dict]:
    """Rows of both sweeps: one per (sweep, D, r, repetition, estimator)."""
    settings = [("corruption", dim, r) for dim in grid.corruption_dims for r in grid.fractions]
    settings += [("dimension", dim, 0.0) for dim in grid.dims]
    settings = [(sweep, dim, r, repetition) for sweep, dim, r in settings for repetition in range(grid.repetitions)]
    rows = []
    for sweep, dim, r, repetition in progress(settings, "blobs"):
        points, labels = blob_data(grid.n, dim, r, seed, repetition)
        common = {"sweep": sweep, "D": dim, "n": grid.n, "r": r, "repetition": repetition}
        estimates = estimate_mi(points, labels, mine_epochs=grid.mine_epochs, ksg_k=grid.ksg_k, seed=repetition)
        rows += [{**common, **estimate} for estimate in estimates]
    return rows


def plot_blobs(rows: list[dict], grid: BlobsGrid, path: pathlib.Path) -> pathlib.Path:
    """One panel per corruption-sweep dimension (x = r), then the dimension sweep (x = D, log)."""
    plt = pyplot()
    panels = [("corruption", dim) for dim in grid.corruption_dims] + [("dimension", None)]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for axis, (sweep, dim) in zip(axes[0], panels):
        x = "r" if sweep == "corruption" else "D"
        match = {"sweep": sweep, **({"D": dim} if dim else {})}
        for estimator in ESTIMATORS:
            plot_curve(
                axis, rows, x, estimator, "-" if estimator in ("DSMI", "MINE") else "--", estimator=estimator, **match
            )
        axis.axhline(math.log2(3), color="grey", linestyle=":", label="log2 3 (true, r = 0)")
        title = f"D = {dim}: label corruption" if dim else "r = 0: dimension"
        axis.set(title=title, xlabel="label corruption r" if dim else "D", ylabel="MI (bits)")
        if not dim:
            axis.set_xscale("log")
    axes[0][-1].legend(fontsize=7)
    return save_figure(
        figure, path, f"MI estimators on 3 Gaussian blobs (N = {grid.n}; MINE in bits, {grid.mine_epochs} epochs)"
    )


def blobs_study(out: pathlib.Path, grid: BlobsGrid, seed: int = 0) -> tuple[pathlib.Path, pathlib.Path]:
    rows = run_blobs(grid, seed)
    return write_csv(rows, out / "blobs.csv"), plot_blobs(rows, grid, out / "blobs.png")

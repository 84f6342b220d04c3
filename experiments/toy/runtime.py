"""`runtime`: seconds against D for every estimator (CISS Fig. 4), our DSE/DSMI solvers side by side.

On blobs like those of the `blobs` study (r = 0, N = 2,000), each estimator runs once per D and is timed
with a wall clock: DSE and DSMI with every solver in `dse_callback.spectrum.SOLVERS`
(looked up at run time, so approximate solvers appear when they exist), CSE, CSMI with 5,
10 and 100 bins, KSG and MINE (a fixed number of epochs, recorded in the `epochs` column).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

from dse_callback import classic_shannon_entropy, diffusion_spectral_entropy
from dse_callback.kernel.solvers.run import SOLVERS
from dse_callback.report.figures import pyplot

from ..plot import save_figure
from .blobs import FULL_DIMS, blob_data, estimate_mi
from .common import plot_curve, progress, timed, write_csv


@dataclasses.dataclass(frozen=True)
class RuntimeGrid:
    n: int = 2000  # the blobs study uses 5,000; an exact 5,000 x 5,000 eigensolve per solver and D is too slow here
    dims: tuple[int, ...] = FULL_DIMS
    mine_epochs: int = 20
    ksg_k: int = 3
    solvers: tuple[str, ...] | None = None  # None: every registered solver

    @classmethod
    def quick(cls) -> RuntimeGrid:
        return cls(n=1000, dims=FULL_DIMS[:6], mine_epochs=5)


def run_runtime(grid: RuntimeGrid, seed: int = 0) -> list[dict]:
    """Rows: one per (D, estimator, solver) with `seconds` and the estimate as `value`."""
    solvers = tuple(SOLVERS) if grid.solvers is None else grid.solvers
    rows = []
    for dim in progress(grid.dims, "runtime"):
        points, labels = blob_data(grid.n, dim, 0.0, seed, 0)
        common = {"D": dim, "n": grid.n}
        for solver in solvers:
            value, seconds = timed(
                diffusion_spectral_entropy,
                points,
                sigma=math.sqrt(dim),
                seed=seed,
                solver=solver,
                warn_saturation=False,
            )
            rows.append({**common, "estimator": "DSE", "solver": solver, "value": value, "seconds": seconds})
        value, seconds = timed(classic_shannon_entropy, points, bins_per_dim=2)
        rows.append({**common, "estimator": "CSE", "value": value, "seconds": seconds})
        estimates = estimate_mi(
            points, labels, mine_epochs=grid.mine_epochs, ksg_k=grid.ksg_k, seed=seed, solvers=solvers
        )
        rows += [{**common, **estimate} for estimate in estimates]
    return rows


def plot_runtime(rows: list[dict], grid: RuntimeGrid, path: pathlib.Path) -> pathlib.Path:
    """Seconds against D on log-log axes: entropies left, mutual informations right."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    curves = sorted({(row["estimator"], row.get("solver")) for row in rows})
    for estimator, solver in curves:
        axis = left if estimator in ("DSE", "CSE") else right
        label = f"{estimator} ({solver})" if solver else estimator
        if estimator == "MINE":
            label += f", {grid.mine_epochs} epochs"
        timing = [{**row, "value": row["seconds"]} for row in rows]
        plot_curve(axis, timing, "D", label, "-" if solver else "--", estimator=estimator, solver=solver)
    for axis, title in ((left, "entropy"), (right, "mutual information")):
        axis.set(xscale="log", yscale="log", xlabel="D", ylabel="seconds", title=title)
        axis.legend(fontsize=7)
    return save_figure(figure, path, f"Runtime on 3 Gaussian blobs, N = {grid.n} (one run each, this CPU)")


def runtime_study(out: pathlib.Path, grid: RuntimeGrid, seed: int = 0) -> tuple[pathlib.Path, pathlib.Path]:
    rows = run_runtime(grid, seed)
    return write_csv(rows, out / "runtime.csv"), plot_runtime(rows, grid, out / "runtime.png")

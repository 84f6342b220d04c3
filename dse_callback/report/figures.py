"""Figures for TensorBoard and PNG files. matplotlib is optional: `pip install matplotlib`."""

from __future__ import annotations

import numpy as np


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless: training machines rarely have a display
    import matplotlib.pyplot as plt

    return plt


def spectrum_figure(eigenvalues, title: str = "diffusion spectrum", t: float = 1):
    """The sorted |eigenvalue|^t of a diffusion operator, largest first, on a log scale.

    A steep fall means a few directions hold the diffusion (low DSE); a flat one means many
    do (high DSE).
    """
    values = np.sort(np.abs(np.asarray(eigenvalues, dtype=np.float64)) ** t)[::-1]
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.5), dpi=100)
    axis.semilogy(np.arange(1, len(values) + 1), np.maximum(values, 1e-16))
    axis.set_xlabel("index")
    axis.set_ylabel(f"|eigenvalue|^{t:g}")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def information_plane_figure(points, title: str = "information plane"):
    """DSMI(Z; X) against DSMI(Z; Y), one trajectory per representation, coloured by epoch.

    Args:
        points: {name: [(epoch, DSMI(Z; X), DSMI(Z; Y)), ...]}, in epoch order.
        title: the axes' title.

    The paper's block-by-block view: each layer's path shows whether it gains information
    about the labels (up) while it keeps or compresses information about the inputs (right
    or left).

    Example:
        >>> figure = information_plane_figure({"Z": [(0, 0.1, 0.2), (1, 0.4, 0.9)]})
        >>> figure.axes[0].get_xlabel(), figure.axes[1].get_ylabel()
        ('DSMI(Z; X), bits', 'epoch')
        >>> close_figure(figure)
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    epochs = [epoch for trajectory in points.values() for epoch, _, _ in trajectory]
    low, high = (min(epochs), max(epochs)) if epochs else (0, 1)
    scatter = None
    markers = "osD^v<>p*h"
    for index, (name, trajectory) in enumerate(points.items()):
        if not trajectory:
            continue
        epoch, x, y = (np.asarray(column, dtype=np.float64) for column in zip(*trajectory))
        axis.plot(x, y, color="0.6", linewidth=1, zorder=1)
        scatter = axis.scatter(
            x,
            y,
            c=epoch,
            cmap="viridis",
            vmin=low,
            vmax=max(high, low + 1),
            marker=markers[index % len(markers)],
            edgecolors="k",
            linewidths=0.4,
            label=name,
            zorder=2,
        )
    if scatter is not None:
        figure.colorbar(scatter, ax=axis, label="epoch")
        axis.legend(fontsize=8)
    axis.set_xlabel("DSMI(Z; X), bits")
    axis.set_ylabel("DSMI(Z; Y), bits")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def profile_figure(profiles, title: str = "entropy profile"):
    """One layer's entropy profiles over training: epochs across, the scale multiplier c up.

    Args:
        profiles: {epoch: profile}, each with `scales` (K,), the multipliers c of the base
            bandwidth, and `normalized` (K,), DSE / log2 N at c x sigma (an `EntropyProfile`).
        title: the axes' title.

    Each cell is coloured by DSE / log2 N on a fixed 0..1 scale: a column dark at c = 1
    means DSE sits near 0 at the monitor's sigma (the points are close relative to it), a
    bright one near log2 N (far apart); a bandwidth that fits Z shows both ends in the column.

    Example:
        >>> from types import SimpleNamespace
        >>> profile = SimpleNamespace(scales=np.array([0.5, 1.0, 2.0]), normalized=np.array([0.9, 0.5, 0.1]))
        >>> figure = profile_figure({0: profile, 1: profile})
        >>> figure.axes[0].get_yscale(), figure.axes[1].get_ylabel()
        ('log', 'DSE / log2 N')
        >>> close_figure(figure)
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 4), dpi=100)
    epochs = sorted(profiles)
    edges = _edges(np.asarray(epochs, dtype=np.float64), log=False)
    mesh = None
    for column, epoch in enumerate(epochs):
        scales = np.asarray(profiles[epoch].scales, dtype=np.float64)
        values = np.asarray(profiles[epoch].normalized, dtype=np.float64)
        order = np.argsort(scales)
        mesh = axis.pcolormesh(
            edges[column : column + 2],
            _edges(scales[order], log=True),
            values[order][:, None],
            cmap="magma",
            vmin=0.0,
            vmax=1.0,
            shading="flat",
        )
    if mesh is not None:
        figure.colorbar(mesh, ax=axis, label="DSE / log2 N")
    axis.set_yscale("log")
    axis.axhline(1.0, color="0.7", linewidth=0.8, linestyle="--")  # the monitor's own sigma
    axis.set_xlabel("epoch")
    axis.set_ylabel("bandwidth multiplier c (sigma x c)")
    axis.set_title(title)
    figure.tight_layout()
    return figure


def _edges(centres: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (K,) -> (K + 1,): midpoints, in log space for `log`."""
    values = np.log(centres) if log else centres
    if len(values) == 1:  # one column or one scale: a cell of width 1 (a factor of e on a log axis)
        edges = np.array([values[0] - 0.5, values[0] + 0.5])
    else:
        middle = (values[1:] + values[:-1]) / 2
        edges = np.concatenate([[2 * values[0] - middle[0]], middle, [2 * values[-1] - middle[-1]]])
    return np.exp(edges) if log else edges


def close_figure(figure) -> None:
    """Free a figure's memory; pyplot keeps every open figure alive otherwise."""
    pyplot().close(figure)

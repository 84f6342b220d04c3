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


def close_figure(figure) -> None:
    """Free a figure's memory; pyplot keeps every open figure alive otherwise."""
    pyplot().close(figure)

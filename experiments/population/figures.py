"""The population studies' figures: Spearman per family and bandwidth, and accuracy against a measure."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

from dse_callback.report.figures import pyplot

from ..plot import save_figure
from .metrics import MEASURES, SIGMA_MEASURES, families_of

FAMILY_COLOURS = {"mlp": "tab:orange", "cnn": "tab:blue", "vit": "tab:green", "transformer": "tab:green"}
BANDWIDTH_COLOURS = ("tab:grey", "black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def plot_correlations(
    table: Sequence[dict],
    out: str | pathlib.Path,
    keys: Sequence[str] = SIGMA_MEASURES,
    title: str | None = None,
) -> pathlib.Path:
    """One panel per measure of `keys`: Spearman with accuracy per family (x) and bandwidth (colour).

    Filled markers with bars are the Spearman and its bootstrap 95% interval; hollow markers
    the partial Spearman given the mean feature norm.
    """
    plt = pyplot()
    families = list(dict.fromkeys(entry["family"] for entry in table))
    labels = list(dict.fromkeys(entry["sigma"] for entry in table))
    index = {(entry["sigma"], entry["measure"], entry["family"]): entry for entry in table}
    figure, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 4.2), squeeze=False, sharey=True)
    width = 0.8 / max(1, len(labels))
    for axis, key in zip(axes[0], keys):
        for position, label in enumerate(labels):
            colour = BANDWIDTH_COLOURS[position % len(BANDWIDTH_COLOURS)]
            x = [f + (position - (len(labels) - 1) / 2) * width for f in range(len(families))]
            cells = [index[label, key, family] for family in families]
            rho = [cell["spearman"] for cell in cells]
            below = [_gap(r, cell["ci_low"]) for r, cell in zip(rho, cells)]
            above = [_gap(cell["ci_high"], r) for r, cell in zip(rho, cells)]
            axis.errorbar(x, rho, yerr=[below, above], fmt="o", color=colour, capsize=2, markersize=5, label=label)
            axis.scatter(x, [cell["partial_spearman"] for cell in cells], facecolors="none", edgecolors=colour, s=30)
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xticks(range(len(families)))
        axis.set_xticklabels(families)
        axis.set_title(f"{MEASURES[key]} against accuracy", fontsize=10)
        axis.set_ylim(-1.05, 1.05)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("Spearman with accuracy")
    axes[0][-1].annotate(
        "bars: bootstrap 95%\nhollow: partial Spearman\ngiven the mean |z|",
        xy=(0.98, 0.03),
        xycoords="axes fraction",
        ha="right",
        va="bottom",
        fontsize=8,
    )
    axes[0][0].legend(title="sigma", fontsize=8, loc="lower left")
    return save_figure(figure, out, title)


def _gap(high: float, low: float) -> float:
    """An error bar's length, 0 where either end is undefined (fewer than 3 models)."""
    return high - low if math.isfinite(high) and math.isfinite(low) else 0.0


def plot_scatter(
    rows: Sequence[dict],
    out: str | pathlib.Path,
    key: str = "dsmi_y",
    target: str = "accuracy",
    target_label: str = "test accuracy",
    title: str | None = None,
) -> pathlib.Path:
    """One panel per bandwidth: `target` against the measure `key`, points coloured by family."""
    plt = pyplot()
    labels = list(dict.fromkeys(row["sigma"] for row in rows))
    figure, axes = plt.subplots(1, len(labels), figsize=(3.4 * len(labels), 3.4), squeeze=False, sharey=True)
    for axis, label in zip(axes[0], labels):
        for family in families_of(rows):
            chosen = [row for row in rows if row["sigma"] == label and row["family"] == family]
            chosen = [row for row in chosen if math.isfinite(float(row[key]))]
            axis.scatter(
                [float(row[key]) for row in chosen],
                [float(row[target]) for row in chosen],
                s=16,
                alpha=0.8,
                color=FAMILY_COLOURS.get(family),
                label=family,
            )
        axis.set_title(f"sigma = {label}", fontsize=10)
        axis.set_xlabel(f"{MEASURES[key]} (bits)")
        axis.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(target_label)
    axes[0][0].legend(fontsize=8)
    return save_figure(figure, out, title)

"""Measuring a population of models on one probe, and how each measure tracks accuracy.

Shared by the MNIST population study (`dse-experiment population`) and the ImageNet
study (`experiments/population/imagenet.py`): the same measures, the same correlation
table (Pearson and Spearman with p-values, from scipy.stats) and the same scatter figure,
ConvNets and other families coloured apart as in the paper.
"""

from __future__ import annotations

import csv
import math
import pathlib
import warnings
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from dse_callback import (
    classic_shannon_entropy,
    classic_shannon_mutual_information,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    rankme,
)
from dse_callback.report.figures import pyplot

from ..plot import save_figure

# Column name -> label, in the order of the table and the figure's panels.
MEASURES = {
    "dse": "DSE(Z)",
    "dsmi_y": "DSMI(Z; Y)",
    "dsmi_x": "DSMI(Z; X)",
    "cse": "CSE(Z)",
    "csmi_y": "CSMI(Z; Y)",
    "rankme": "RankMe(Z)",
}
FAMILY_COLOURS = {"cnn": "tab:blue", "mlp": "tab:orange", "transformer": "tab:green"}


def resolve_bandwidth(sigma: float | str, width: int) -> float | str:
    """sigma as given, or sqrt(dim Z) for "sqrt_dim" (the paper's ImageNet setting)."""
    if sigma == "sqrt_dim":
        return math.sqrt(width)
    if isinstance(sigma, str):
        return sigma  # "median": resolved by the package
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, 'sqrt_dim' or 'median', got {sigma!r}")
    return float(sigma)


def measure(
    z: torch.Tensor, labels: torch.Tensor, input_clusters: torch.Tensor | None, sigma: float | str = "sqrt_dim", t: float = 1
) -> dict[str, float]:
    """Every measure of MEASURES for representations Z (N, D) of one probe.

    labels (N,) are the classes Y; input_clusters (N,) are the probe's inputs X grouped
    once (by `spectral_clusters`) and shared by every model; None skips DSMI(Z; X).
    """
    z = z.detach().to(torch.float64).cpu()
    bandwidth = resolve_bandwidth(sigma, z.shape[1])
    options = dict(sigma=bandwidth, t=t, max_samples=None)
    with warnings.catch_warnings():
        # Saturation warnings are expected for the weak models; the values are recorded anyway.
        warnings.simplefilter("ignore")
        values = {
            "dse": diffusion_spectral_entropy(z, **options),
            "dsmi_y": diffusion_spectral_mutual_information(z, labels, **options),
            "dsmi_x": math.nan
            if input_clusters is None
            else diffusion_spectral_mutual_information(z, input_clusters, **options),
            "cse": classic_shannon_entropy(z),
            "csmi_y": classic_shannon_mutual_information(z, labels, max_samples=None),
            "rankme": rankme(z),
        }
    values["sigma"] = float(bandwidth) if not isinstance(bandwidth, str) else math.nan
    return values


def correlations(rows: Sequence[dict], target: str = "accuracy") -> list[dict]:
    """Pearson and Spearman correlation of each measure with `target`, over all rows and per family.

    Pooled over families, a correlation can come from the families alone (one family weak
    and low on a measure, the other strong and high), so where the rows hold more than one
    family each family is correlated on its own too. Returns one dict per (group, measure):
    group ("all" or the family), measure, n, pearson_r, pearson_p, spearman_rho, spearman_p
    (NaN where the measure is constant or has fewer than 3 finite values).
    """
    families = sorted({row["family"] for row in rows if "family" in row})
    groups = [("all", list(rows))] + ([(family, [row for row in rows if row.get("family") == family]) for family in families]
                                     if len(families) > 1 else [])  # fmt: skip
    return [_correlate(group, chosen, key, target) for group, chosen in groups for key in MEASURES]


def _correlate(group: str, rows: Sequence[dict], key: str, target: str) -> dict:
    pairs = [(row[key], row[target]) for row in rows if math.isfinite(row.get(key, math.nan))]
    entry = {"group": group, "measure": key, "n": len(pairs)}
    x, y = (np.array(values, dtype=float) for values in zip(*pairs)) if pairs else (np.array([]), np.array([]))
    if len(pairs) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
        entry.update(pearson_r=float(pearson[0]), pearson_p=float(pearson[1]))
        entry.update(spearman_rho=float(spearman[0]), spearman_p=float(spearman[1]))
    else:
        entry.update(pearson_r=math.nan, pearson_p=math.nan, spearman_rho=math.nan, spearman_p=math.nan)
    return entry


def write_csv(rows: Sequence[dict], path: str | pathlib.Path) -> pathlib.Path:
    """Rows (dicts with the same keys) to a CSV file; returns its path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(table: Sequence[dict]) -> str:
    """The correlation table as aligned text (printed by the studies)."""
    lines = [f"{'models':<8}{'measure':<12}{'n':>4}{'Pearson r':>11}{'p':>10}{'Spearman':>10}{'p':>10}"]
    for entry in table:
        lines.append(
            f"{entry['group']:<8}{MEASURES[entry['measure']]:<12}{entry['n']:>4}{entry['pearson_r']:>11.3f}{entry['pearson_p']:>10.2g}"
            f"{entry['spearman_rho']:>10.3f}{entry['spearman_p']:>10.2g}"
        )
    return "\n".join(lines)


def plot_population(rows: Sequence[dict], table: Sequence[dict], out: str | pathlib.Path, target: str = "accuracy",
                    target_label: str = "test accuracy", title: str | None = None) -> pathlib.Path:  # fmt: skip
    """One scatter panel per measure against `target`, points coloured by family."""
    plt = pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(13, 7.5), squeeze=False)
    by_measure = {entry["measure"]: entry for entry in table if entry["group"] == "all"}
    families = sorted({row["family"] for row in rows})
    for axis, (key, label) in zip(axes.flat, MEASURES.items()):
        for family in families:
            chosen = [row for row in rows if row["family"] == family and math.isfinite(row[key])]
            axis.scatter([row[key] for row in chosen], [row[target] for row in chosen], s=22, alpha=0.8,
                         color=FAMILY_COLOURS.get(family), label=family)  # fmt: skip
        entry = by_measure[key]
        within = ", ".join(f"{e['group']} {e['spearman_rho']:.2f}" for e in table if e["measure"] == key and e["group"] != "all")
        axis.set_title(f"{label}\nPearson {entry['pearson_r']:.2f} (p={entry['pearson_p']:.1g}), "
                       f"Spearman {entry['spearman_rho']:.2f} (p={entry['spearman_p']:.1g})"
                       + (f"\nSpearman within family: {within}" if within else ""), fontsize=9)  # fmt: skip
        axis.set_xlabel(label + (" (bits)" if key != "rankme" else ""))
        axis.set_ylabel(target_label)
        axis.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return save_figure(figure, out, title)

"""Measuring a population of models on one probe under several bandwidths, and how each measure tracks accuracy.

Shared by the MNIST population study (`dse-experiment population`) and the ImageNet
study (`experiments/population/imagenet.py`).

Bandwidths are spelled as they are passed (the `sigma` column of every CSV):
`sqrt_dim` (sigma = sqrt(dim Z), the paper's ImageNet setting, computed here per model),
a number such as `10` (the paper's fixed sigma), or a preset of the package (`median`,
`rms`, `knn`), resolved by the package on the model's full probe Z. Each bandwidth is
resolved once per model and shared by all its measures: the DSE call resolves it, and the
two DSMIs get that number (for `knn`, whose kernel has one scale per point, they get the
preset, which the package resolves once on the full Z and reuses for every class subset).

The measures: DSE(Z), DSMI(Z; Y), DSMI(Z; X) depend on sigma; CSE(Z), CSMI(Z; Y) and
RankMe(Z) do not, so they are computed once per model and their rows are repeated, with
identical values, under every bandwidth of the tables (the models CSV repeats them too).
"""

from __future__ import annotations

import csv
import math
import pathlib
import warnings
from collections.abc import Sequence

import torch

from dse_callback import (
    classic_shannon_entropy,
    classic_shannon_mutual_information,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    rankme,
)

from .statistics import bootstrap_interval, partial_spearman, spearman

# Column name -> label, in the order of the tables and the figures.
MEASURES = {
    "dse": "DSE(Z)",
    "dsmi_y": "DSMI(Z; Y)",
    "dsmi_x": "DSMI(Z; X)",
    "cse": "CSE(Z)",
    "csmi_y": "CSMI(Z; Y)",
    "rankme": "RankMe(Z)",
}
SIGMA_MEASURES = ("dse", "dsmi_y", "dsmi_x")  # the others do not depend on the bandwidth
BANDWIDTHS = ("sqrt_dim", "10", "median", "rms", "knn")
PRESETS = ("median", "rms", "knn")
FAMILY_ORDER = ("mlp", "cnn", "vit", "transformer")
CORRELATION_COLUMNS = ("sigma", "measure", "family", "n_models", "spearman", "ci_low", "ci_high", "partial_spearman")


def bandwidth_label(sigma) -> str:
    """A bandwidth as the CSVs spell it: "sqrt_dim", a preset, or a number without a trailing ".0"."""
    if isinstance(sigma, str):
        if sigma in ("sqrt_dim", *PRESETS):
            return sigma
        try:
            sigma = float(sigma)
        except ValueError:
            raise ValueError(f"sigma must be a number > 0, 'sqrt_dim' or one of {PRESETS}, got {sigma!r}") from None
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a number > 0, 'sqrt_dim' or one of {PRESETS}, got {sigma!r}")
    return f"{float(sigma):g}"


def resolve_bandwidth(label: str, width: int) -> float | str:
    """What the package is passed for `label`: sqrt(width) for "sqrt_dim", the number, or the preset."""
    label = bandwidth_label(label)
    if label == "sqrt_dim":
        return math.sqrt(width)
    return label if label in PRESETS else float(label)


def measure(
    z: torch.Tensor,
    labels: torch.Tensor,
    input_clusters: torch.Tensor | None,
    bandwidths: Sequence = BANDWIDTHS,
    t: float = 1,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Every measure of MEASURES for representations Z (N, D) of one probe, under each bandwidth.

    Args:
        z: the representations (N, D); measured in float64 on the CPU.
        labels: the classes Y (N,).
        input_clusters: the probe's inputs X grouped once (by `spectral_clusters`) and
            shared by every model (N,); None skips DSMI(Z; X) (NaN).
        bandwidths: the bandwidths, as `bandwidth_label` accepts them.
        t: the diffusion time.

    Returns:
        (shared, per_bandwidth): `shared` holds the sigma-free measures (cse, csmi_y,
        rankme), `feature_norm` (the mean of |z_i|) and `rms_radius` (the root-mean-square
        distance of the z_i to their mean); `per_bandwidth` holds one dict per bandwidth with
        `sigma` (its label), `sigma_value` (the resolved number; the median of the per-point
        scales for knn), `scale` (rms_radius / sigma_value), dse, dsmi_y and dsmi_x.
    """
    z = z.detach().to(torch.float64).cpu()
    centred = z - z.mean(0)
    shared = {
        "feature_norm": float(z.norm(dim=1).mean()),
        "rms_radius": float(centred.square().sum(1).mean().sqrt()),
    }
    per_bandwidth = []
    with warnings.catch_warnings():
        # Saturation warnings are expected for some models and bandwidths; the values are recorded anyway.
        warnings.simplefilter("ignore")
        shared.update(
            cse=classic_shannon_entropy(z),
            csmi_y=classic_shannon_mutual_information(z, labels, max_samples=None),
            rankme=rankme(z),
        )
        for label in dict.fromkeys(bandwidth_label(sigma) for sigma in bandwidths):
            bandwidth = resolve_bandwidth(label, z.shape[1])
            estimate = diffusion_spectral_entropy(z, sigma=bandwidth, t=t, max_samples=None, return_details=True)
            # Resolved once: the DSMIs reuse the number, except knn's per-point scales (resolved on the full Z).
            reused = bandwidth if label == "knn" else float(estimate.sigma)
            options = dict(sigma=reused, t=t, max_samples=None)
            per_bandwidth.append(
                {
                    "sigma": label,
                    "sigma_value": float(estimate.sigma),
                    "scale": shared["rms_radius"] / float(estimate.sigma),
                    "dse": float(estimate.value),
                    "dsmi_y": diffusion_spectral_mutual_information(z, labels, **options),
                    "dsmi_x": math.nan
                    if input_clusters is None
                    else diffusion_spectral_mutual_information(z, input_clusters, **options),
                }
            )
    return shared, per_bandwidth


def families_of(rows: Sequence[dict]) -> list[str]:
    """The families present, in FAMILY_ORDER first, then any others alphabetically."""
    present = {row["family"] for row in rows}
    return [family for family in FAMILY_ORDER if family in present] + sorted(present - set(FAMILY_ORDER))


def correlation_table(
    rows: Sequence[dict],
    target: str = "accuracy",
    control: str = "feature_norm",
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """Spearman of each measure with `target`, per bandwidth and family, in the long format of the CSV.

    `rows` are the long model rows (one per model and bandwidth, with `model`, `family`,
    `sigma`, the measures, `target` and `control`). For every bandwidth x measure x group
    (each family, then every model pooled as family "all") one dict with the columns of
    CORRELATION_COLUMNS: n_models (the models with a finite value), spearman, its
    percentile bootstrap 95% interval (`resamples` resamples of the models, seeded by
    `seed`, the same draws for every measure) and the partial Spearman given `control`.

    Pooled over families, a correlation can come from the families alone (one family weak
    and low on a measure, another strong and high), which is why every family is
    correlated on its own too. The sigma-free measures are computed once per group and
    repeated under every bandwidth.
    """
    labels = list(dict.fromkeys(row["sigma"] for row in rows))
    groups = [(family, [row for row in rows if row["family"] == family]) for family in families_of(rows)]
    groups.append(("all", list(rows)))
    shared_rows = {}
    table = []
    for label in labels:
        for key in MEASURES:
            for family, members in groups:
                if key in SIGMA_MEASURES or (key, family) not in shared_rows:
                    chosen = [row for row in members if row["sigma"] == label]
                    entry = _correlate(chosen, key, target, control, resamples, seed)
                    if key not in SIGMA_MEASURES:
                        shared_rows[key, family] = entry
                else:
                    entry = shared_rows[key, family]
                table.append({"sigma": label, "measure": key, "family": family, **entry})
    return table


def _correlate(rows: Sequence[dict], key: str, target: str, control: str, resamples: int, seed: int) -> dict:
    x = [float(row[key]) for row in rows]
    y = [float(row[target]) for row in rows]
    c = [float(row[control]) for row in rows]
    finite = sum(math.isfinite(a) and math.isfinite(b) for a, b in zip(x, y))
    low, high = bootstrap_interval(x, y, resamples=resamples, seed=seed)
    return {
        "n_models": finite,
        "spearman": spearman(x, y),
        "ci_low": low,
        "ci_high": high,
        "partial_spearman": partial_spearman(x, y, c),
    }


def format_table(table: Sequence[dict], keys: Sequence[str] = ("dsmi_y", "dse")) -> str:
    """Spearman [95% interval] (partial) per bandwidth and family for the measures `keys`, as aligned text."""
    families = list(dict.fromkeys(entry["family"] for entry in table))
    labels = list(dict.fromkeys(entry["sigma"] for entry in table))
    index = {(entry["sigma"], entry["measure"], entry["family"]): entry for entry in table}
    lines = []
    for key in keys:
        lines.append(f"{MEASURES[key]}: Spearman with accuracy [bootstrap 95%] (partial given the mean feature norm)")
        lines.append(f"{'sigma':<10}" + "".join(f"{family:>28}" for family in families))
        for label in labels:
            cells = [index[label, key, family] for family in families]
            lines.append(
                f"{label:<10}"
                + "".join(
                    f"{e['spearman']:>8.2f} [{e['ci_low']:5.2f},{e['ci_high']:5.2f}] ({e['partial_spearman']:5.2f})"
                    for e in cells
                )
            )
        lines.append("")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict], path: str | pathlib.Path, columns: Sequence[str] | None = None) -> pathlib.Path:
    """Rows (dicts with the same keys) to a CSV file, in `columns` order if given; returns its path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns or rows[0]), extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    return path

"""One probe's metric work spread over the ranks, every rank ending with the same values.

The flow, on every rank r of P once the representations are gathered (`sharding.py`):

1. `work_items(names, metrics)`: one item per (layer, metric), in a fixed order;
2. `assign_work(costs, P)`: an owner rank per item, from a rough relative cost (an N x N
   eigensolve for DSE, (R + 1) smaller ones per class for DSMI, next to nothing for the
   binning and RankMe baselines); every rank computes the same assignment;
3. rank r measures only the items it owns (`Measurer` on that subset, so failures stay
   one warning and NaN);
4. `combine_owned`: the values, each layer's bandwidth and each metric's error bar and
   solver (coded as a bit set) as one small float64 tensor, and the eigenvalues behind
   each DSE (for the figures) as a second, all-gathered once each; every rank returns
   the same `Measured`, so every rank logs identical values.

With one process this is `Measurer.measure`. No Lightning here; the collective is passed in.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .measurement import Measured, Measurer
from .sharding import AllGather, assign_work, combine_owned

# Relative cost of each metric at the same N: DSE is one N x N eigensolve; DSMI solves
# (R + 1) matrices of about N / K per class (K classes), so about 6 / K^2 of DSE with K = 10,
# plus the per-class distance blocks; CSE, CSMI and RankMe are cheap next to them.
# The solvers a metric's "solver" detail can name, joined by "+" for DSMI ("exact+slq").
SOLVER_NAMES = ("exact", "slq", "topk")
METRIC_COSTS = {"dse": 1.0, "dsmi_y": 0.3, "dsmi_x": 0.3, "cse": 0.02, "csmi_y": 0.05, "csmi_x": 0.05, "rankme": 0.05}


def work_items(names: Sequence[str], metrics: Sequence[str]) -> list[tuple[str, str]]:
    """Every (layer name, metric) pair, layers first, in the given orders.

    Example:
        >>> work_items(["Z"], ["dse", "dsmi_y"])
        [('Z', 'dse'), ('Z', 'dsmi_y')]
    """
    return [(name, metric) for name in names for metric in metrics]


def measure_shared(
    measurer: Measurer,
    representations: dict[str, torch.Tensor],
    labels: torch.Tensor | None,
    input_clusters: torch.Tensor | None,
    labels_by_name: dict[str, str] | None,
    rank: int,
    world_size: int,
    all_gather: AllGather | None,
) -> Measured:
    """Every metric of every layer, computed once across the ranks and known to all.

    Args:
        measurer: the monitor's measurer (its metrics, sigma, t, precision, seed, warner).
        representations: {name: Z (N, D)}, the same full Z on every rank.
        labels, input_clusters: (N,) or None, the same on every rank.
        labels_by_name: {name: "layer (side)"} for warnings.
        rank, world_size: this process's place; all_gather: tensor -> (P, *shape).

    Returns:
        A `Measured`, identical on every rank.
    """
    if world_size == 1:
        return measurer.measure(representations, labels, input_clusters, labels_by_name)
    items = work_items(list(representations), measurer.metrics)
    owners = assign_work([METRIC_COSTS[metric] for _, metric in items], world_size)
    mine = [item for item, owner in zip(items, owners) if owner == rank]
    local = Measured()
    for name, z in representations.items():
        metrics = tuple(metric for layer, metric in mine if layer == name)
        if metrics:
            part = _subset(measurer, metrics).measure({name: z}, labels, input_clusters, labels_by_name)
            local.values[name] = part.values[name]
            local.sigma.update(part.sigma)
            local.spectra.update(part.spectra)
            local.details.update(part.details)
    device = next(iter(representations.values())).device
    packed = torch.full((len(items), 4), math.nan, dtype=torch.float64, device=device)
    for row, (name, metric) in enumerate(items):
        if (name, metric) in mine:
            details = local.details.get(name, {})
            packed[row, 0] = local.values[name][metric]
            packed[row, 1] = local.sigma.get(name, math.nan)
            packed[row, 2] = details.get(f"{metric}_stderr", math.nan)
            packed[row, 3] = _solver_code(details.get(f"{metric}_solver"))
    combined = combine_owned(packed, owners, rank, world_size, all_gather).cpu()
    measured = measurer.nan_values(representations)
    for row, (name, metric) in enumerate(items):
        measured.values[name][metric] = float(combined[row, 0])
        if math.isnan(measured.sigma[name]):
            measured.sigma[name] = float(combined[row, 1])
        if not math.isnan(combined[row, 3]):
            solver = _solver_name(int(combined[row, 3]))
            measured.details.setdefault(name, {}).update(
                {f"{metric}_solver": solver, f"{metric}_stderr": float(combined[row, 2])}
            )
    measured.spectra = _combined_spectra(items, owners, local, representations, rank, world_size, all_gather)
    return measured


def _solver_code(solver: str | None) -> float:
    """A solver detail as a bit set over `SOLVER_NAMES` (NaN when there is none)."""
    if solver is None:
        return math.nan
    return float(sum(1 << i for i, name in enumerate(SOLVER_NAMES) if name in solver.split("+")))


def _solver_name(code: int) -> str:
    return "+".join(name for i, name in enumerate(SOLVER_NAMES) if code >> i & 1)


def _subset(measurer: Measurer, metrics: tuple[str, ...]) -> Measurer:
    """The same measurer (settings and warner) restricted to `metrics`."""
    return Measurer(
        metrics, measurer.sigma, measurer.t, measurer.precision, measurer.seed, measurer.n_input_clusters, measurer.warn,
        measurer.solver,
    )


def _combined_spectra(items, owners, local: Measured, representations, rank, world_size, all_gather) -> dict:
    """The eigenvalues behind each DSE, from its owner, NaN-padded to N for the gather."""
    dse = [(name, owner) for (name, metric), owner in zip(items, owners) if metric == "dse"]
    if not dse:
        return {}
    n = max(len(z) for z in representations.values())
    device = next(iter(representations.values())).device
    packed = torch.full((len(dse), n), math.nan, dtype=torch.float64, device=device)
    for row, (name, owner) in enumerate(dse):
        if owner == rank and name in local.spectra:
            values = torch.as_tensor(local.spectra[name], dtype=torch.float64)
            packed[row, : len(values)] = values.to(device)
    combined = combine_owned(packed, [owner for _, owner in dse], rank, world_size, all_gather).cpu().numpy()
    spectra = {}
    for row, (name, _) in enumerate(dse):
        values = combined[row][~np.isnan(combined[row])]
        if len(values):
            spectra[name] = values
    return spectra

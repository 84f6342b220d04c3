"""One probe's metric work spread over the ranks, every rank ending with the same values.

The flow, on every rank r of P once the representations are gathered (`sharding.py`):

1. `work_items(names, metrics)`: one item per (layer, metric), in a fixed order;
2. `assign_work(costs, P)`: an owner rank per item, from a rough relative cost (an N x N
   eigensolve for DSE, (R + 1) smaller ones per class for DSMI, next to nothing for the
   binning and RankMe baselines); every rank computes the same assignment;
3. a DSE that runs "slq" is computed by every rank together (`sharded_dse_items`,
   `Measurer(shard_dse=True)`): each rank builds its row block of the kernel and the
   solver joins the products with collectives on the session's group
   (`layout.process_group`), so N can outgrow one device; a failure there on any rank (its
   own, or a collective that timed out) is agreed on by every rank (`ProbeSession.agree`):
   all log NaN, each warns once;
4. rank r measures only the other items it owns (`Measurer` on that subset, so failures
   stay one warning and NaN), at the bandwidths it resolved in step 3 (each layer's
   bandwidth is resolved at most once per rank and probe);
5. `combine_owned`: the values, each layer's bandwidth and each metric's error bar and
   solver (coded as a bit set) as one small float64 tensor, and the eigenvalues behind
   each DSE (for the figures) as a second, all-gathered once each and agreed on; every
   rank returns the same `Measured`, so every rank logs identical values.

`shared_clusters` computes X's clusters on the primary process and sends them to the
others, before step 3 (its failures join step 3's agreement). With one process this is
`Measurer.measure`. No Lightning here; the collectives are the session's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..distributed.groups import distributed_world_size, plain_session
from ..distributed.session import ProbeSession, StepFailed
from ..distributed.sharding import AllGather, assign_work, combine_owned
from ..kernel.solvers.layout import process_group
from ..kernel.solvers.run import resolved_solver
from .measurer import DSEMonitorWarning, Measured, Measurer
from .metrics import METRIC_SPECS

# The solvers a metric's "solver" detail can name, joined by "+" for DSMI ("exact+slq").
SOLVER_NAMES = ("exact", "slq", "topk")
_TIMEOUT_HINT = " A rank that timed out waited collective_timeout seconds for another (which failed, or was slower)."


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
    all_gather: AllGather | ProbeSession | None,
) -> Measured:
    """Every metric of every layer, computed once across the ranks and known to all.

    Args:
        measurer: the monitor's measurer (its metrics, sigma, t, precision, seed, warner).
        representations: {name: Z (N, D)}, the same full Z on every rank.
        labels, input_clusters: (N,) or None, the same on every rank.
        labels_by_name: {name: "layer (side)"} for warnings.
        rank, world_size: this process's place.
        all_gather: the tracker's `ProbeSession` (bounded waits, the sharded solve on its
            group), or a plain all-gather, tensor (M, ...) -> (P, M, ...) (the solve on the default group).

    Returns:
        A `Measured`, identical on every rank (all NaN after a failure on any rank).
    """
    if world_size == 1:
        return measurer.measure(representations, labels, input_clusters, labels_by_name)
    device = next(iter(representations.values())).device
    session = all_gather if isinstance(all_gather, ProbeSession) else None
    session = session or plain_session(rank, world_size, all_gather, measurer.warn, device)
    items = work_items(list(representations), measurer.metrics)
    sharded = sharded_dse_items(measurer, representations, world_size)
    owners = assign_work([0.0 if item in sharded else METRIC_SPECS[item[1]].cost for item in items], world_size)
    owners = [0 if item in sharded else owner for item, owner in zip(items, owners)]  # every rank has these
    mine = [item for item, owner in zip(items, owners) if owner == rank]
    local = Measured()
    # The sharded DSEs first, on every rank in the same order: their solver runs collectives.
    sharding = [(name, representations[name]) for name, _ in sharded]
    session.attempt(_sharded_dses, measurer, sharding, labels, input_clusters, labels_by_name, local, session.group)
    if not session.agree("measurement", _TIMEOUT_HINT):
        return measurer.nan_values(representations)
    for name, z in representations.items():
        metrics = tuple(metric for layer, metric in mine if layer == name and (layer, metric) not in sharded)
        if metrics:
            part = _subset(measurer, metrics).measure(
                {name: z}, labels, input_clusters, labels_by_name, local.bandwidths
            )
            _merge(local, part, name)
    measured = session.attempt(_combined, measurer, items, owners, mine, local, representations, session)
    if not session.agree("measurement", _TIMEOUT_HINT):
        return measurer.nan_values(representations)
    measured.bandwidths = local.bandwidths  # this rank's, for `Measurer.complete`
    return measured


def shared_clusters(measurer: Measurer, result, labels, current, session: ProbeSession) -> torch.Tensor | None:
    """X's clusters (N,): `current` once known; else clustered on the primary process from the
    gathered inputs and sent to every rank (None where the clustering or the exchange failed)."""
    if result.inputs is None or current is not None:
        return current
    clusters = measurer.cluster_inputs(result.inputs, labels) if session.is_primary else None
    return session.from_primary(clusters, len(result.inputs))


def _sharded_dses(measurer: Measurer, sharding, labels, input_clusters, labels_by_name, local, group) -> None:
    """Every rank's part of the sharded DSEs, into `local`, on `group`.

    The measurer would turn a failure into NaN and a warning on this rank alone; here it
    raises `StepFailed` instead, so that the agreement tells every rank.
    """
    failures = []

    def record(reason: str, message: str, category=DSEMonitorWarning) -> None:
        if reason.startswith("dse:"):  # the DSE raised (here, or a collective timed out)
            failures.append(StepFailed(reason[4:], message.removeprefix("DSEMonitor ").removesuffix("; logging NaN")))
        else:
            measurer.warn(reason, message, category)

    sharded = _subset(measurer, ("dse",), warn=record, shard_dse=True)
    with process_group(group):
        for name, z in sharding:
            part = sharded.measure({name: z}, labels, input_clusters, labels_by_name, local.bandwidths)
            if failures:
                raise failures[0]
            _merge(local, part, name)


def _combined(measurer: Measurer, items, owners, mine, local: Measured, representations, session) -> Measured:
    """Every item's value, bandwidth, error bar, solver and spectrum from its owner rank."""
    rank, world_size = session.rank, session.world_size
    device = next(iter(representations.values())).device
    packed = torch.full((len(items), 4), math.nan, dtype=torch.float64, device=device)
    for row, (name, metric) in enumerate(items):
        if (name, metric) in mine:
            details = local.details.get(name, {})
            packed[row, 0] = local.values[name][metric]
            packed[row, 1] = local.sigma.get(name, math.nan)
            packed[row, 2] = details.get(f"{metric}_stderr", math.nan)
            packed[row, 3] = _solver_code(details.get(f"{metric}_solver"))
    combined = combine_owned(packed, owners, rank, world_size, session.all_gather).cpu()
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
    measured.spectra = _combined_spectra(items, owners, local, representations, rank, world_size, session.all_gather)
    return measured


def _merge(into: Measured, part: Measured, name: str) -> None:
    into.values.setdefault(name, {}).update(part.values[name])
    into.sigma.update(part.sigma)
    into.bandwidths.update(part.bandwidths)
    into.spectra.update(part.spectra)
    into.details.setdefault(name, {}).update(part.details.get(name, {}))


def sharded_dse_items(
    measurer: Measurer, representations: dict[str, torch.Tensor], world_size: int
) -> list[tuple[str, str]]:
    """The ("layer", "dse") items every rank computes together, each building its kernel rows.

    Those whose DSE runs "slq" ("slq", or "auto" above the exact size of the device) under an
    initialized torch.distributed group of several processes: N past one device's memory
    needs all of them. An exact eigensolve cannot be split by rows, so smaller DSEs keep one
    owner rank.
    """
    if world_size == 1 or "dse" not in measurer.metrics or distributed_world_size() == 1:
        return []
    return [
        (name, "dse")
        for name, z in representations.items()
        if resolved_solver(measurer.settings.solver, len(z), z.device) == "slq"
    ]


def _solver_code(solver: str | None) -> float:
    """A solver detail as a bit set over `SOLVER_NAMES` (NaN when there is none)."""
    if solver is None:
        return math.nan
    return float(sum(1 << i for i, name in enumerate(SOLVER_NAMES) if name in solver.split("+")))


def _solver_name(code: int) -> str:
    return "+".join(name for i, name in enumerate(SOLVER_NAMES) if code >> i & 1)


def _subset(measurer: Measurer, metrics: tuple[str, ...], warn=None, shard_dse: bool = False) -> Measurer:
    """The same measurer (settings, and its warner unless `warn` is given) restricted to `metrics`."""
    return Measurer(dataclasses.replace(measurer.settings, metrics=metrics), warn or measurer.warn, shard_dse=shard_dse)


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

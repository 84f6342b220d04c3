"""The metrics a probe can measure, as one table of specs, and the keys they are logged under.

Each `MetricSpec` says everything about one metric: its flat key (`dse/{name}`,
`dsmi/{name}_Y`, ...), what it needs besides Z (labels, or the inputs' clusters), whether it
reports a solver and an error bar, its rough cost next to a DSE at the same N (which orders
the ranks' work), the TensorBoard chart it joins, and how it is computed from one `MetricRun`.
`resolve_layers` turns `layer`/`name` or `layers` into {name: dotted layer name}; beside the
metrics, every probe logs `dse/{name}_scale` (RMS radius of Z / sigma); `timing_keys`
gives the probe's own keys (`dse/probe_seconds`, `dse/epoch`, suffixed by a monitor name
other than "Z"). No Lightning here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..kernel.entropy import diffusion_spectral_entropy, saturation_message
from ..kernel.errors import BandwidthWarning
from ..kernel.geometry.bandwidth import ResolvedBandwidth
from ..kernel.mutual_info import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from ..kernel.rankme import rankme
from ..kernel.shannon import classic_shannon_entropy
from ..kernel.solvers.layout import split_layout

# DSMI's random subsets per class (the paper's R).
_REPETITIONS = 5


@dataclass(frozen=True)
class MetricRun:
    """One metric of one representation: Z (N, D), its reference (labels or input clusters,
    (N,), when the metric needs one), the bandwidth resolved once on Z (a `ResolvedBandwidth`,
    shared by every metric of the layer) and the measurer's settings. `where` names the
    layer in warnings; `warn(reason, message, category)` warns once."""

    z: torch.Tensor
    reference: torch.Tensor | None
    sigma: ResolvedBandwidth
    t: float
    precision: str | None
    solver: str
    seed: int
    shard_dse: bool
    where: str
    warn: Callable


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, its solver and error bar (bits) where it reports them, and for DSE
    the largest eigenvalues behind it (for the spectrum figure)."""

    value: float
    solver: str | None = None
    stderr: float | None = None
    spectrum: np.ndarray | None = None


def _dse(run: MetricRun) -> MetricValue:
    """DSE(Z); warns once per layer and end when it sits at one (the bandwidth does not fit Z)."""
    rows = split_layout(len(run.z)) if run.shard_dse else None
    estimate = diffusion_spectral_entropy(
        run.z[rows.lo : rows.hi] if rows else run.z,
        run.sigma,
        run.t,
        max_samples=None,
        precision=run.precision,
        solver=run.solver,
        seed=run.seed,
        warn_saturation=False,
        return_details=True,
        distributed=run.shard_dse,
    )
    message = saturation_message(estimate.value, len(run.z), run.sigma.value)
    if message:
        end = "floor" if estimate.value < math.log2(len(run.z)) / 2 else "ceiling"  # once per layer and end
        run.warn(f"saturation:{run.where}:{end}", f"{message} (DSEMonitor layer {run.where!r})", BandwidthWarning)
    spectrum = estimate.top_eigenvalues.double().cpu().numpy()
    return MetricValue(estimate.value, estimate.solver, estimate.stderr, spectrum)


def _dsmi(run: MetricRun) -> MetricValue:
    estimate = diffusion_spectral_mutual_information(
        run.z,
        run.reference,
        sigma=run.sigma,
        t=run.t,
        reference_type="labels",
        precision=run.precision,
        solver=run.solver,
        return_details=True,
        n_repetitions=_REPETITIONS,
        seed=run.seed,
        max_samples=None,
    )
    return MetricValue(estimate.value, estimate.solver, estimate.stderr)


def _csmi(run: MetricRun) -> MetricValue:
    value = classic_shannon_mutual_information(
        run.z, run.reference, reference_type="labels", n_repetitions=_REPETITIONS, seed=run.seed, max_samples=None
    )
    return MetricValue(value)


@dataclass(frozen=True)
class MetricSpec:
    """Everything about one metric; see the module docstring."""

    name: str
    key: str
    needs: str | None
    reports_solver: bool
    cost: float
    chart: str
    compute: Callable[[MetricRun], MetricValue]


# Costs: DSE is one N x N eigensolve; DSMI solves (R + 1) matrices of about N / K per class
# (K classes), about 6 / K^2 of DSE with K = 10, plus the per-class distance blocks; the
# binning baselines and RankMe are cheap next to them.
METRIC_SPECS = {
    spec.name: spec
    for spec in (
        MetricSpec("dse", "dse/{}", None, True, 1.0, "entropy", _dse),
        MetricSpec("dsmi_y", "dsmi/{}_Y", "labels", True, 0.3, "information", _dsmi),
        MetricSpec("dsmi_x", "dsmi/{}_X", "input_clusters", True, 0.3, "information", _dsmi),
        MetricSpec(
            "cse", "cse/{}", None, False, 0.02, "entropy", lambda run: MetricValue(classic_shannon_entropy(run.z))
        ),
        MetricSpec("csmi_y", "csmi/{}_Y", "labels", False, 0.05, "information", _csmi),
        MetricSpec("csmi_x", "csmi/{}_X", "input_clusters", False, 0.05, "information", _csmi),
        MetricSpec("rankme", "rankme/{}", None, False, 0.05, "rank", lambda run: MetricValue(rankme(run.z))),
    )
}
METRICS = tuple(METRIC_SPECS)


def check_metrics(metrics) -> tuple[str, ...]:
    """A non-empty tuple of known metric names."""
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [metric for metric in metrics if metric not in METRIC_SPECS]
    if not metrics or unknown:
        raise ValueError(f"metrics must be a non-empty selection of {METRICS}, got {metrics!r}")
    return metrics


def metrics_needing(metrics, need: str) -> list[str]:
    """The metrics among `metrics` that need `need` ("labels" or "input_clusters").

    Example:
        >>> metrics_needing(["dse", "dsmi_y", "csmi_y"], "labels")
        ['dsmi_y', 'csmi_y']
    """
    return [metric for metric in metrics if METRIC_SPECS[metric].needs == need]


# The key of the bandwidth diagnostic: the RMS radius of Z divided by the resolved sigma.
SCALE_KEY = "dse/{}_scale"


def metric_keys(names) -> dict[str, dict[str, str]]:
    """{name: {metric: key}} for every representation name, and {name: {"scale": key}} of the
    bandwidth diagnostic (logged with every probe, whatever the metrics).

    Example:
        >>> metric_keys(["Z"])["Z"]["dsmi_y"], metric_keys(["Z"])["Z"]["scale"]
        ('dsmi/Z_Y', 'dse/Z_scale')
    """
    keys = {name: {metric: spec.key.format(name) for metric, spec in METRIC_SPECS.items()} for name in names}
    for name in names:
        keys[name]["scale"] = SCALE_KEY.format(name)
    return keys


def timing_keys(name: str) -> dict[str, str]:
    """The keys of the probe's wall time and of the epochs trained, for a monitor `name`."""
    suffix = "" if name == "Z" else f"_{name}"
    return {"probe_seconds": f"dse/probe_seconds{suffix}", "epoch": f"dse/epoch{suffix}"}


def flat_values(keys, timing_keys_: dict[str, str], measured, epoch: int, probe_seconds: float) -> dict[str, float]:
    """{key: value} of one probe (a `Measured`): every metric of every representation, its
    scale diagnostic, the probe's time and epoch."""
    flat = {
        keys[name][metric]: value for name, by_metric in measured.values.items() for metric, value in by_metric.items()
    }
    flat.update({keys[name]["scale"]: measured.scale.get(name, math.nan) for name in measured.values})
    flat[timing_keys_["probe_seconds"]] = probe_seconds
    flat[timing_keys_["epoch"]] = float(epoch)
    return flat


def resolve_layers(layer: str | None, layers, name: str) -> dict[str, str | None]:
    """{representation name: dotted layer name or None} from `layer`/`name` or `layers`."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    if layers is None:
        return {name: layer}
    if layer is not None:
        raise ValueError(f"pass either layer={layer!r} or layers=..., not both")
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list or a dict of dotted layer names, got the string {layers!r}; use layer=")
    resolved = dict(layers) if isinstance(layers, dict) else {dotted: dotted for dotted in layers}
    if not resolved or len(resolved) != len(list(layers)):
        raise ValueError(f"layers must name at least one layer, each once, got {layers!r}")
    for key, dotted in resolved.items():
        if not isinstance(key, str) or not key or "/" in key or not isinstance(dotted, str):
            raise ValueError(f"layers entries must be dotted names (and names without '/'), got {key!r}: {dotted!r}")
    return resolved

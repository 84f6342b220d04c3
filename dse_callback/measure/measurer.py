"""Measuring a set of representations: every selected metric of every watched layer.

Flow of a probe through this module (after the forward pass):

1. `Measurer.cluster_inputs(inputs, labels)` (once per run, until it succeeds): the probe's
   inputs, downsampled, grouped by spectral clustering into as many clusters as classes.
   The clusters are the reference variable X of DSMI(Z; X) at every later probe.
2. `Measurer.measure(representations, labels, input_clusters)`: for each layer's Z (N, D)
   (float32/64), the bandwidth (fixed, or the median distance), then each metric: DSE
   (also keeping the spectrum for the figure), DSMI(Z; Y), DSMI(Z; X), CSE, CSMI and RankMe.
   DSE and DSMI run with `solver` ("auto": exact up to a size per device, stochastic
   Lanczos quadrature above); the solver that ran and the error bar (standard error,
   bits; 0 when exact) go to `Measured.details` as `{metric}_solver`, `{metric}_stderr`.

Nothing here raises: non-finite activations, a failing clustering or a failing metric give
one warning per reason (`OnceWarner`) and NaN, because a metric must never end a long
training run. A pure function of its inputs: no Lightning, no loggers, no files.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..kernel.entropy import diffusion_spectral_entropy, saturation_message
from ..kernel.errors import BandwidthWarning
from ..kernel.geometry.bandwidth import median_bandwidth
from ..kernel.mutual_info import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from ..kernel.rankme import rankme
from ..kernel.reference.clustering import spectral_clusters
from ..kernel.shannon import classic_shannon_entropy
from ..kernel.solvers.layout import split_layout
from ..kernel.solvers.run import SOLVERS

METRICS = ("dse", "dsmi_y", "dsmi_x", "cse", "csmi_y", "csmi_x", "rankme")
NEEDS_LABELS = ("dsmi_y", "csmi_y")
NEEDS_INPUT_CLUSTERS = ("dsmi_x", "csmi_x")
WITH_DETAILS = ("dse", "dsmi_y", "dsmi_x")  # the metrics that report their solver and error bar
# DSMI reports its solver and error bar where the installed math has `return_details`.
_DSMI_DETAILS = "return_details" in inspect.signature(diffusion_spectral_mutual_information).parameters


class DSEMonitorWarning(UserWarning):
    """A probe could not measure something; the run goes on and NaN is logged."""


class OnceWarner:
    """Warns once per reason for the life of a monitor, so a long run's log stays readable."""

    def __init__(self):
        self.seen: set[str] = set()

    def __call__(self, reason: str, message: str, category=DSEMonitorWarning) -> None:
        if reason not in self.seen:
            self.seen.add(reason)
            warnings.warn(message, category, stacklevel=3)


def check_metrics(metrics) -> tuple[str, ...]:
    """A non-empty tuple of known metric names."""
    metrics = tuple(metrics)
    unknown = [metric for metric in metrics if metric not in METRICS]
    if not metrics or unknown:
        raise ValueError(f"metrics must be a non-empty selection of {METRICS}, got {metrics!r}")
    return metrics


@dataclass
class Measured:
    """The values of one probe.

    Attributes:
        values: {name: {metric: value}}; NaN where a metric failed.
        sigma: {name: the bandwidth used}.
        spectra: {name: the eigenvalues behind DSE (the largest ones)}, where DSE was measured.
        details: {name: {"{metric}_solver": solver that ran, "{metric}_stderr": bits}}.
    """

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    sigma: dict[str, float] = field(default_factory=dict)
    spectra: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, dict] = field(default_factory=dict)


class Measurer:
    """Computes the selected metrics of representations; see the module docstring.

    Args:
        metrics: names from `METRICS`.
        sigma: bandwidth, or "median" (the median pairwise distance of each Z).
        t: diffusion time.
        precision: eigensolve precision ("float64", "float32", None for per device).
        seed: seeds the DSMI subsets and the clustering.
        n_input_clusters: clusters of X; None for the number of classes (10 without labels).
        warn: the `OnceWarner` shared with the rest of the monitor.
        solver: the DSE and DSMI solver, a name in `spectrum.SOLVERS` ("auto", "exact", "slq").
        shard_dse: DSE runs across the initialized torch.distributed default group
            (`distributed=True`): every rank calls `measure` with the same full Z and passes
            its contiguous row block to the solver, which builds only those kernel rows.
    """

    def __init__(self, metrics, sigma=10.0, t=1, precision=None, seed=0, n_input_clusters=None, warn=None, solver="auto",
                 shard_dse=False):  # fmt: skip
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}")
        self.solver = solver
        self.shard_dse = shard_dse
        self.metrics = check_metrics(metrics)
        self.sigma = sigma
        self.t = t
        self.precision = precision
        self.seed = seed
        self.n_input_clusters = n_input_clusters
        self.warn = warn or OnceWarner()

    @property
    def needs_input_clusters(self) -> bool:
        return any(metric in NEEDS_INPUT_CLUSTERS for metric in self.metrics)

    def cluster_inputs(self, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Cluster labels (N,) of the probe's inputs as rows (N, F), or None after a warning."""
        n_clusters = self.n_input_clusters
        if n_clusters is None:
            n_clusters = len(torch.unique(labels)) if labels is not None else 10
        n_clusters = max(2, min(n_clusters, len(inputs) - 1))
        try:
            return spectral_clusters(inputs, n_clusters, seed=self.seed).cpu()
        except Exception as error:  # DSMI(Z; X) then logs NaN; clustering is retried next probe
            self.warn(
                f"clustering:{type(error).__name__}",
                f"DSEMonitor could not cluster the probe's inputs ({type(error).__name__}: {error})",
            )
            return None

    def nan_values(self, names) -> Measured:
        """All NaN: what a probe whose forward pass failed reports."""
        nan = float("nan")
        return Measured({name: {metric: nan for metric in self.metrics} for name in names}, {name: nan for name in names})

    def measure(
        self,
        representations: dict[str, torch.Tensor],
        labels: torch.Tensor | None,
        input_clusters: torch.Tensor | None,
        labels_by_name: dict[str, str] | None = None,
    ) -> Measured:
        """Every selected metric of every representation {name: Z (N, D)}.

        Args:
            representations: {name: Z}, float32 or float64.
            labels: the probe's labels (N,), or None.
            input_clusters: the inputs' cluster labels (N,), or None.
            labels_by_name: {name: "layer (side)"}, used in warnings.
        """
        measured = self.nan_values(representations)
        for name, z in representations.items():
            where = (labels_by_name or {}).get(name, name)
            z = z.detach()
            n_bad = int((~torch.isfinite(z).all(dim=1)).sum())
            if n_bad:
                self.warn(
                    f"non-finite:{name}",
                    f"{n_bad} of {len(z)} probe activations of layer {where!r} are NaN or Inf (is training "
                    "diverging?); DSEMonitor logs NaN while they are",
                )
                continue
            with torch.inference_mode():
                sigma = median_bandwidth(z.double()) if self.sigma == "median" else self.sigma
                measured.sigma[name] = sigma
                for metric in self.metrics:
                    try:
                        if metric == "dse":
                            value, measured.spectra[name], details = self._dse(z, sigma, where)
                        else:
                            value, details = self._metric(metric, z, sigma, labels, input_clusters)
                        measured.values[name][metric] = value
                        measured.details.setdefault(name, {}).update(details)
                    except Exception as error:  # a metric must never kill a long run
                        self.warn(
                            f"{metric}:{type(error).__name__}",
                            f"DSEMonitor could not compute {metric} of {where!r} ({type(error).__name__}: {error}); "
                            "logging NaN",
                        )
        return measured

    def _dse(self, z: torch.Tensor, sigma: float, where: str) -> tuple[float, np.ndarray, dict]:
        """DSE(Z), the largest eigenvalues behind it and its solver details; warns once per
        layer when DSE sits at an end."""
        rows = split_layout(len(z)) if self.shard_dse else None
        estimate = diffusion_spectral_entropy(
            z[rows.lo : rows.hi] if rows else z, sigma, self.t, max_samples=None, precision=self.precision,
            solver=self.solver, seed=self.seed, warn_saturation=False, return_details=True, distributed=self.shard_dse,
        )
        message = saturation_message(estimate.value, len(z), sigma)
        if message:
            self.warn(f"saturation:{where}", f"{message} (DSEMonitor layer {where!r})", BandwidthWarning)
        spectrum = estimate.top_eigenvalues.double().cpu().numpy()
        return estimate.value, spectrum, {"dse_solver": estimate.solver, "dse_stderr": estimate.stderr}

    def _metric(self, metric: str, z: torch.Tensor, sigma: float, labels, input_clusters) -> tuple[float, dict]:
        """The value of one metric other than DSE, and its solver details (DSMI)."""
        common = dict(n_repetitions=5, seed=self.seed, max_samples=None)
        if metric == "cse":
            return classic_shannon_entropy(z), {}
        if metric == "rankme":
            return rankme(z), {}
        if metric in NEEDS_INPUT_CLUSTERS and input_clusters is None:
            raise RuntimeError("the probe's inputs have not been clustered")
        if metric in NEEDS_LABELS and labels is None:
            raise RuntimeError("the probe has no labels")
        reference = labels if metric in NEEDS_LABELS else input_clusters
        reference = reference.to(z.device)
        if not metric.startswith("dsmi"):
            return classic_shannon_mutual_information(z, reference, reference_type="labels", **common), {}
        if not _DSMI_DETAILS:
            value = diffusion_spectral_mutual_information(
                z, reference, sigma=sigma, t=self.t, reference_type="labels", precision=self.precision, **common
            )
            return value, {}
        estimate = diffusion_spectral_mutual_information(
            z, reference, sigma=sigma, t=self.t, reference_type="labels", precision=self.precision,
            solver=self.solver, return_details=True, **common,
        )
        return estimate.value, {f"{metric}_solver": estimate.solver, f"{metric}_stderr": estimate.stderr}

"""Measuring a set of representations: every selected metric of every watched layer.

Flow of a probe through this module (after the forward pass):

1. `Measurer.cluster_inputs(inputs, labels)` (once per run, until it succeeds): the probe's
   inputs, downsampled, grouped by spectral clustering into as many clusters as classes.
   The clusters are the reference variable X of DSMI(Z; X) at every later probe.
2. `Measurer.measure(representations, labels, input_clusters)`: for each layer's Z (N, D)
   (float32/64), the bandwidth, resolved once on Z (`resolve_bandwidth`: a number as it is,
   a preset such as "rms" or "knn" from the points) and passed, resolved, to every metric,
   so DSE and each DSMI (all its class subsets) share it; the scale diagnostic (RMS radius
   of Z / sigma); then each metric: DSE (also keeping the spectrum for the figure),
   DSMI(Z; Y), DSMI(Z; X), CSE, CSMI and RankMe; with `profile=True`, the entropy profile
   (DSE / log2 N over multiples of that bandwidth).
   DSE and DSMI run with `solver` ("auto": exact up to a size per device, stochastic
   Lanczos quadrature above); the solver that ran and the error bar (standard error,
   bits; 0 when exact) go to `Measured.details` as `{metric}_solver`, `{metric}_stderr`.

Nothing here raises: non-finite activations, a failing clustering or a failing metric give
one warning per reason (`OnceWarner`) and NaN, because a metric must never end a long
training run. A pure function of its inputs: no Lightning, no loggers, no files.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..kernel.geometry.bandwidth import ResolvedBandwidth, resolve_bandwidth
from ..kernel.geometry.scales import rms_radius
from ..kernel.profile import diffusion_entropy_profile
from ..kernel.reference.clustering import spectral_clusters
from .metrics import METRIC_SPECS, MetricRun
from .settings import MeasureSettings


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


@dataclass
class Measured:
    """The values of one probe.

    Attributes:
        values: {name: {metric: value}}; NaN where a metric failed.
        sigma: {name: the bandwidth used, as a number} (for "knn", the median local scale).
        scale: {name: RMS radius of Z / sigma}.
        spectra: {name: the eigenvalues behind DSE (the largest ones)}, where DSE was measured.
        details: {name: {"{metric}_solver": solver that ran, "{metric}_stderr": bits}}.
        profiles: {name: EntropyProfile}, with `profile=True`.
        bandwidths: {name: the `ResolvedBandwidth` this process resolved}, which later passes
            over the same Z reuse (`measure(bandwidths=...)`, `complete`) instead of resolving again.
    """

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    sigma: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    spectra: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, dict] = field(default_factory=dict)
    profiles: dict[str, object] = field(default_factory=dict)
    bandwidths: dict[str, ResolvedBandwidth] = field(default_factory=dict)


class Measurer:
    """Computes the selected metrics of representations; see the module docstring.

    Args:
        settings: the metrics, bandwidth, diffusion time, solver, precision, seed and the
            number of input clusters (`MeasureSettings`).
        warn: the `OnceWarner` shared with the rest of the monitor.
        shard_dse: DSE runs across the initialized torch.distributed default group
            (`distributed=True`): every rank calls `measure` with the same full Z and passes
            its contiguous row block to the solver, which builds only those kernel rows.
        profiles: `measure` also computes each layer's entropy profile. The tracker's own
            measurer takes `settings.profile`; the per-rank subsets of a shared measurement
            leave it False, and `complete` adds the profiles on the primary process after.
    """

    def __init__(
        self,
        settings: MeasureSettings | None = None,
        warn: OnceWarner | None = None,
        shard_dse: bool = False,
        profiles: bool = False,
    ):
        self.settings = settings or MeasureSettings()
        self.metrics = self.settings.metrics
        self.warn = warn or OnceWarner()
        self.shard_dse = shard_dse
        self.profiles = profiles

    @property
    def needs_input_clusters(self) -> bool:
        return any(METRIC_SPECS[metric].needs == "input_clusters" for metric in self.metrics)

    def cluster_inputs(self, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Cluster labels (N,) of the probe's inputs as rows (N, F), or None after a warning."""
        n_clusters = self.settings.n_input_clusters
        if n_clusters is None:
            n_clusters = len(torch.unique(labels)) if labels is not None else 10
        n_clusters = max(2, min(n_clusters, len(inputs) - 1))
        try:
            return spectral_clusters(inputs, n_clusters, seed=self.settings.seed).cpu()
        except Exception as error:  # DSMI(Z; X) then logs NaN; clustering is retried next probe
            self.warn(
                f"clustering:{type(error).__name__}",
                f"DSEMonitor could not cluster the probe's inputs ({type(error).__name__}: {error})",
            )
            return None

    def nan_values(self, names) -> Measured:
        """All NaN: what a probe whose forward pass failed reports."""
        nan = float("nan")
        return Measured(
            {name: {metric: nan for metric in self.metrics} for name in names},
            {name: nan for name in names},
            {name: nan for name in names},
        )

    def measure(
        self,
        representations: dict[str, torch.Tensor],
        labels: torch.Tensor | None,
        input_clusters: torch.Tensor | None,
        labels_by_name: dict[str, str] | None = None,
        bandwidths: dict[str, ResolvedBandwidth] | None = None,
    ) -> Measured:
        """Every selected metric of every representation {name: Z (N, D)}.

        Args:
            representations: {name: Z}, float32 or float64.
            labels: the probe's labels (N,), or None.
            input_clusters: the inputs' cluster labels (N,), or None.
            labels_by_name: {name: "layer (side)"}, used in warnings.
            bandwidths: {name: bandwidth} already resolved on these Z by an earlier pass of
                the same probe (a shared measurement's); the others are resolved here.
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
                bandwidth = (bandwidths or {}).get(name)
                if bandwidth is None:
                    bandwidth = self._guarded("bandwidth", where, self.bandwidth_of, z)
                if bandwidth is None:
                    continue
                measured.bandwidths[name] = bandwidth
                self.diagnose(measured, name, z, bandwidth, where, profile=self.profiles)
                references = {"labels": labels, "input_clusters": input_clusters}
                for metric in self.metrics:
                    run = (measured, name, metric, z, bandwidth, references, where)
                    self._guarded(metric, where, self._measure_one, *run)
        return measured

    def bandwidth_of(self, z: torch.Tensor) -> ResolvedBandwidth:
        """The settings' sigma resolved on Z (N, D), once per probe and layer: the same
        resolved bandwidth then serves DSE, DSMI and the profile (on every rank, which all
        hold the full Z, so every rank gets the same one). A preset is resolved in float64."""
        sigma = self.settings.sigma
        return resolve_bandwidth(z if isinstance(sigma, (int, float)) else z.double(), sigma)

    def diagnose(self, measured: Measured, name: str, z, bandwidth: ResolvedBandwidth, where: str, profile: bool):
        """Record sigma and the scale ratio of one layer, and its entropy profile if `profile`."""
        measured.sigma[name] = bandwidth.value
        measured.scale[name] = rms_radius(z) / bandwidth.value
        if profile:
            self._profile(measured, name, z, bandwidth, where)

    def complete(self, measured: Measured, representations: dict[str, torch.Tensor], primary: bool) -> None:
        """Add what a measurement shared over ranks leaves out: the scale ratio of each layer
        with a bandwidth (every rank, from the agreed sigma and the full Z they all hold), and,
        with `profiles`, the entropy profiles (on the `primary` process, which draws them, at
        the bandwidth it resolved already if it measured that layer). A no-op after `measure`
        on one process, which recorded both already."""
        for name, z in representations.items():
            sigma = measured.sigma.get(name, math.nan)
            if not math.isfinite(sigma):
                continue  # no bandwidth: the layer failed everywhere
            if not math.isfinite(measured.scale.get(name, math.nan)):
                measured.scale[name] = rms_radius(z) / sigma
            if self.profiles and primary and name not in measured.profiles:
                with torch.inference_mode():
                    bandwidth = measured.bandwidths.get(name)
                    if bandwidth is None:
                        bandwidth = self._guarded("bandwidth", name, self.bandwidth_of, z.detach())
                    if bandwidth is not None:
                        self._profile(measured, name, z.detach(), bandwidth, name)

    def _profile(self, measured: Measured, name: str, z, bandwidth: ResolvedBandwidth, where: str) -> None:
        """DSE / log2 N at multiples of the layer's bandwidth (`diffusion_entropy_profile`)."""
        settings = self.settings
        options = dict(sigma=bandwidth, t=settings.t, seed=settings.seed, precision=settings.precision)
        profile = self._guarded("profile", where, diffusion_entropy_profile, z, **options)
        if profile is not None:
            measured.profiles[name] = profile

    def _guarded(self, what: str, where: str, function, *args, **kwargs):
        """`function(*args, **kwargs)`, or None after one warning per kind of failure."""
        try:
            return function(*args, **kwargs)
        except Exception as error:  # a metric must never kill a long run
            self.warn(
                f"{what}:{type(error).__name__}",
                f"DSEMonitor could not compute {what} of {where!r} ({type(error).__name__}: {error}); logging NaN",
            )
            return None

    def _measure_one(self, measured: Measured, name: str, metric: str, z, bandwidth, references, where: str) -> None:
        """One metric of one representation, into `measured`; raises on failure."""
        spec = METRIC_SPECS[metric]
        reference = references.get(spec.needs) if spec.needs else None
        if spec.needs and reference is None:
            missing = "labels" if spec.needs == "labels" else "clustered inputs (the clustering failed or has not run)"
            raise RuntimeError(f"the probe has no {missing}")
        settings = self.settings
        result = spec.compute(
            MetricRun(
                z,
                None if reference is None else reference.to(z.device),
                bandwidth,
                settings.t,
                settings.precision,
                settings.solver,
                settings.seed,
                self.shard_dse,
                where,
                self.warn,
            )
        )
        measured.values[name][metric] = result.value
        if spec.reports_solver:
            measured.details.setdefault(name, {}).update(
                {f"{metric}_solver": result.solver, f"{metric}_stderr": result.stderr}
            )
        if result.spectrum is not None:
            measured.spectra[name] = result.spectrum

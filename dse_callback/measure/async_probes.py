"""Probes measured off the training path: the tracker's glue to the `AsyncMetrics` worker.

Flow of an asynchronous probe (primary process only; no collectives in the worker):

1. `submit(epoch, representations, labels, inputs, context)`, right after the probe's
   synchronous forward pass: detached copies of Z, the labels and (until X is clustered)
   the inputs are queued as one job, and training goes on.
2. The job, in the worker thread: the inputs clustered once (the clusters are kept for
   the next jobs, which run after it), then every metric of every layer
   (`Measurer.measure`), flattened to {"name|metric": value, "name|sigma": bandwidth,
   "name|scale": its ratio, "name|spectrum": eigenvalues, "name|details": solvers and
   error bars, "name|profile": the entropy profile} so a failure can give NaN for every value.
3. `collect(wait)`: the finished probes, oldest first, as `FinishedProbe`s (the epoch, a
   `Measured`, the worker's seconds and the context given to `submit`); `wait=True`
   first waits for all of them (before `fit` returns, a checkpoint, or after an exception).

No Lightning here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .async_worker import AsyncMetrics, snapshot
from .measurer import Measured, Measurer

_SEPARATOR = "|"


@dataclass
class FinishedProbe:
    """One asynchronous probe's result."""

    epoch: int
    measured: Measured
    seconds: float
    context: dict[str, Any]


class AsyncProbes:
    """Queues probes' measurements on one background thread; see the module docstring.

    Args:
        measurer: the tracker's measurer (its metrics and settings).
        names: the representations' names, for the NaN fallback.
        input_clusters: X's clusters when known already (from a checkpoint).
    """

    def __init__(self, measurer: Measurer, names, input_clusters: torch.Tensor | None = None):
        self.measurer = measurer
        self.names = list(names)
        self.input_clusters = input_clusters  # written by the worker, read after `collect`
        self.worker = AsyncMetrics()

    def submit(self, epoch: int, representations, labels, inputs, context: dict[str, Any]) -> None:
        """Queue the measurement of one probe's gathered representations."""
        value_names = [_key(name, m) for name in self.names for m in (*self.measurer.metrics, "sigma", "scale")]
        needs_inputs = self.input_clusters is None and self.measurer.needs_input_clusters
        arguments = snapshot((representations, labels, inputs if needs_inputs else None))
        self.worker.submit(epoch, self._job, *arguments, names=value_names, context=context)

    def collect(self, wait: bool = False) -> list[FinishedProbe]:
        """Finished probes, oldest first; with `wait`, after every queued one has finished."""
        results = self.worker.drain() if wait else self.worker.ready()
        return [FinishedProbe(r.key, self._unflatten(r.values), r.seconds, r.context) for r in results]

    def close(self) -> list[FinishedProbe]:
        """Wait for every queued probe, stop the thread and return what was not collected."""
        finished = self.collect(wait=True)
        self.worker.close()
        return finished

    def _job(self, representations, labels, inputs) -> dict[str, Any]:
        if inputs is not None and self.input_clusters is None:
            self.input_clusters = self.measurer.cluster_inputs(inputs, labels)
        measured = self.measurer.measure(representations, labels, self.input_clusters)
        flat: dict[str, Any] = {}
        for name, values in measured.values.items():
            flat.update({_key(name, metric): value for metric, value in values.items()})
            flat[_key(name, "sigma")] = measured.sigma.get(name, math.nan)
            flat[_key(name, "scale")] = measured.scale.get(name, math.nan)
        flat.update({_key(name, "spectrum"): spectrum for name, spectrum in measured.spectra.items()})
        flat.update({_key(name, "details"): details for name, details in measured.details.items()})
        flat.update({_key(name, "profile"): profile for name, profile in measured.profiles.items()})
        return flat

    def _unflatten(self, flat: dict[str, Any]) -> Measured:
        measured = self.measurer.nan_values(self.names)
        for key, value in flat.items():
            name, what = key.rsplit(_SEPARATOR, 1)
            if what == "sigma":
                measured.sigma[name] = value
            elif what == "scale":
                measured.scale[name] = value
            elif what == "profile":
                measured.profiles[name] = value
            elif what == "spectrum":
                measured.spectra[name] = value
            elif what == "details":
                measured.details[name] = value
            else:
                measured.values[name][what] = value
        return measured


def _key(name: str, what: str) -> str:
    return f"{name}{_SEPARATOR}{what}"

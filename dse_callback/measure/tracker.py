"""DSETracker: the probe-and-measure core, for a plain PyTorch loop or under a callback.

One `measure(model, epoch)`: on first use `check_model` finds the watched layers,
`prepare_probe` fixes the probe set and checks its batches, and `dry_run` forwards a few
of its rows (configuration errors raise there). Then each process forwards its share of
the probe with every layer hooked, under the `Runtime`'s precision glue, and the shares
are gathered in probe order (`distributed.probe_shares`); a failed forward anywhere gives
one warning and NaN. The inputs are clustered once for DSMI(Z; X), and every metric of
every layer is measured, spread over the processes (`shared`), or queued on a background
thread with `async_metrics=True` (`collect()` hands those back). The history gains one row
per layer, written by the primary process; the flat {key: value} dict is returned. The
options live in `settings`, one declaration each. No Lightning here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..distributed.groups import ProbeGroups
from ..distributed.probe_shares import Runtime, forward_shares
from ..probe.batches import BatchReader
from ..probe.capture import find_layer, layer_label
from ..probe.forward_pass import dry_run, module_device
from ..probe.probe_set import ProbeSet, as_dataset
from ..report.history import history_rows
from .async_probes import AsyncProbes, FinishedProbe
from .measurer import Measured, Measurer, OnceWarner
from .metrics import flat_values, metric_keys, metrics_needing, resolve_layers, timing_keys
from .records import ProbeRecords
from .settings import MeasureSettings, ProbeSettings, settings_doc, split_settings, with_settings
from .shared import measure_shared, shared_clusters

__all__ = ["DSETracker", "Runtime"]


class DSETracker:
    """Measures DSE, DSMI and RankMe of one or more layers on a fixed probe set.

        Use it from a plain PyTorch loop (the Lightning `DSEMonitor` wraps the same object)::

            tracker = DSETracker(probe=(x_val, y_val), layers=["backbone", "head"])
            for epoch in range(epochs):
                train_one_epoch(model)
                values = tracker.measure(model, epoch + 1)   # {"dse/backbone": ..., ...}

        Args:
            probe: a Dataset, or (x, y) / (x,) tensors; the Lightning glue may pass one later.
            layer: dotted module name; None for the input of the model's last `nn.Linear`.
            layers: several layers at once, hooked in one forward pass: a list of dotted names
                (each its own name) or a dict {name: dotted name}. Excludes `layer`.
            name: the representation's name with `layer` (keys `dse/{name}`, ...); with
                `layers`, the monitor's name in the timing keys and the checkpoint.
            history_path: a CSV rewritten after every probe (None: no file).
            extra_columns: more history columns, filled from `measure(extra=...)`.
    {options}
    """

    @with_settings(ProbeSettings, MeasureSettings)
    def __init__(
        self,
        probe: Dataset | Sequence[torch.Tensor] | None = None,
        layer: str | None = None,
        *,
        layers: Sequence[str] | dict[str, str] | None = None,
        name: str = "Z",
        history_path: str | None = None,
        extra_columns: Sequence[str] = (),
        **options,
    ):
        self.probe_settings, self.settings = split_settings(options, ProbeSettings, MeasureSettings, owner="DSETracker")
        self.probe = None if probe is None else as_dataset(probe)
        self.layers = resolve_layers(layer, layers, name)
        self.name = name
        self.metrics = self.settings.metrics
        self.async_metrics = self.settings.async_metrics
        settings = self.probe_settings
        self.reader = BatchReader(settings.input_key, settings.label_key, settings.batch_to_inputs, settings.mask_key)
        self.warn = OnceWarner()
        self.measurer = Measurer(self.settings, self.warn, profiles=self.settings.profile)
        self.groups = ProbeGroups(self.settings.collective_timeout)  # the probe's own, under DDP
        columns = ("pool", *extra_columns)  # the pooling each layer got, from the dry run
        self.records = ProbeRecords(self.metrics, columns, self.warn, history_path, self.settings.sigma)
        self.keys, self.timing_keys = metric_keys(self.layers), timing_keys(name)
        # State that a checkpoint carries (with the history).
        self.probe_indices: torch.Tensor | None = None
        self.input_clusters: torch.Tensor | None = None
        # Per-run working state.
        self.probe_set: ProbeSet | None = None
        self.layer_labels: dict[str, str] = {}
        self.pooling: dict[str, str] = {}  # {name: pooling applied}, from the dry run
        self.last_spectra: dict = {}
        self.pending: AsyncProbes | None = None  # the background measurements (async_metrics)
        self._collected: list = []  # finished asynchronous probes not yet handed out

    @property
    def history(self) -> dict[int, dict[str, dict[str, Any]]]:
        """{epoch: {representation name: history row}}."""
        return self.records.history.rows

    @property
    def profiles(self) -> dict[int, dict[str, Any]]:
        """{epoch: {representation name: EntropyProfile}}, with `profile=True`."""
        return self.records.profiles

    @property
    def history_path(self) -> str | None:
        return self.records.history.path

    @history_path.setter
    def history_path(self, path: str | None) -> None:
        self.records.history.path = path

    def check_model(self, model: nn.Module) -> None:
        """Find every watched layer now, so an unknown one fails before training."""
        capture = self.probe_settings.capture
        self.layer_labels = {
            rep: layer_label(find_layer(model, dotted)[0], capture) for rep, dotted in self.layers.items()
        }

    def prepare_probe(
        self, dataset: Dataset | None = None, num_workers: int | None = None, collate_fn: Callable | None = None
    ) -> None:
        """Fix the probe set (the explicit `probe`, else `dataset`) and check its batches.

        `num_workers` (the validation loader's, from the glue) applies when the tracker's own
        `num_workers` is None; `collate_fn` (the glue's, e.g. the Hugging Face Trainer's padding
        collator) turns lists of samples into batches, torch's default when None.
        """
        dataset = self.probe if self.probe is not None else dataset
        if dataset is None:
            raise ValueError("DSETracker has no probe set: pass probe=(x, y) or a Dataset")
        settings = self.probe_settings
        workers = settings.num_workers if settings.num_workers is not None else num_workers
        self.probe_set = ProbeSet(
            dataset,
            settings.probe_size,
            settings.probe_batch_size,
            self.settings.seed,
            self.reader,
            workers,
            settings.max_cache_bytes,
            self.probe_indices,
            collate_fn,
        )
        needs_inputs = metrics_needing(self.metrics, "input_clusters") if self.input_clusters is None else []
        self.probe_set.prepare(metrics_needing(self.metrics, "labels"), needs_inputs)
        self.probe_indices, self.pooling = self.probe_set.indices, {}  # a new probe set gets its own dry run

    def dry_run(self, model: nn.Module, runtime: Runtime | None = None) -> None:
        """Forward a few rows of the prepared probe once (`forward_pass.dry_run`): errors raise now, not as NaN."""
        runtime, options = runtime or Runtime(), self.probe_settings.forward_options()
        glue = dict(convert_input=runtime.convert_input, forward_context=runtime.forward_context)
        self.pooling = dry_run(model, self.probe_set, self.layers, seed=self.settings.seed, **glue, **options).pooling

    def release(self) -> None:
        """Wait for pending measurements, stop the worker and drop the cached probe (end of a run)."""
        if self.pending is not None:
            self._collected += self._apply(self.pending.close())
            self.pending = None
        if self.probe_set is not None:
            self.probe_set.release()
        self.groups.close()

    def measure(
        self,
        model: nn.Module,
        epoch: int,
        step: int | None = None,
        extra: dict | None = None,
        runtime: Runtime | None = None,
    ) -> dict[str, float]:
        """Probe `model` and return {key: value} ({} when asynchronous); records `history[epoch]`.

        Args:
            model: the network, with the watched layers.
            epoch: training epochs completed (0 for a baseline before training).
            step: optimizer steps so far, recorded in the history.
            extra: more columns for this epoch's rows (for example {"val_acc": 0.9}).
            runtime: precision and process glue; a plain single process when None.
        """
        runtime = runtime or Runtime()
        if not self.layer_labels:
            self.check_model(model)
        if self.probe_set is None:
            self.prepare_probe()
        if not self.pooling:
            self.dry_run(model, runtime)
        device = module_device(model)
        session = self.groups.session(runtime, self.warn, device)  # bounded waits, agreed failures
        self.probe_set.shard(runtime.rank, runtime.world_size)
        start = time.perf_counter()
        result, labels = forward_shares(
            model,
            self.probe_set,
            self.layers,
            session,
            device,
            seed=self.settings.seed,
            input_size=self.probe_settings.input_size,
            collect_inputs=self.input_clusters is None and self.measurer.needs_input_clusters,
            **self.probe_settings.forward_options(),
        )
        forward_seconds = time.perf_counter() - start
        read = self.probe_set.cache.seconds if self.probe_set.cache else {"data": 0.0, "transfer": 0.0}
        details = dict(
            epoch=epoch,
            step=step,
            n=len(self.probe_set),
            t=self.settings.t,
            bandwidth=self.records.bandwidth,
            cache=self.probe_set.cache_mode,
            data_seconds=read["data"],
            transfer_seconds=read["transfer"],
            forward_seconds=forward_seconds - read["data"] - read["transfer"],
            **(extra or {}),
        )
        if self.async_metrics and result is not None:
            return self._submit(result, labels, details, runtime, start)
        if result is None:
            measured = self.measurer.nan_values(self.layers)
        else:
            clusters = shared_clusters(self.measurer, result, labels, self.input_clusters, session)
            measured = measure_shared(
                self.measurer, result.representations, labels, clusters, self.layer_labels, *session.place, session
            )
            self.input_clusters = clusters if session.agreed else self.input_clusters  # kept by every rank or none
            self.measurer.complete(measured, result.representations, runtime.is_primary)
        probe_seconds = time.perf_counter() - start
        details.update(probe_seconds=probe_seconds, metric_seconds=probe_seconds - forward_seconds)
        self._record(epoch, measured, details, runtime.is_primary)
        return self._flat(epoch, measured, probe_seconds)

    def collect(self, wait: bool = False) -> list[tuple[int, dict[str, float]]]:
        """Asynchronous probes finished since the last call, as (epoch, {key: value}), oldest first.

        Each one's history rows are filled in (and the file rewritten) first. `wait=True`
        waits for every queued probe: call it before training ends and before a checkpoint.
        """
        if self.pending is not None:
            self._collected += self._apply(self.pending.collect(wait))
        collected, self._collected = self._collected, []
        return collected

    def _submit(self, result, labels, details: dict, runtime: Runtime, start: float) -> dict[str, float]:
        """Queue the measurement (primary process) and keep a NaN row until it comes back."""
        epoch = details["epoch"]
        details.update(probe_seconds=time.perf_counter() - start, metric_seconds=float("nan"))
        self._record(epoch, self.measurer.nan_values(self.layers), details, write=False)
        if runtime.is_primary:
            if self.pending is None:
                self.pending = AsyncProbes(self.measurer, list(self.layers), self.input_clusters)
            self.pending.submit(epoch, result.representations, labels, result.inputs, dict(details))
        return {}

    def _apply(self, finished: list[FinishedProbe]) -> list[tuple[int, dict[str, float]]]:
        """Fill the history rows of finished asynchronous probes; their flat values."""
        out = []
        for probe in finished:
            self.input_clusters = self.pending.input_clusters if self.pending is not None else self.input_clusters
            probe_seconds = probe.context["probe_seconds"] + probe.seconds  # forward, then the worker's time
            details = dict(probe.context, metric_seconds=probe.seconds, probe_seconds=probe_seconds)
            self._record(probe.epoch, probe.measured, details, write=False)
            out.append((probe.epoch, self._flat(probe.epoch, probe.measured, probe_seconds)))
        if out:
            self.records.history.write()
        return out

    def _record(self, epoch: int, measured: Measured, details: dict, write: bool) -> None:
        self.last_spectra = measured.spectra
        rows = history_rows(self.layer_labels, measured, details)
        rows = {name: dict(row, pool=self.pooling.get(name, "")) for name, row in rows.items()}
        self.records.record(epoch, rows, measured.profiles, self.layer_labels, write)

    def _flat(self, epoch: int, measured: Measured, probe_seconds: float) -> dict[str, float]:
        return flat_values(self.keys, self.timing_keys, measured, epoch, probe_seconds)

    def state_dict(self) -> dict[str, Any]:
        """History, probe indices and input clusters; waits for pending asynchronous probes first."""
        if self.pending is not None:
            self._collected += self._apply(self.pending.collect(wait=True))
        return {
            **self.records.state(),
            "probe_indices": self.probe_indices,
            "input_clusters": self.input_clusters,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.records.load(state_dict, next(iter(self.layers)))
        self.probe_indices = state_dict.get("probe_indices")
        self.input_clusters = state_dict.get("input_clusters")


DSETracker.__doc__ = DSETracker.__doc__.replace("    {options}", settings_doc(ProbeSettings, MeasureSettings))

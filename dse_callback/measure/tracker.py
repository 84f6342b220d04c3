"""DSETracker: the probe-and-measure core, for a plain PyTorch loop or under a callback.

Flow of one `measure(model, epoch)`:

1. (first call only, unless done before) `check_model` finds every watched layer and
   `prepare_probe` fixes the probe set's seeded indices and checks that its batches can be
   read (configuration errors raise here; see `probe.py`).
2. The forward pass (`forward_pass.probe_forward`): this process's share of the probe
   (all of it on one process; `Runtime.rank` of `world_size` under DDP), read once and
   cached (`probe_cache.py`), with every layer hooked, under the `Runtime`'s input
   conversion and forward context (the Lightning glue passes the Trainer's precision
   plugin). A failed forward pass anywhere gives one warning and NaN everywhere.
3. The shares are gathered in probe order (`distributed_probe.gather_probe`).
4. Synchronous (default): the inputs clustered once for DSMI(Z; X) on the primary process
   and broadcast; then every metric of every layer, the (layer x metric) work spread over
   the processes, so every process ends with the same values (`shared_measurement.py`).
   Asynchronous (`async_metrics=True`): the primary process queues the measurement on a
   background thread (`async_probes.py`) and training goes on; `collect()` returns the
   finished probes, and fills in their history rows, when they are ready.
5. The history gains one row per layer (`history[epoch][name]`), written to
   `history_path` on the primary process; the flat key -> value dict is returned (empty
   for an asynchronous probe: its values come from `collect`).

No Lightning here: `monitor.py` adapts this object to both Lightning namespaces.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..distributed.probe_shares import Runtime, forward_shares
from ..kernel.geometry.bandwidth import resolve_sigma
from ..kernel.validation import check_choice, check_positive, check_positive_int
from ..probe.batches import BatchReader
from ..probe.capture import CAPTURE_MODES, find_layer, layer_label
from ..probe.forward_pass import module_device
from ..probe.probe_set import ProbeSet, as_dataset
from ..report.history import history_columns, history_rows, report_safely, write_history
from .async_probes import AsyncProbes, FinishedProbe
from .measurer import NEEDS_INPUT_CLUSTERS, NEEDS_LABELS, Measured, Measurer, OnceWarner, check_metrics
from .metrics import flat_values, metric_keys, resolve_layers, timing_keys
from .shared import measure_shared

__all__ = ["DSETracker", "Runtime", "resolve_layers"]


class DSETracker:
    """Measures DSE, DSMI and RankMe of one or more layers on a fixed probe set.

    Use it from a plain PyTorch loop (the Lightning `DSEMonitor` wraps the same object):

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
        probe_size: at most this many probe samples (`probe.py`).
        probe_batch_size: rows per probe forward call, for throughput (no gradients are
            kept); None: 256 on the CPU, 1024 on a GPU. `batch_size`: its older name.
        num_workers: workers of the probe's one reading pass; None: as in `ProbeSet`.
        max_cache_bytes: a cap on the cached probe inputs; None: a quarter of the device's
            free memory, then pinned host memory, then re-reading (`probe_cache.py`).
        metrics: any of `measurement.METRICS`.
        sigma, t, precision, n_input_clusters, seed: the measurement (`measurement.py`).
        capture: record the layers' "input" or "output".
        input_size: X is downsampled so that no side exceeds this before clustering.
        input_key, label_key, batch_to_inputs: reading batches (`batches.py`).
        forward: callable (model, inputs) for models not called as `model(inputs)`.
        history_path: a CSV rewritten after every probe (None: no file).
        async_metrics: measure in a background thread while training goes on (primary
            process only); `measure` then returns {} and `collect()` the finished probes.
        solver: the DSE and DSMI solver ("auto": exact up to a size per device, stochastic
            Lanczos quadrature with an error bar above; "exact"; "slq"); the history
            records the one that ran and its error bar (`{metric}_solver`, `{metric}_stderr`).
    """

    def __init__(
        self,
        probe: Dataset | Sequence[torch.Tensor] | None = None,
        layer: str | None = None,
        layers: Sequence[str] | dict[str, str] | None = None,
        name: str = "Z",
        probe_size: int = 10_000,
        metrics: Sequence[str] = ("dse", "dsmi_y", "dsmi_x"),
        sigma: float | str = 10.0,
        t: float = 1,
        capture: str = "input",
        probe_batch_size: int | None = None,
        seed: int = 0,
        precision: str | None = None,
        n_input_clusters: int | None = None,
        input_size: int = 64,
        max_cache_bytes: int | None = None,
        num_workers: int | None = None,
        input_key: str | None = None,
        label_key: str | None = None,
        batch_to_inputs: Callable[[Any], Any] | None = None,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        history_path: str | None = None,
        extra_columns: Sequence[str] = (),
        async_metrics: bool = False,
        solver: str = "auto",
        batch_size: int | None = None,
    ):
        check_positive_int(probe_size, "probe_size", minimum=2)
        if batch_size is not None and probe_batch_size is not None:
            raise ValueError(f"pass probe_batch_size={probe_batch_size!r} or its older name batch_size, not both")
        probe_batch_size = batch_size if probe_batch_size is None else probe_batch_size
        for value, option, minimum in ((probe_batch_size, "probe_batch_size", 1), (num_workers, "num_workers", 0),
                                       (max_cache_bytes, "max_cache_bytes", 0)):  # fmt: skip
            if value is not None:
                check_positive_int(value, option, minimum)
        check_choice(capture, "capture", CAPTURE_MODES)
        check_choice(async_metrics, "async_metrics", (False, True))
        check_positive(t, "t")
        if forward is not None and not callable(forward):
            raise TypeError(f"forward must be a callable (module, inputs) -> outputs, got {forward!r}")
        self.probe = None if probe is None else as_dataset(probe)
        self.layers = resolve_layers(layer, layers, name)
        self.name = name
        self.metrics = check_metrics(metrics)
        self.capture, self.seed, self.input_size, self.forward = capture, seed, input_size, forward
        self.probe_size, self.probe_batch_size = probe_size, probe_batch_size
        self.num_workers, self.max_cache_bytes = num_workers, max_cache_bytes
        self.async_metrics = async_metrics
        self.reader = BatchReader(input_key, label_key, batch_to_inputs)
        self.warn = OnceWarner()
        self.measurer = Measurer(self.metrics, resolve_sigma(sigma), t, precision, seed, n_input_clusters, self.warn, solver)
        self.history_path = history_path
        self.columns = history_columns(self.metrics, extra_columns)
        self.keys, self.timing_keys = metric_keys(self.layers), timing_keys(name)
        # State that a checkpoint carries.
        self.history: dict[int, dict[str, dict[str, Any]]] = {}
        self.probe_indices: torch.Tensor | None = None
        self.input_clusters: torch.Tensor | None = None
        # Per-run working state.
        self.probe_set: ProbeSet | None = None
        self.layer_labels: dict[str, str] = {}
        self.last_spectra: dict = {}
        self.pending: AsyncProbes | None = None  # the background measurements (async_metrics)
        self._collected: list = []  # finished asynchronous probes not yet handed out

    def check_model(self, model: nn.Module) -> None:
        """Find every watched layer now, so an unknown one fails before training."""
        self.layer_labels = {rep: layer_label(find_layer(model, dotted)[0], self.capture) for rep, dotted in self.layers.items()}

    def prepare_probe(self, dataset: Dataset | None = None, num_workers: int | None = None) -> None:
        """Fix the probe set (the explicit `probe`, else `dataset`) and check its batches.

        `num_workers` (the validation loader's, from the glue) applies when the tracker's own
        `num_workers` is None.
        """
        dataset = self.probe if self.probe is not None else dataset
        if dataset is None:
            raise ValueError("DSETracker has no probe set: pass probe=(x, y) or a Dataset")
        workers = self.num_workers if self.num_workers is not None else num_workers
        self.probe_set = ProbeSet(
            dataset, self.probe_size, self.probe_batch_size, self.seed, self.reader, workers, self.max_cache_bytes,
            self.probe_indices,
        )
        needs_inputs = [m for m in self.metrics if m in NEEDS_INPUT_CLUSTERS] if self.input_clusters is None else []
        self.probe_set.prepare([m for m in self.metrics if m in NEEDS_LABELS], needs_inputs)
        self.probe_indices = self.probe_set.indices

    def release(self) -> None:
        """Wait for pending measurements, stop the worker and drop the cached probe (end of a run)."""
        if self.pending is not None:
            self._collected += self._apply(self.pending.close())
            self.pending = None
        if self.probe_set is not None:
            self.probe_set.release()

    def measure(
        self, model: nn.Module, epoch: int, step: int | None = None, extra: dict | None = None, runtime: Runtime | None = None
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
        device = module_device(model)
        self.probe_set.shard(runtime.rank, runtime.world_size)
        start = time.perf_counter()
        collect = self.input_clusters is None and self.measurer.needs_input_clusters
        result, labels = forward_shares(
            model, self.probe_set, self.layers, runtime, device, self.warn, capture=self.capture, seed=self.seed,
            forward=self.forward, collect_inputs=collect, input_size=self.input_size,
        )
        forward_seconds = time.perf_counter() - start
        read = self.probe_set.cache.seconds if self.probe_set.cache else {"data": 0.0, "transfer": 0.0}
        details = dict(
            epoch=epoch, step=step, n=len(self.probe_set), t=self.measurer.t, cache=self.probe_set.cache_mode,
            data_seconds=read["data"], transfer_seconds=read["transfer"],
            forward_seconds=forward_seconds - read["data"] - read["transfer"], **(extra or {}),
        )
        if self.async_metrics and result is not None:
            return self._submit(result, labels, details, runtime, start)
        if result is None:
            measured = self.measurer.nan_values(self.layers)
        else:
            self._cluster_inputs(result, labels, runtime)
            measured = measure_shared(
                self.measurer, result.representations, labels, self.input_clusters, self.layer_labels,
                runtime.rank, runtime.world_size, runtime.all_gather,
            )
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

    def _cluster_inputs(self, result, labels, runtime: Runtime) -> None:
        """X's clusters, once: computed on the primary process and sent to the others."""
        if result.inputs is None or self.input_clusters is not None:
            return
        clusters = self.measurer.cluster_inputs(result.inputs, labels) if runtime.is_primary else None
        self.input_clusters = runtime.broadcast(clusters) if runtime.world_size > 1 else clusters

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
            self._record(probe.epoch, probe.measured, dict(probe.context, metric_seconds=probe.seconds, probe_seconds=probe_seconds), write=False)
            out.append((probe.epoch, self._flat(probe.epoch, probe.measured, probe_seconds)))
        if out and self.history_path:
            report_safely(self.warn, "write the history", write_history, self.history_path, self.history, self.columns)
        return out

    def _record(self, epoch: int, measured: Measured, details: dict, write: bool) -> None:
        self.last_spectra = measured.spectra
        self.history[epoch] = history_rows(self.layer_labels, measured, details)
        if write and self.history_path:
            report_safely(self.warn, "write the history", write_history, self.history_path, self.history, self.columns)

    def _flat(self, epoch: int, measured: Measured, probe_seconds: float) -> dict[str, float]:
        return flat_values(self.keys, self.timing_keys, measured.values, epoch, probe_seconds)

    def state_dict(self) -> dict[str, Any]:
        """History, probe indices and input clusters; waits for pending asynchronous probes first."""
        if self.pending is not None:
            self._collected += self._apply(self.pending.collect(wait=True))
        return {
            "history": {epoch: {rep: dict(row) for rep, row in rows.items()} for epoch, rows in self.history.items()},
            "probe_indices": self.probe_indices,
            "input_clusters": self.input_clusters,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {}
        for epoch, rows in state_dict.get("history", {}).items():
            if "epoch" in rows:  # a checkpoint from before several layers: one flat row
                rows = {next(iter(self.layers)): rows}
            self.history[int(epoch)] = {rep: dict(row) for rep, row in rows.items()}
        self.probe_indices = state_dict.get("probe_indices")
        self.input_clusters = state_dict.get("input_clusters")

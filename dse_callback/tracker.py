"""DSETracker: the probe-and-measure core, for a plain PyTorch loop or under a callback.

Flow of one `measure(model, epoch)`:

1. (first call only, unless done before) `check_model` finds every watched layer and
   `prepare_probe` fixes the probe set's seeded indices and checks that its batches can be
   read (configuration errors raise here; see `probe.py`).
2. The forward pass (`forward_pass.probe_forward`): one pass over the probe batches with
   every layer hooked, under the `Runtime`'s input conversion and forward context (the
   Lightning glue passes the Trainer's precision plugin).
3. On the primary process: the inputs clustered once for DSMI(Z; X), then every metric of
   every layer (`measurement.Measurer`). A failed forward pass gives one warning and NaN.
4. The values are broadcast (`Runtime.broadcast`, identity on one process) so every
   process returns, logs and records the same values.
5. The history gains one row per layer (`history[epoch][name]`), written to
   `history_path` on the primary process; the flat key -> value dict is returned.

No Lightning here: `monitor.py` adapts this object to both Lightning namespaces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ._validation import check_choice, check_positive, check_positive_int
from .batches import BatchReader
from .capture import CAPTURE_MODES, find_layer, layer_label
from .diffusion import resolve_sigma
from .forward_pass import probe_forward
from .measurement import NEEDS_INPUT_CLUSTERS, NEEDS_LABELS, Measurer, OnceWarner, check_metrics
from .probe import ProbeCache, ProbeSet, as_dataset
from .reporting import history_columns, write_history

_KEY_PATTERNS = {
    "dse": "dse/{}",
    "dsmi_y": "dsmi/{}_Y",
    "dsmi_x": "dsmi/{}_X",
    "cse": "cse/{}",
    "csmi_y": "csmi/{}_Y",
    "csmi_x": "csmi/{}_X",
    "rankme": "rankme/{}",
}


def _identity(value: Any) -> Any:
    return value


@dataclass
class Runtime:
    """How a probe runs inside a training framework; the defaults fit one plain process.

    Attributes:
        convert_input: casts the inputs to the training precision (identity when None).
        forward_context: a factory of the context the forward runs in (autocast, dtype).
        broadcast: sends the primary process's values to every process.
        is_primary: whether this process measures and writes files (rank 0).
    """

    convert_input: Callable[[Any], Any] | None = None
    forward_context: Callable[[], ContextManager] | None = None
    broadcast: Callable[[Any], Any] = _identity
    is_primary: bool = True


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
        probe_size, batch_size, num_workers, max_cache_bytes: the probe set (`probe.py`).
        metrics: any of `measurement.METRICS`.
        sigma, t, precision, n_input_clusters, seed: the measurement (`measurement.py`).
        capture: record the layers' "input" or "output".
        input_size: X is downsampled so that no side exceeds this before clustering.
        input_key, label_key, batch_to_inputs: reading batches (`batches.py`).
        forward: callable (model, inputs) for models not called as `model(inputs)`.
        history_path: a CSV rewritten after every probe (None: no file).
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
        batch_size: int = 256,
        seed: int = 0,
        precision: str | None = None,
        n_input_clusters: int | None = None,
        input_size: int = 64,
        max_cache_bytes: int = 2**30,
        num_workers: int = 0,
        input_key: str | None = None,
        label_key: str | None = None,
        batch_to_inputs: Callable[[Any], Any] | None = None,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        history_path: str | None = None,
        extra_columns: Sequence[str] = (),
    ):
        check_positive_int(probe_size, "probe_size", minimum=2)
        check_positive_int(batch_size, "batch_size")
        check_choice(capture, "capture", CAPTURE_MODES)
        check_positive(t, "t")
        if forward is not None and not callable(forward):
            raise TypeError(f"forward must be a callable (module, inputs) -> outputs, got {forward!r}")
        self.probe = None if probe is None else as_dataset(probe)
        self.layers = resolve_layers(layer, layers, name)
        self.name = name
        self.metrics = check_metrics(metrics)
        self.capture, self.seed, self.input_size, self.forward = capture, seed, input_size, forward
        self.probe_size, self.batch_size, self.num_workers = probe_size, batch_size, num_workers
        self.reader = BatchReader(input_key, label_key, batch_to_inputs)
        self.cache = ProbeCache(max_cache_bytes)
        self.warn = OnceWarner()
        self.measurer = Measurer(self.metrics, resolve_sigma(sigma), t, precision, seed, n_input_clusters, self.warn)
        self.history_path = history_path
        self.columns = history_columns(self.metrics, extra_columns)
        suffix = "" if name == "Z" else f"_{name}"
        self.keys = {rep: {m: pattern.format(rep) for m, pattern in _KEY_PATTERNS.items()} for rep in self.layers}
        self.timing_keys = {"probe_seconds": f"dse/probe_seconds{suffix}", "epoch": f"dse/epoch{suffix}"}
        # State that a checkpoint carries.
        self.history: dict[int, dict[str, dict[str, Any]]] = {}
        self.probe_indices: torch.Tensor | None = None
        self.input_clusters: torch.Tensor | None = None
        # Per-run working state.
        self.probe_set: ProbeSet | None = None
        self.layer_labels: dict[str, str] = {}
        self.last_spectra: dict = {}

    # ------------------------------------------------------------------ setup (errors raise)

    def check_model(self, model: nn.Module) -> None:
        """Find every watched layer now, so an unknown one fails before training."""
        self.layer_labels = {rep: layer_label(find_layer(model, dotted)[0], self.capture) for rep, dotted in self.layers.items()}

    def prepare_probe(self, dataset: Dataset | None = None) -> None:
        """Fix the probe set (the explicit `probe`, else `dataset`) and check its batches."""
        dataset = self.probe if self.probe is not None else dataset
        if dataset is None:
            raise ValueError("DSETracker has no probe set: pass probe=(x, y) or a Dataset")
        self.cache.clear()
        self.probe_set = ProbeSet(
            dataset, self.probe_size, self.batch_size, self.seed, self.reader, self.num_workers, self.cache, self.probe_indices
        )
        needs_inputs = [m for m in self.metrics if m in NEEDS_INPUT_CLUSTERS] if self.input_clusters is None else []
        self.probe_set.prepare([m for m in self.metrics if m in NEEDS_LABELS], needs_inputs)
        self.probe_indices = self.probe_set.indices

    def release(self) -> None:
        """Drop the cached probe batches (the end of a run)."""
        self.cache.clear()

    # ------------------------------------------------------------------ one probe

    def measure(
        self, model: nn.Module, epoch: int, step: int | None = None, extra: dict | None = None, runtime: Runtime | None = None
    ) -> dict[str, float]:
        """Probe `model` and return {key: value}; also records `history[epoch]`.

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
        start = time.perf_counter()
        collect = runtime.is_primary and self.input_clusters is None and self.measurer.needs_input_clusters
        try:
            result = probe_forward(
                model, self.probe_set, self.layers, self.capture, seed=self.seed,
                convert_input=runtime.convert_input, forward_context=runtime.forward_context,
                forward=self.forward, collect_inputs=collect, input_size=self.input_size,
            )
        except Exception as error:  # nothing the monitor does may end a training run
            self.warn(
                f"forward:{type(error).__name__}",
                f"DSEMonitor's probe forward pass failed ({type(error).__name__}: {error}); logging NaN and "
                "going on. Check layer=, forward= and batch_to_inputs=.",
            )
            result = None
        forward_seconds = time.perf_counter() - start
        payload = None
        if runtime.is_primary:
            payload = self._measure(result)
        values, sigma = runtime.broadcast(payload)
        probe_seconds = time.perf_counter() - start
        details = dict(
            epoch=epoch, step=step, probe_seconds=probe_seconds, forward_seconds=forward_seconds,
            metric_seconds=probe_seconds - forward_seconds, n=len(self.probe_set), t=self.measurer.t, **(extra or {}),
        )
        self.history[epoch] = {
            rep: dict(representation=rep, layer=self.layer_labels[rep], sigma=sigma[rep], **values[rep], **details)
            for rep in self.layers
        }
        if runtime.is_primary and self.history_path:
            write_history(self.history_path, self.history, self.columns)
        flat = {self.keys[rep][metric]: value for rep in self.layers for metric, value in values[rep].items()}
        flat[self.timing_keys["probe_seconds"]] = probe_seconds
        flat[self.timing_keys["epoch"]] = float(epoch)
        return flat

    def _measure(self, result) -> tuple[dict, dict]:
        if result is None:
            measured = self.measurer.nan_values(self.layers)
        else:
            labels = self.probe_set.labels
            if result.inputs is not None and self.input_clusters is None:
                self.input_clusters = self.measurer.cluster_inputs(result.inputs, labels)
            measured = self.measurer.measure(result.representations, labels, self.input_clusters, self.layer_labels)
        self.last_spectra = measured.spectra
        return measured.values, measured.sigma

    # ------------------------------------------------------------------ checkpoint state

    def state_dict(self) -> dict[str, Any]:
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

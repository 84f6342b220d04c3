"""DSEMonitor: the Lightning callback that measures a layer's representation during training.

The logic lives in `DSEMonitorLogic`, which imports no Lightning namespace; `DSEMonitor`
here is the `pytorch_lightning` callback and `dse_callback.lightning.DSEMonitor` the
`lightning.pytorch` one (a callback subclassing one namespace is rejected by the other's
Trainer). No linear algebra here: the math comes from the package's public functions.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import tempfile
import time
import warnings
from typing import Any, Iterator, Sequence

import numpy as np
import pytorch_lightning
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ._validation import check_choice, check_positive, check_positive_int
from .capture import CAPTURE_MODES, ActivationRecorder, EvalMode, find_layer
from .clustering import downsample_images, spectral_clusters
from .diffusion import median_bandwidth, resolve_sigma
from .entropy import classic_shannon_entropy, entropy_of_spectrum, saturation_message
from .errors import BandwidthWarning
from .mutual_info import classic_shannon_mutual_information, diffusion_spectral_mutual_information
from .plotting import close_figure, matplotlib_available, spectrum_figure
from .spectrum import diffusion_spectrum

log = logging.getLogger(__name__)

METRICS = ("dse", "dsmi_y", "dsmi_x", "cse", "csmi_y", "csmi_x")
_NEEDS_LABELS = ("dsmi_y", "csmi_y")
_NEEDS_INPUT_CLUSTERS = ("dsmi_x", "csmi_x")
_HISTORY_DETAIL_COLUMNS = ("step", "probe_seconds", "forward_seconds", "metric_seconds", "n", "sigma", "t", "layer")


class DSEMonitorWarning(UserWarning):
    """A probe could not measure something; the run goes on and NaN is logged."""


def _metric_keys(name: str) -> dict[str, str]:
    keys = {
        "dse": f"dse/{name}",
        "dsmi_y": f"dsmi/{name}_Y",
        "dsmi_x": f"dsmi/{name}_X",
        "cse": f"cse/{name}",
        "csmi_y": f"csmi/{name}_Y",
        "csmi_x": f"csmi/{name}_X",
    }
    suffix = "" if name == "Z" else f"_{name}"
    keys["probe_seconds"] = f"dse/probe_seconds{suffix}"
    keys["epoch"] = f"dse/epoch{suffix}"
    return keys


@contextlib.contextmanager
def _isolated_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Run with every global RNG seeded to `seed`, then restore all of them exactly.

    A run with the monitor must train bit for bit like one without it, even when the
    probe's dataset applies random transforms or DataLoader workers draw a base seed.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _split_batch(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs, labels or None) from a batch of (x, y, ...) tuples or bare tensors."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        labels = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], labels
    raise TypeError(
        f"DSEMonitor's probe batches must be (inputs, labels) tuples or tensors, got {type(batch).__name__}; "
        "pass probe=(x, y) tensors or a dataset whose items are (x, y)"
    )


def _sample_has_labels(sample) -> bool:
    return isinstance(sample, (tuple, list)) and len(sample) > 1 and sample[1] is not None


class DSEMonitorLogic:
    """Measures DSE and DSMI of one layer's representation on a fixed probe set.

    Logged metrics (flat keys through `pl_module.log`, so TensorBoard, CSVLogger,
    ModelCheckpoint and EarlyStopping all see them; `{name}` is `name`, default "Z"):

    - `dse/{name}`: DSE(Z), bits.
    - `dsmi/{name}_Y`: DSMI(Z; Y) with the probe's labels, bits.
    - `dsmi/{name}_X`: DSMI(Z; X) with the probe's inputs, downsampled to `input_size` and
      grouped once by spectral clustering into `n_input_clusters` clusters, bits.
    - `cse/{name}`, `csmi/{name}_Y`, `csmi/{name}_X`: the classic Shannon baselines.
    - `dse/probe_seconds`: wall time of the probe (forward pass and metrics).
    - `dse/epoch`: training epochs completed when the probe ran (0 is the baseline).
    (For a `name` other than "Z", the last two keys end in `_{name}`.)

    The epoch-0 baseline, measured in `on_train_start`, goes straight to the loggers at the
    starting step so it stays its own point (values logged through `pl_module.log` in
    `on_train_start` would be averaged with the first epoch's). With a TensorBoard logger,
    each probe also adds a figure of the eigenvalue spectrum (`{key}_spectrum`, needs
    matplotlib), and a custom-scalar layout groups the curves. On rank 0 the history of
    every probe is kept in `dse_history.csv` (`dse_history_{name}.csv`) in the run's log
    directory, with sigma, t, N and the layer.

    Args:
        layer: dotted module name (as in `model.named_modules()`); None takes the input of
            the model's last `nn.Linear`, the penultimate representation.
        probe: a Dataset of (x, y) items, a tuple (x, y) or (x,) of tensors, or None for a
            fixed subset of the datamodule's (or Trainer's) validation set.
        probe_size: at most this many probe samples, chosen once with a seeded generator.
        every_n_epochs: probe after every n-th training epoch (plus the epoch-0 baseline).
        metrics: any of "dse", "dsmi_y", "dsmi_x", "cse", "csmi_y", "csmi_x".
        sigma: Gaussian bandwidth, or "median" for the median pairwise distance of Z at
            each probe (scale-free; recorded in the history).
        t: diffusion time.
        capture: record the layer's "input" or "output".
        batch_size: probe batch size.
        seed: seeds the probe subset, the DSMI subsets and the clustering.
        precision: eigensolve precision, "float64", "float32" or None (per device).
        n_input_clusters: clusters of X for DSMI(Z; X); None: the number of classes in the
            probe's labels (10 without labels).
        input_size: X is downsampled so that no side exceeds this before clustering.
        max_cache_bytes: probe inputs up to this size stay cached on the model's device
            after the first pass; larger ones are re-read each probe.
        log_spectrum: add the spectrum figure to TensorBoard; None: when a TensorBoard
            logger and matplotlib are there. True without a TensorBoard logger is an error.
        name: the representation's name in the keys and the checkpoint's `state_key`; give
            each of several monitors its own (Lightning refuses two with the same key).
        num_workers: DataLoader workers for the probe.
        record_metrics: names of other logged metrics (for example "val_acc") to copy
            into each history row, read from `trainer.callback_metrics` when the probe
            runs (validation has run by then); blank where not yet logged.
    """

    def __init__(
        self,
        layer: str | None = None,
        probe: Dataset | Sequence[torch.Tensor] | None = None,
        probe_size: int = 10_000,
        every_n_epochs: int = 1,
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
        log_spectrum: bool | None = None,
        name: str = "Z",
        num_workers: int = 0,
        record_metrics: Sequence[str] = (),
    ):
        super().__init__()
        metrics = tuple(metrics)
        unknown = [metric for metric in metrics if metric not in METRICS]
        if not metrics or unknown:
            raise ValueError(f"metrics must be a non-empty selection of {METRICS}, got {metrics!r}")
        check_positive_int(probe_size, "probe_size", minimum=2)
        check_positive_int(every_n_epochs, "every_n_epochs")
        check_positive_int(batch_size, "batch_size")
        check_choice(capture, "capture", CAPTURE_MODES)
        check_positive(t, "t")
        if not name or "/" in name:
            raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
        self.layer = layer
        self.probe = probe
        self.probe_size = probe_size
        self.every_n_epochs = every_n_epochs
        self.metrics = metrics
        self.sigma = resolve_sigma(sigma)
        self.t = t
        self.capture = capture
        self.batch_size = batch_size
        self.seed = seed
        self.precision = precision
        self.n_input_clusters = n_input_clusters
        self.input_size = input_size
        self.max_cache_bytes = max_cache_bytes
        self.log_spectrum = log_spectrum
        self.name = name
        self.num_workers = num_workers
        self.record_metrics = tuple(record_metrics)
        self.keys = _metric_keys(name)
        # State that a checkpoint carries.
        self.history: dict[int, dict[str, Any]] = {}
        self.probe_indices: torch.Tensor | None = None
        self.input_clusters: torch.Tensor | None = None
        # Per-run working state.
        self._dataset: Dataset | None = None
        self._cached_inputs: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._recorder: ActivationRecorder | None = None
        self._history_path: str | None = None
        self._warned: set[str] = set()
        self._last_spectrum: np.ndarray | None = None

    # ------------------------------------------------------------------ identity and state

    @property
    def state_key(self) -> str:
        return self._generate_state_key(layer=self.layer, name=self.name)

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": {epoch: dict(row) for epoch, row in self.history.items()},
            "probe_indices": self.probe_indices,
            "input_clusters": self.input_clusters,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {int(epoch): dict(row) for epoch, row in state_dict.get("history", {}).items()}
        self.probe_indices = state_dict.get("probe_indices")
        self.input_clusters = state_dict.get("input_clusters")

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        if self.log_spectrum and not self._tensorboard_loggers(trainer):
            raise ValueError(
                "DSEMonitor(log_spectrum=True) needs a TensorBoardLogger: add "
                "logger=TensorBoardLogger(...) to the Trainer, or set log_spectrum=None"
            )
        if self.log_spectrum and not matplotlib_available():
            raise ValueError("DSEMonitor(log_spectrum=True) needs matplotlib: pip install matplotlib")
        find_layer(pl_module, self.layer)  # an unknown layer fails now, not after an epoch
        # A collective under DDP: every rank asks, so none waits forever.
        log_dir = trainer.log_dir or trainer.default_root_dir
        filename = "dse_history.csv" if self.name == "Z" else f"dse_history_{self.name}.csv"
        self._history_path = os.path.join(log_dir, filename)
        self._dataset = self._explicit_probe()
        if self._dataset is None:
            self._dataset = self._datamodule_probe(trainer)
        if self._dataset is not None:
            self._check_probe(self._dataset)

    def on_train_start(self, trainer, pl_module) -> None:
        if self._dataset is None:
            self._dataset = self._trainer_probe(trainer)
            self._check_probe(self._dataset)
        if self._tensorboard_writers(trainer):
            self._add_custom_scalar_layout(trainer)
        if self.history or trainer.current_epoch > 0:
            return  # resumed: the baseline was measured in the first run
        values = self._probe(trainer, pl_module, epochs_trained=0)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        epochs_trained = trainer.current_epoch + 1
        if epochs_trained % self.every_n_epochs:
            return
        values = self._probe(trainer, pl_module, epochs_trained)
        for key, value in values.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, prog_bar=False, logger=True, sync_dist=False)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._remove_hook()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._remove_hook()
        self._cached_inputs = None
        self._labels = None

    # ------------------------------------------------------------------ probe set

    def _explicit_probe(self) -> Dataset | None:
        if self.probe is None:
            return None
        if isinstance(self.probe, Dataset):
            return self.probe
        if isinstance(self.probe, (tuple, list)) and all(isinstance(part, torch.Tensor) for part in self.probe):
            lengths = {len(part) for part in self.probe}
            if len(lengths) != 1:
                raise ValueError(f"probe tensors must have the same length, got lengths {[len(p) for p in self.probe]}")
            return TensorDataset(*self.probe)
        raise TypeError(
            f"probe must be a torch Dataset or a tuple of tensors (x, y), got {type(self.probe).__name__}"
        )

    @staticmethod
    def _dataset_of(loaders) -> Dataset | None:
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        if isinstance(loaders, dict):
            loaders = next(iter(loaders.values()), None)
        return getattr(loaders, "dataset", None)

    def _datamodule_probe(self, trainer) -> Dataset | None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "val_dataloader"):
            return None
        try:
            return self._dataset_of(datamodule.val_dataloader())
        except NotImplementedError:
            return None

    def _trainer_probe(self, trainer) -> Dataset:
        dataset = self._dataset_of(getattr(trainer, "val_dataloaders", None))
        if dataset is None:
            raise ValueError(
                "DSEMonitor found no probe set: pass probe=(x, y) or a Dataset, or give the Trainer "
                "validation data (a datamodule with val_dataloader, or fit(val_dataloaders=...))"
            )
        return dataset

    def _check_probe(self, dataset: Dataset) -> None:
        size = len(dataset)
        if size < 2:
            raise ValueError(f"DSEMonitor's probe set has {size} sample(s); it needs at least 2")
        if self.probe_indices is None:
            if size > self.probe_size:
                generator = torch.Generator().manual_seed(self.seed)
                self.probe_indices = torch.randperm(size, generator=generator)[: self.probe_size].sort().values
            else:
                self.probe_indices = torch.arange(size)
        elif int(self.probe_indices.max()) >= size:
            raise ValueError(
                f"the checkpoint's probe indices reach {int(self.probe_indices.max())} but the probe set has "
                f"{size} samples; resume with the same probe set"
            )
        needs_labels = [metric for metric in self.metrics if metric in _NEEDS_LABELS]
        if needs_labels and not _sample_has_labels(dataset[int(self.probe_indices[0])]):
            raise ValueError(
                f"metrics {needs_labels} need labels, but the probe's items carry none; pass probe=(x, y) "
                "or a dataset of (x, y) items, or drop those metrics"
            )

    def _probe_batches(self, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(inputs, labels) on `device`; caches inputs after the first pass when they fit."""
        if self._cached_inputs is not None:
            for start in range(0, len(self._cached_inputs), self.batch_size):
                labels = None if self._labels is None else self._labels[start : start + self.batch_size]
                yield self._cached_inputs[start : start + self.batch_size], labels
            return
        loader = DataLoader(
            Subset(self._dataset, self.probe_indices.tolist()),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )
        inputs, labels, cached_bytes = [], [], 0
        for batch in loader:
            x, y = _split_batch(batch)
            x = x.to(device, non_blocking=True)
            cached_bytes += x.numel() * x.element_size()
            if cached_bytes <= self.max_cache_bytes:
                inputs.append(x)
            if y is not None:
                labels.append(y.to(device))
            yield x, (None if y is None else labels[-1])
        self._labels = torch.cat(labels) if labels else None
        if cached_bytes <= self.max_cache_bytes:
            self._cached_inputs = torch.cat(inputs)

    # ------------------------------------------------------------------ one probe

    def _probe(self, trainer, pl_module, epochs_trained: int) -> dict[str, float]:
        """Forward pass on every rank, metrics on rank 0, the result broadcast to all.

        Every rank keeps the same history (so all agree on whether a baseline is due);
        rank 0 alone writes the file and the figures.
        """
        log.info("DSEMonitor: probing %s after %d epoch(s)", self.name, epochs_trained)
        start = time.perf_counter()
        representation, downsampled_inputs = self._forward(pl_module, collect_inputs=trainer.is_global_zero)
        forward_seconds = time.perf_counter() - start
        measured = None
        if trainer.is_global_zero:
            measured = self._measure(representation, downsampled_inputs)
        values, sigma = trainer.strategy.broadcast(measured, src=0)
        probe_seconds = time.perf_counter() - start
        values[self.keys["probe_seconds"]] = probe_seconds
        values[self.keys["epoch"]] = float(epochs_trained)
        row = {metric: values[self.keys[metric]] for metric in self.metrics}
        row.update(
            epoch=epochs_trained,
            step=trainer.global_step,
            probe_seconds=probe_seconds,
            forward_seconds=forward_seconds,
            metric_seconds=probe_seconds - forward_seconds,
            n=len(representation),
            sigma=sigma,
            t=self.t,
            layer=self._recorder.layer_name,
        )
        for key in self.record_metrics:
            value = trainer.callback_metrics.get(key)
            row[key] = "" if value is None else float(value)
        self.history[epochs_trained] = row
        if trainer.is_global_zero:
            self._write_history()
            self._add_spectrum_figure(trainer, epochs_trained)
        return values

    def _forward(self, pl_module, collect_inputs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Z (N, D) from the hooked layer; until X is clustered, also X downsampled (rank 0)."""
        device = pl_module.device
        needs_inputs = (
            collect_inputs
            and self.input_clusters is None
            and any(metric in _NEEDS_INPUT_CLUSTERS for metric in self.metrics)
        )
        downsampled = []
        self._recorder = ActivationRecorder(pl_module, self.layer, self.capture)
        try:
            with _isolated_rng(device, self.seed), EvalMode(pl_module), torch.inference_mode(), self._recorder:
                for x, _ in self._probe_batches(device):
                    pl_module(x)
                    if needs_inputs:
                        downsampled.append(
                            downsample_images(x, self.input_size) if x.ndim == 4 else x.reshape(len(x), -1).float()
                        )
            representation = self._recorder.activations()
        finally:
            self._remove_hook()
        if len(representation) != len(self.probe_indices):
            raise RuntimeError(
                f"layer {self._recorder.layer_name!r} produced {len(representation)} rows for "
                f"{len(self.probe_indices)} probe samples (it ran {self._recorder.calls} times in "
                f"{math.ceil(len(self.probe_indices) / self.batch_size)} batches); hook a layer that runs "
                "once per forward pass"
            )
        return representation, (torch.cat(downsampled) if downsampled else None)

    def _remove_hook(self) -> None:
        if self._recorder is not None:
            self._recorder.remove()

    def _warn_once(self, reason: str, message: str, category=DSEMonitorWarning) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(message, category, stacklevel=3)

    def _measure(
        self, representation: torch.Tensor, downsampled_inputs: torch.Tensor | None
    ) -> tuple[dict[str, float], float]:
        """Every selected metric and the sigma used; a failure gives NaN and one warning per reason."""
        self._last_spectrum = None
        values = {self.keys[metric]: float("nan") for metric in self.metrics}
        z = representation.detach()
        n_bad = int((~torch.isfinite(z).all(dim=1)).sum())
        if n_bad:
            self._warn_once(
                "non-finite",
                f"{n_bad} of {len(z)} probe activations of layer {self._recorder.layer_name!r} are NaN or Inf "
                "(is training diverging?); DSEMonitor logs NaN while they are",
            )
            return values, float("nan")
        with torch.inference_mode():
            sigma = median_bandwidth(z.double()) if self.sigma == "median" else self.sigma
            if downsampled_inputs is not None and self.input_clusters is None:
                try:
                    self.input_clusters = self._cluster_inputs(downsampled_inputs)
                except Exception as error:  # DSMI(Z; X) then logs NaN; clustering is retried next probe
                    self._warn_once(
                        f"clustering:{type(error).__name__}",
                        f"DSEMonitor could not cluster the probe's inputs ({type(error).__name__}: {error})",
                    )
            for metric in self.metrics:
                try:
                    values[self.keys[metric]] = self._metric(metric, z, sigma)
                except Exception as error:  # a metric must never kill a long run
                    self._warn_once(
                        f"{metric}:{type(error).__name__}",
                        f"DSEMonitor could not compute {metric} ({type(error).__name__}: {error}); logging NaN",
                    )
        return values, sigma

    def _cluster_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        n_clusters = self.n_input_clusters
        if n_clusters is None:
            n_clusters = len(torch.unique(self._labels)) if self._labels is not None else 10
        n_clusters = max(2, min(n_clusters, len(inputs) - 1))
        return spectral_clusters(inputs, n_clusters, seed=self.seed).cpu()

    def _metric(self, metric: str, z: torch.Tensor, sigma: float) -> float:
        common = dict(n_repetitions=5, seed=self.seed, max_samples=None)
        if metric == "dse":
            eigenvalues = diffusion_spectrum(z, sigma, max_samples=None, precision=self.precision)
            value = float(entropy_of_spectrum(eigenvalues, self.t))
            self._last_spectrum = eigenvalues.double().cpu().numpy()
            message = saturation_message(value, len(z), sigma)
            if message:
                self._warn_once("saturation", f"{message} (DSEMonitor layer {self._recorder.layer_name!r})", BandwidthWarning)
            return value
        if metric == "cse":
            return classic_shannon_entropy(z)
        if metric in _NEEDS_INPUT_CLUSTERS and self.input_clusters is None:
            raise RuntimeError("the probe's inputs have not been clustered")
        reference = self._labels if metric in _NEEDS_LABELS else self.input_clusters.to(z.device)
        if metric.startswith("dsmi"):
            return diffusion_spectral_mutual_information(
                z, reference, sigma=sigma, t=self.t, reference_type="labels", precision=self.precision, **common
            )
        return classic_shannon_mutual_information(z, reference, reference_type="labels", **common)

    # ------------------------------------------------------------------ outputs

    def _add_spectrum_figure(self, trainer, epoch: int) -> None:
        if self._last_spectrum is None or not self._spectrum_wanted(trainer):
            return
        figure = spectrum_figure(self._last_spectrum, f"{self.keys['dse']} after {epoch} epoch(s)", self.t)
        for writer in self._tensorboard_writers(trainer):
            writer.add_figure(f"{self.keys['dse']}_spectrum", figure, global_step=trainer.global_step, close=False)
        close_figure(figure)

    def _write_history(self) -> None:
        """Rewrite the whole CSV through a temporary file, so a crash never leaves half a file."""
        if self._history_path is None:
            return
        columns = ["epoch", *self.metrics, *_HISTORY_DETAIL_COLUMNS, *self.record_metrics]
        directory = os.path.dirname(self._history_path) or "."
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".csv.tmp")
        with os.fdopen(handle, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            for epoch in sorted(self.history):
                writer.writerow({column: self.history[epoch].get(column, "") for column in writer.fieldnames})
        os.replace(temporary, self._history_path)

    @staticmethod
    def _tensorboard_loggers(trainer) -> list:
        return [
            logger
            for logger in trainer.loggers
            if any(cls.__name__ == "TensorBoardLogger" for cls in type(logger).__mro__)
        ]

    def _tensorboard_writers(self, trainer) -> list:
        from torch.utils.tensorboard import SummaryWriter

        writers = [logger.experiment for logger in self._tensorboard_loggers(trainer)]
        return [writer for writer in writers if isinstance(writer, SummaryWriter)]  # rank 0 only

    def _spectrum_wanted(self, trainer) -> bool:
        if self.log_spectrum is False:
            return False
        return bool(self._tensorboard_writers(trainer)) and matplotlib_available()

    def _add_custom_scalar_layout(self, trainer) -> None:
        entropy_keys = [self.keys[m] for m in ("dse", "cse") if m in self.metrics]
        information_keys = [self.keys[m] for m in ("dsmi_y", "dsmi_x", "csmi_y", "csmi_x") if m in self.metrics]
        charts = {}
        if entropy_keys:
            charts[f"entropy of {self.name}"] = ["Multiline", entropy_keys]
        if information_keys:
            charts[f"mutual information of {self.name}"] = ["Multiline", information_keys]
        for writer in self._tensorboard_writers(trainer):
            writer.add_custom_scalars({f"DSE monitor ({self.name})": charts})


class DSEMonitor(DSEMonitorLogic, pytorch_lightning.Callback):
    __doc__ = DSEMonitorLogic.__doc__

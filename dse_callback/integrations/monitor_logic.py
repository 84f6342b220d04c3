"""DSEMonitorLogic: the Lightning callback's hooks, a thin adapter over `DSETracker`.

Flow of a run (each step's work lives in the module named):

- `setup` (configuration errors raise here, before the first epoch): TensorBoard and
  matplotlib checks; `DSETracker.check_model` finds every watched layer; the probe set is
  fixed and its batches checked (`probe.probe_set`; the validation set when no probe was given).
- `on_train_start`: the custom-scalar layout; the epoch-0 baseline, sent straight to the
  loggers at the current step so it stays its own point (skipped when resuming).
- `on_train_epoch_end` (every `every_n_epochs`, never during the sanity check): one probe
  through `DSETracker.measure` with a `Runtime` built from the Trainer: the precision
  plugin's `convert_input` and `val_step_context` (as a validation step runs), the
  strategy's rank, world size, all-gather and broadcast (each rank forwards its share of
  the probe and measures its share of the metrics; every rank gets the same values), and
  rank 0 as the process that writes. The values go through `pl_module.log`, so
  ModelCheckpoint and EarlyStopping see them.
- With `async_metrics=True` the metrics are computed on rank 0 in a background thread;
  finished probes are logged straight to the loggers at their own step
  (`on_train_batch_end`, `on_train_epoch_end`), and every pending one is waited for and
  written in `on_train_end`, in `state_dict` (so a checkpoint holds every probe) and in
  `on_exception`. Monitoring such a key with ModelCheckpoint or EarlyStopping fails in `setup`.
- After each probe, rank 0 adds the TensorBoard figures (`reporting.py`).
- `state_dict`/`load_state_dict`: the tracker's history, probe indices and input clusters.

The logic lives in `DSEMonitorLogic`, which imports no Lightning namespace (the Trainer is
duck-typed); `pl_callback.DSEMonitor` is the `pytorch_lightning` callback and
`lightning_callback.DSEMonitor` the `lightning.pytorch` one (a callback subclassing one
namespace is rejected by the other's Trainer). No math here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ..measure.measurer import DSEMonitorWarning
from ..measure.metrics import METRIC_SPECS
from ..measure.settings import (
    MeasureSettings,
    MonitorSettings,
    ProbeSettings,
    settings_doc,
    settings_values,
    split_settings,
    with_settings,
)
from ..measure.tracker import DSETracker
from ..report.figures import matplotlib_available
from ..report.history import report_safely
from ..report.tensorboard import (
    add_custom_scalar_layout,
    add_figures,
    probe_figures,
    tensorboard_loggers,
    tensorboard_writers,
)
from .trainer_access import first_loader, runtime_of, val_loader_of, watched_keys

log = logging.getLogger(__name__)

__all__ = ["DSEMonitorLogic", "DSEMonitorWarning"]


class DSEMonitorLogic:
    """Measures DSE, DSMI and RankMe of one or more layers on a fixed probe set during training.

        Logged metrics (flat keys through `pl_module.log`; `{name}` is "Z" by default, the
        `name` given with `layer`, or each name of `layers`):

        - `dse/{name}`: DSE(Z), bits. `dsmi/{name}_Y`, `dsmi/{name}_X`: DSMI(Z; Y), DSMI(Z; X).
        - `cse/{name}`, `csmi/{name}_Y`, `csmi/{name}_X`: the classic Shannon baselines;
          `rankme/{name}`: the effective rank of Z (opt in through `metrics`).
        - `dse/probe_seconds`, `dse/epoch` (ending in `_{name}` for a monitor `name` other than
          "Z"): the probe's wall time and the epochs trained (0 is the baseline).

        Every layer is hooked in one forward pass, which runs under the Trainer's precision
        plugin as a validation step does. The history (`dse_history.csv`, or
        `dse_history_{name}.csv`, in the run's log directory, rank 0) has one row per epoch and
        layer, with the side captured (`head (input)`), sigma, t, N and timings. With a
        TensorBoard logger: spectrum figures, the information plane (with dsmi_x and dsmi_y)
        and a custom-scalar layout. A failure after `setup` gives one warning and NaN.

        Args:
            layer: dotted module name; None for the input of the model's last `nn.Linear`.
            probe: a Dataset, or (x, y) / (x,) tensors; None takes the datamodule's or the
                Trainer's validation set.
            layers: several layers at once (a list of dotted names, or {name: dotted name}).
            name: the representation's name with `layer`; with `layers`, the monitor's name.
    {options}
    """

    @with_settings(ProbeSettings, MeasureSettings, MonitorSettings)
    def __init__(
        self,
        layer: str | None = None,
        probe: Dataset | Sequence[torch.Tensor] | None = None,
        *,
        layers: Sequence[str] | dict[str, str] | None = None,
        name: str = "Z",
        **options,
    ):
        super().__init__()
        probe_settings, measure_settings, self.settings = split_settings(
            options, ProbeSettings, MeasureSettings, MonitorSettings, owner="DSEMonitor"
        )
        self.tracker = DSETracker(
            probe,
            layer,
            layers=layers,
            name=name,
            extra_columns=self.settings.record_metrics,
            **settings_values(probe_settings),
            **settings_values(measure_settings),
        )
        self.layer, self.layers, self.name = layer, layers, name
        self._log_steps: dict[int, int] = {}  # the logger step of each probe, for late values

    # ------------------------------------------------------------------ identity and state

    @property
    def history(self) -> dict[int, dict[str, dict[str, Any]]]:
        """{epoch: {representation name: history row}}."""
        return self.tracker.history

    @property
    def probe_indices(self) -> torch.Tensor | None:
        return self.tracker.probe_indices

    @property
    def state_key(self) -> str:
        layers = self.layer if self.layers is None else repr(self.tracker.layers)
        return self._generate_state_key(layer=layers, name=self.name)

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state_dict)

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        if self.settings.log_spectrum and not tensorboard_loggers(trainer.loggers):
            raise ValueError(
                "DSEMonitor(log_spectrum=True) needs a TensorBoardLogger: add "
                "logger=TensorBoardLogger(...) to the Trainer, or set log_spectrum=None"
            )
        if self.settings.log_spectrum and not matplotlib_available():
            raise ValueError("DSEMonitor(log_spectrum=True) needs matplotlib: pip install matplotlib")
        if self.tracker.async_metrics:
            self._check_nothing_watches_async_keys(trainer)
        self.tracker.check_model(pl_module)  # an unknown layer fails now, not after an epoch
        # A collective under DDP: every rank asks, so none waits forever.
        log_dir = trainer.log_dir or trainer.default_root_dir
        self.tracker.groups.open()  # the probe's own process groups (bounded waits), by every rank together
        filename = "dse_history.csv" if self.name == "Z" else f"dse_history_{self.name}.csv"
        self.tracker.history_path = os.path.join(log_dir, filename)
        self.tracker.probe_set = None
        self._log_steps: dict[int, int] = {}
        loader = val_loader_of(getattr(trainer, "datamodule", None))
        dataset = getattr(loader, "dataset", None)
        if self.tracker.probe is not None or dataset is not None:
            self.tracker.prepare_probe(dataset, getattr(loader, "num_workers", None))

    def on_train_start(self, trainer, pl_module) -> None:
        if self.tracker.probe_set is None:
            loader = first_loader(getattr(trainer, "val_dataloaders", None))
            dataset = getattr(loader, "dataset", None)
            if dataset is None:
                raise ValueError(
                    "DSEMonitor found no probe set: pass probe=(x, y) or a Dataset, or give the Trainer "
                    "validation data (a datamodule with val_dataloader, or fit(val_dataloaders=...))"
                )
            self.tracker.prepare_probe(dataset, getattr(loader, "num_workers", None))
        log.info("DSEMonitor: probe of %d samples", len(self.tracker.probe_set))
        writers = tensorboard_writers(trainer.loggers)
        if writers:
            report_safely(
                self.tracker.warn,
                "add the custom-scalar layout",
                add_custom_scalar_layout,
                writers,
                self.tracker.keys,
                {metric: METRIC_SPECS[metric].chart for metric in self.tracker.metrics},
                f"DSE monitor ({self.name})",
            )
        if self.history or trainer.current_epoch > 0:
            return  # resumed: the baseline was measured in the first run
        values = self._probe(trainer, pl_module, 0, log_step=trainer.global_step)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        if self.tracker.probe_set.cache is not None:  # how the probe is kept, and why
            log.info("DSEMonitor: %s", self.tracker.probe_set.cache.describe())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.tracker.pending is not None:
            self._write_finished(trainer, wait=False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        epochs_trained = trainer.current_epoch + 1
        if epochs_trained % self.settings.every_n_epochs:
            return
        # Lightning logs epoch-end values at the epoch's last step; late values go there too.
        values = self._probe(trainer, pl_module, epochs_trained, log_step=max(trainer.global_step - 1, 0))
        if self.tracker.async_metrics:
            for logger in trainer.loggers if values else ():  # a failed forward pass: NaN now, nothing queued
                logger.log_metrics(values, step=self._log_steps[epochs_trained])
            self._write_finished(trainer, wait=False)
            return
        for key, value in values.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, prog_bar=False, logger=True, sync_dist=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write_finished(trainer, wait=True)  # before fit returns

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._write_finished(trainer, wait=True)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.tracker.release()

    # ------------------------------------------------------------------ one probe

    def _probe(self, trainer, pl_module, epochs_trained: int, log_step: int) -> dict[str, float]:
        """Every rank runs its share of the probe and keeps the same history; rank 0 writes."""
        log.info(
            "DSEMonitor: probing %s after %d epoch(s)", ", ".join(self.tracker.layer_labels.values()), epochs_trained
        )
        extra = {}
        for key in self.settings.record_metrics:
            value = trainer.callback_metrics.get(key)
            extra[key] = "" if value is None else float(value)
        self._log_steps[epochs_trained] = log_step
        values = self.tracker.measure(pl_module, epochs_trained, trainer.global_step, extra, runtime_of(trainer))
        if trainer.is_global_zero and values:
            self._add_figures(trainer, epochs_trained, trainer.global_step)
        return values

    def _write_finished(self, trainer, wait: bool) -> None:
        """Log finished asynchronous probes at their own steps (rank 0: no collectives here)."""
        if not trainer.is_global_zero:
            return
        for epoch, values in self.tracker.collect(wait):
            step = self._log_steps.get(epoch, self.history[epoch][next(iter(self.history[epoch]))].get("step") or 0)
            for logger in trainer.loggers:
                logger.log_metrics(values, step=step)
            self._add_figures(trainer, epoch, step)

    def _add_figures(self, trainer, epoch: int, step: int) -> None:
        if self.settings.log_spectrum is False:
            return
        writers = tensorboard_writers(trainer.loggers)
        if not writers:
            return
        tracker = self.tracker
        plane = {"dsmi_x", "dsmi_y"} <= set(tracker.metrics)
        prefix = "dse/" if self.name == "Z" else f"dse/{self.name}_"

        def add() -> None:
            figures = probe_figures(
                history=self.history,
                spectra=tracker.last_spectra,
                keys=tracker.keys,
                t=tracker.settings.t,
                epoch=epoch,
                plane_tag=f"{prefix}information_plane" if plane else None,
                profiles=tracker.profiles,
            )
            add_figures(writers, figures, step)

        report_safely(tracker.warn, "add the TensorBoard figures", add)

    def _check_nothing_watches_async_keys(self, trainer) -> None:
        keys = {key for named in self.tracker.keys.values() for key in named.values()} | set(
            self.tracker.timing_keys.values()
        )
        for callback, key in watched_keys(trainer):
            if key in keys:
                raise ValueError(
                    f"{callback}(monitor={key!r}) watches a key of DSEMonitor(async_metrics=True), whose values are "
                    "computed in a background thread and logged on rank 0 whenever they are ready, often epochs "
                    f"later: {callback} would compare stale or missing values (and under DDP the ranks would "
                    "disagree). Monitor it with async_metrics=False, or watch another key."
                )


DSEMonitorLogic.__doc__ = DSEMonitorLogic.__doc__.replace(
    "{options}", settings_doc(ProbeSettings, MeasureSettings, MonitorSettings)
)

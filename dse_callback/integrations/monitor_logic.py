"""DSEMonitorLogic: the Lightning callback's hooks, a thin adapter over `DSETracker`.

Flow of a run (each step's work lives in the module named):

- `setup` (configuration errors raise here, before the first epoch): the matplotlib check;
  `DSETracker.check_model` finds every watched layer; a new run (epoch 0) starts with an
  empty state; the probe set is fixed and its batches checked (`probe.probe_set`): the
  explicit probe, else the fit's validation data whatever its schedule (`probe_source`; a
  fit without any fails here, with the fix).
- `on_fit_start` (the model on its device, in its precision): a LightningModule's own
  `val_dataloader()` is read now; `DSETracker.dry_run` forwards a few probe rows, so a
  layer output that cannot be read, a failing `forward=` or a dtype mismatch raises here.
- `on_train_start`: the custom-scalar layout; the epoch-0 baseline, sent straight to the
  loggers at the current step so it stays its own point (skipped when resuming).
- `on_train_epoch_end` (every `every_n_epochs`, never during the sanity check): one probe
  through `DSETracker.measure` with a `Runtime` built from the Trainer: the precision
  plugin's `convert_input` and `val_step_context` (as a validation step runs). Under DDP
  each rank forwards and measures its share over the tracker's own gloo groups, with a
  bounded wait (`collective_timeout`); every rank gets the same values, and rank 0 writes.
  The values go through `pl_module.log`, so ModelCheckpoint and EarlyStopping see them.
- With `async_metrics=True` the metrics are computed on rank 0 in a background thread;
  finished probes are logged straight to the loggers at their own step
  (`on_train_batch_end`, `on_train_epoch_end`), and every pending one is waited for and
  written in `on_train_end`, in `state_dict` (so a checkpoint holds every probe) and in
  `on_exception`. Monitoring such a key with ModelCheckpoint or EarlyStopping fails in `setup`.
- After each probe, rank 0 sends the figures to every logger (`report.loggers.log_figures`).
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
from ..report.loggers import takes_images
from ..report.tensorboard import add_custom_scalar_layout, tensorboard_writers
from .figures import send_probe_figures
from .probe_source import NO_VALIDATION_DATA, has_validation_data, ready_in_setup, validation_probe
from .trainer_access import check_nothing_watches_async_keys, runtime_of

log = logging.getLogger(__name__)

__all__ = ["DSEMonitorLogic", "DSEMonitorWarning"]


class DSEMonitorLogic:
    """Measures DSE, DSMI and RankMe of one or more layers on a fixed probe set during training.

    Logged metrics (flat keys through `pl_module.log`; `{name}` is "Z" by default, the
    `name` given with `layer`, or each name of `layers`):

    - `dse/{name}`: DSE(Z), bits. `dsmi/{name}_Y`, `dsmi/{name}_X`: DSMI(Z; Y), DSMI(Z; X).
    - `cse/{name}`, `csmi/{name}_Y`, `csmi/{name}_X`: the classic Shannon baselines;
      `rankme/{name}`: the effective rank of Z (opt in through `metrics`).
    - `dse/{name}_scale`: the RMS radius of Z over the resolved sigma (near 0 or far above 1,
      DSE sits at an end and says more about sigma than about Z).
    - `dse/probe_seconds`, `dse/epoch` (ending in `_{name}` for a monitor `name` other than
      "Z"): the probe's wall time and the epochs trained (0 is the baseline).

    Every layer is hooked in one forward pass, which runs under the Trainer's precision
    plugin as a validation step does. The history (`dse_history.csv`, or
    `dse_history_{name}.csv`, in the run's log directory, rank 0) has one row per epoch and
    layer, with the side captured (`head (input)`), the pooling, sigma, t, N and timings.
    Figures (the spectrum; the information plane with dsmi_x and dsmi_y; with `profile=True`
    the entropy profile, `dse/{name}_profile`) go to every logger that takes images
    (`log_spectrum`); TensorBoard also gets a custom-scalar layout.
    Configuration errors raise before the first epoch (a dry run of a few probe rows in
    `on_fit_start`); a failure after that gives one warning and NaN.

    Args:
        layer: dotted module name; None for the input of the model's last `nn.Linear`.
        probe: a Dataset, or (x, y) / (x,) tensors; None takes the fit's validation data
            (a `val_dataloader()` or `fit(val_dataloaders=...)`), whatever the validation schedule.
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
        if self.settings.log_spectrum and not matplotlib_available():
            raise ValueError("DSEMonitor(log_spectrum=True) needs matplotlib: pip install matplotlib")
        if self.tracker.async_metrics:
            keys = {key for named in self.tracker.keys.values() for key in named.values()}
            check_nothing_watches_async_keys(trainer, keys | set(self.tracker.timing_keys.values()))
        self.tracker.check_model(pl_module)  # an unknown layer fails now, not after an epoch
        # A collective under DDP: every rank asks, so none waits forever.
        log_dir = trainer.log_dir or trainer.default_root_dir
        self.tracker.groups.open()  # the probe's own process groups (bounded waits), by every rank together
        filename = "dse_history.csv" if self.name == "Z" else f"dse_history_{self.name}.csv"
        self.tracker.history_path = os.path.join(log_dir, filename)
        if trainer.current_epoch == 0:  # a new run (a checkpoint, restored after setup, refills the state)
            self.tracker.load_state_dict({})
        self.tracker.probe_set = None
        self._log_steps: dict[int, int] = {}
        if self.tracker.probe is None and not has_validation_data(trainer):
            raise ValueError(NO_VALIDATION_DATA)
        if self.tracker.probe is not None or ready_in_setup(trainer):
            self._prepare_probe(trainer)

    def on_fit_start(self, trainer, pl_module) -> None:
        # The model is on its device and in its precision now: a dry run of a few probe rows
        # turns a configuration error into an error before the first epoch, with the batch shown.
        if self.tracker.probe_set is None:
            self._prepare_probe(trainer)  # the module's own val_dataloader(), set up by now
        self.tracker.dry_run(pl_module, runtime_of(trainer))

    def on_train_start(self, trainer, pl_module) -> None:
        if self.tracker.probe_set is None:  # a callback ended on_fit_start before this one's ran
            self._prepare_probe(trainer)
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

    def _prepare_probe(self, trainer) -> None:
        """Fix the probe set: the explicit probe, else the fit's validation data (`probe_source`)."""
        if self.tracker.probe is not None:
            self.tracker.prepare_probe()
        else:
            self.tracker.prepare_probe(*validation_probe(trainer))

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
        """The probe's figures to every logger that takes images; with log_spectrum=True, also
        PNG files (a CSV logger's directory, else the run's)."""
        if self.settings.log_spectrum is False:
            return
        explicit = self.settings.log_spectrum is True
        loggers = [logger for logger in trainer.loggers if explicit or takes_images(logger)]
        directory = os.path.dirname(self.tracker.history_path) if explicit else None  # no collective on rank 0
        if not loggers and directory is None:
            return
        send_probe_figures(self.tracker, loggers, epoch, step, directory)


DSEMonitorLogic.__doc__ = DSEMonitorLogic.__doc__.replace(
    "    {options}", settings_doc(ProbeSettings, MeasureSettings, MonitorSettings)
)

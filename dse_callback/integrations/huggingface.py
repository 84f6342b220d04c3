"""DSETrainerCallback: DSE and DSMI during `transformers.Trainer` training, over a `DSETracker`.

Flow of a run (what is read from the Trainer lives in `hf_trainer_access.py`):

- `attach(trainer)`: callbacks are not handed the Trainer, and `trainer.log` is the one path
  to every `report_to` integration, so the callback keeps it (and joins its callbacks).
- `on_train_begin` (configuration errors raise here, before the first step): the probe set
  (the given probe, else `eval_dataset`, through the Trainer's data collator), the label key
  and, with `metrics=None`, the metrics it allows; the layers and a dry run of a few probe
  rows; on a resumed run the state from the checkpoint's `stateful_callbacks`, else the
  epoch-0 baseline.
- `on_epoch_end` every `every_n_epochs` epochs, or `on_step_end` every `every_n_steps` steps
  (never `on_evaluate`: it skips `eval_strategy="no"` and repeats per eval dataset and on a
  hand-called `evaluate()`): `DSETracker.measure`, every rank forwarding its share; the same
  values go through `trainer.log` on every rank, `control.should_log` saved and restored.
- Figures go to the Trainer's TensorBoard, W&B, MLflow or Comet run, else PNGs (rank 0); the state
  rides in every checkpoint (`ExportableState`); `dse_history.csv` in `output_dir` (rank 0).

transformers is imported here only, so `import dse_callback` never loads it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from ..kernel.validation import check_positive_int
from ..measure.metrics import resolve_layers
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
from ..probe.batches import BatchReader
from ..report.figures import matplotlib_available
from .hf_trainer_access import (
    add_figures,
    holds_one_class,
    json_state,
    label_names,
    latest_logged,
    original_of,
    probe_source,
    read_batch_rules,
    runtime_from,
    saved_state,
    with_default,
)

try:
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState
except ImportError as error:  # the module imports without transformers; the constructor names the extra
    _MISSING_TRANSFORMERS: ImportError | None = error
    TrainerCallback = type("TrainerCallback", (), {})
    ExportableState = type("ExportableState", (), {})
else:
    _MISSING_TRANSFORMERS = None

log = logging.getLogger(__name__)

__all__ = ["DSETrainerCallback"]

# Callbacks that were attached to a Trainer, so a copy the Trainer makes of one
# (`restore_callback_states_from_checkpoint=True`) can find its original.
_ATTACHED: weakref.WeakSet = weakref.WeakSet()


class DSETrainerCallback(TrainerCallback, ExportableState):
    """Measures DSE, DSMI and RankMe of a model's layers during `transformers.Trainer` training.

    Usage (the callback logs through `trainer.log`, so it needs the Trainer)::

        trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                          data_collator=collator)
        DSETrainerCallback(layer="bert.pooler").attach(trainer)
        trainer.train()

    Logged to every `report_to` integration, `log_history` and `trainer_state.json`
    (TensorBoard adds the Trainer's `train/` prefix): the keys of `DSEMonitor` (`dse/{name}`,
    `dsmi/{name}_Y`, ..., `dse/probe_seconds`), and `dse/epoch`, the Trainer's fractional
    epoch. The history (`dse_history.csv`, or `dse_history_{name}.csv`, in `output_dir`)
    has one row per probe and layer, indexed by the epochs completed (0: the baseline), or
    by the optimizer step with `every_n_steps`; `train_epoch` holds the fractional epoch.
    A failure after `on_train_begin` gives one warning and NaN.

    Args:
        layer: dotted module name; None for the input of the model's last `nn.Linear`.
        probe: a Dataset (read through the Trainer's data collator) or (x, y) tensors;
            None takes the Trainer's `eval_dataset` (the first of a dict).
        layers: several layers at once (a list of dotted names, or {name: dotted name}).
        name: the representation's name with `layer`; with `layers`, the callback's name.
        every_n_steps: probe every n optimizer steps instead of every `every_n_epochs` epochs.
        metrics: as below, but None (the default here) measures "dse", plus "dsmi_y" when
            each probe sample carries one class label; "dsmi_x" needs tensor inputs (images).
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
        every_n_steps: int | None = None,
        **options,
    ):
        if _MISSING_TRANSFORMERS is not None:
            raise ImportError(
                'DSETrainerCallback needs transformers: pip install "dse_callback[hf]"'
            ) from _MISSING_TRANSFORMERS
        if every_n_steps is not None:
            check_positive_int(every_n_steps, "every_n_steps")
            if "every_n_epochs" in options:
                raise ValueError(
                    f"pass every_n_steps={every_n_steps!r} or every_n_epochs={options['every_n_epochs']!r}, not both"
                )
        metrics = options.get("metrics")
        checked = {**options, "metrics": ("dse",) if metrics is None else metrics}
        self._probe_settings, self._measure_settings, self.settings = split_settings(
            checked, ProbeSettings, MeasureSettings, MonitorSettings, owner="DSETrainerCallback"
        )
        self._auto_metrics = metrics is None
        resolve_layers(layer, layers, name)  # wrong layer arguments fail now, not in train()
        self.layer, self.layers, self.name, self.probe = layer, layers, name, probe
        self.every_n_steps, self._unit = every_n_steps, "epoch" if every_n_steps is None else "step"
        self.tracker: DSETracker | None = None
        self.trainer = None

    # ------------------------------------------------------------------ the Trainer

    def attach(self, trainer) -> DSETrainerCallback:
        """Keep `trainer` (to call `trainer.log`) and join its callbacks; returns the callback."""
        if not (hasattr(trainer, "callback_handler") and callable(getattr(trainer, "log", None))):
            raise TypeError(f"attach needs a transformers.Trainer, got {type(trainer).__name__}")
        self.trainer = trainer
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        _ATTACHED.add(self)
        return self

    @property
    def history(self) -> dict[int, dict[str, dict[str, Any]]]:
        """{epoch (or step): {representation name: history row}}."""
        return {} if self.tracker is None else self.tracker.history

    @property
    def state_key(self) -> str:
        """Tells this callback's entry in a checkpoint from another instance's."""
        layers = self.layer if self.layers is None else repr(self.layers)
        return f"DSETrainerCallback{{layer={layers!r}, name={self.name!r}}}"

    def state(self) -> dict:
        """The history, probe indices and input clusters, JSON-ready, for `trainer_state.json`."""
        saved = {"key": self.state_key, **json_state(self.tracker.state_dict() if self.tracker else {})}
        return {"args": {}, "attributes": {"dse_state": saved}}

    # ------------------------------------------------------------------ Trainer events

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._find_trainer()
        trainer = self.trainer
        if self.settings.log_spectrum and not matplotlib_available():
            raise ValueError("DSETrainerCallback(log_spectrum=True) needs matplotlib: pip install matplotlib")
        dataset, collate, workers = probe_source(trainer, self.probe)
        if self.tracker is None:
            self.tracker = self._make_tracker(trainer, dataset, collate)
        saved = saved_state(state.stateful_callbacks, type(self).__name__, self.state_key)
        if state.global_step > 0 and saved is not None:  # resumed from a checkpoint
            self.tracker.load_state_dict(saved)
        self.tracker.check_model(model)
        self.tracker.groups.open()  # the probe's own process groups under DDP: every rank, here
        self.tracker.probe_set = None
        self.tracker.prepare_probe(dataset, workers, collate)
        self.tracker.dry_run(model, runtime_from(trainer))  # a layer, pool or forward error raises now
        filename = "dse_history.csv" if self.name == "Z" else f"dse_history_{self.name}.csv"
        self.tracker.history_path = os.path.join(args.output_dir or ".", filename)
        log.info("DSETrainerCallback: probe of %d samples", len(self.tracker.probe_set))
        if self.history or state.global_step > 0:
            return  # resumed (or a second train()): the baseline was measured before
        self._probe(args, state, control, model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_n_steps is not None and state.global_step % self.every_n_steps == 0:
            self._probe(args, state, control, model, state.global_step)
        elif self.tracker is not None and self.tracker.pending is not None:
            self._log_finished(state, control, wait=False)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.every_n_steps is not None:
            return
        epochs = math.ceil(state.epoch - 1e-6)  # a last epoch cut short by max_steps counts too
        if epochs % self.settings.every_n_epochs == 0:
            self._probe(args, state, control, model, epochs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.tracker is not None:
            self._log_finished(state, control, wait=True)  # before train() returns
            self.tracker.release()

    # ------------------------------------------------------------------ one probe

    def _probe(self, args, state, control, model, key: int) -> None:
        """Every rank forwards its share and gets the same values; every rank logs them."""
        tracker = self.tracker
        log.info(
            "DSETrainerCallback: probing %s at step %d", ", ".join(tracker.layer_labels.values()), state.global_step
        )
        extra = {
            "train_epoch": float(state.epoch or 0),
            **latest_logged(state.log_history, self.settings.record_metrics),
        }
        values = tracker.measure(model, key, state.global_step, extra, runtime_from(self.trainer))
        if values:  # {} when the metrics run in the background
            self._log(control, values, float(state.epoch or 0))
            if state.is_world_process_zero:
                add_figures(self.trainer, tracker, self.settings.log_spectrum, key, state.global_step, self._unit)
        if tracker.pending is not None:
            self._log_finished(state, control, wait=False)

    def _log(self, control, values: dict[str, float], train_epoch: float) -> None:
        """`trainer.log` with the caller's `should_log` kept: the Trainer's `on_log` resets the
        shared flag, which would swallow this step's loss log (and, on some ranks only, skip
        the loss gather the others enter)."""
        values = {key: float(value) for key, value in values.items()}
        values[self.tracker.timing_keys["epoch"]] = train_epoch  # the Trainer's fractional epoch
        trainer = self.trainer
        saved = control.should_log
        try:
            trainer.log(values)
        finally:
            control.should_log = saved
            trainer.control.should_log = saved

    def _log_finished(self, state, control, wait: bool) -> None:
        """Asynchronous probes that finished, on rank 0 (no collectives): logged at this step."""
        if not state.is_world_process_zero:
            return
        for key, values in self.tracker.collect(wait):
            self._log(control, values, next(iter(self.history[key].values()))["train_epoch"])
            add_figures(self.trainer, self.tracker, self.settings.log_spectrum, key, state.global_step, self._unit)

    # ------------------------------------------------------------------ setup helpers

    def _find_trainer(self) -> None:
        """The attached Trainer; a copy the Trainer made when restoring callback states
        (`restore_callback_states_from_checkpoint=True`) takes over its original's setup."""
        if self.trainer is not None:
            return
        original = original_of(self, _ATTACHED)
        if original is None:
            raise RuntimeError(
                "DSETrainerCallback is not attached to a Trainer, so it cannot log through trainer.log: "
                "call DSETrainerCallback(...).attach(trainer) after building the Trainer"
            )
        self.__dict__.update({key: value for key, value in original.__dict__.items() if key != "dse_state"})
        _ATTACHED.discard(original)
        _ATTACHED.add(self)

    def _make_tracker(self, trainer, dataset, collate) -> DSETracker:
        """The tracker, once one collated sample shows how to read the batches."""
        sample = (collate or default_collate)([dataset[0]])
        rules = read_batch_rules(sample, label_names(trainer), self._probe_settings)
        probe = dataclasses.replace(self._probe_settings, **rules)
        measure = self._measure_settings
        if self._auto_metrics:  # DSMI(Z; Y) when each sample carries one class label
            labels = BatchReader(probe.input_key, probe.label_key, probe.batch_to_inputs).labels(sample)
            measure = dataclasses.replace(measure, metrics=("dse", "dsmi_y") if holds_one_class(labels) else ("dse",))
        return DSETracker(
            None,
            self.layer,
            layers=self.layers,
            name=self.name,
            extra_columns=("train_epoch", *self.settings.record_metrics),
            **settings_values(probe),
            **settings_values(measure),
        )


with_default(DSETrainerCallback.__init__, "metrics", None, Sequence[str] | None)  # chosen from the probe
DSETrainerCallback.__doc__ = DSETrainerCallback.__doc__.replace(
    "    {options}", settings_doc(ProbeSettings, MeasureSettings, MonitorSettings)
)

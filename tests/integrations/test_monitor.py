import csv
import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from dse_callback import BandwidthWarning, DSEMonitor
from dse_callback.measure import measurer as measurement_module
from dse_callback.measure.measurer import DSEMonitorWarning
from dse_callback.probe.forward_pass import DryRunError

from lightning_helpers import blob_data, make_classes

TinyClassifier, BlobData = make_classes(pl)


def trainer_for(tmp_path, callbacks, max_epochs=2, logger="csv", **kwargs):
    if logger == "csv":
        logger = CSVLogger(str(tmp_path), name="run")
    elif logger == "tensorboard":
        logger = TensorBoardLogger(str(tmp_path), name="run")
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        **kwargs,
    )


def read_csv(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


def fit(tmp_path, monitor=None, max_epochs=2, model=None, data=None, **kwargs):
    pl.seed_everything(0, verbose=False)
    model = model or TinyClassifier()
    trainer = trainer_for(tmp_path, [monitor] if monitor else [], max_epochs=max_epochs, **kwargs)
    trainer.fit(model, datamodule=data or BlobData())
    return trainer, model


def test_zero_config_logs_every_key_as_its_own_point_per_epoch(tmp_path):
    trainer, _ = fit(tmp_path, DSEMonitor(), max_epochs=3)
    rows = [row for row in read_csv(f"{trainer.log_dir}/metrics.csv") if row.get("dse/Z")]
    keys = ["dse/Z", "dsmi/Z_Y", "dsmi/Z_X", "dse/probe_seconds", "dse/epoch"]
    assert [float(row["dse/epoch"]) for row in rows] == [0, 1, 2, 3]  # the baseline stays its own point
    # The baseline at step 0; Lightning logs epoch-end values at each epoch's last step.
    assert [int(row["step"]) for row in rows] == [0, 5, 11, 17]
    for row in rows:
        assert all(math.isfinite(float(row[key])) for key in keys)
        assert 0 <= float(row["dse/Z"]) <= math.log2(60)
    for key in keys:
        assert key in trainer.callback_metrics  # what ModelCheckpoint and EarlyStopping see


def test_history_file_records_epochs_sigma_t_n_and_layer(tmp_path):
    trainer, _ = fit(tmp_path, DSEMonitor(metrics=("dse", "cse", "dsmi_y", "csmi_y")), max_epochs=2)
    history = read_csv(f"{trainer.log_dir}/dse_history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert {row["layer"] for row in history} == {"head (input)"}  # the capture side, not the logits
    assert {row["representation"] for row in history} == {"Z"}
    assert {row["n"] for row in history} == {"60"} and {row["bandwidth"] for row in history} == {"rms"}
    # The resolved number: the probe's RMS radius (the default preset), recorded per probe.
    assert all(0 < float(row["sigma"]) < 100 for row in history) and len({row["sigma"] for row in history}) == 3
    assert {row["t"] for row in history} == {"1"}
    assert all(float(row["forward_seconds"]) <= float(row["probe_seconds"]) for row in history)
    for row in history:
        assert math.isfinite(float(row["cse"])) and math.isfinite(float(row["csmi_y"]))


def test_supervised_training_raises_dsmi_with_the_labels(tmp_path):
    trainer, _ = fit(tmp_path, DSEMonitor(metrics=("dsmi_y",)), max_epochs=8)
    history = read_csv(f"{trainer.log_dir}/dse_history.csv")
    assert float(history[-1]["dsmi_y"]) > float(history[0]["dsmi_y"])


def test_training_with_the_monitor_is_bit_identical_to_training_without(tmp_path):
    # Dropout and a shuffled loader both draw from the global RNG during training.
    _, without = fit(tmp_path / "a", None, max_epochs=2)
    _, with_monitor = fit(tmp_path / "b", DSEMonitor(metrics=("dse", "dsmi_y", "dsmi_x")), max_epochs=2)
    for (name, a), (_, b) in zip(without.state_dict().items(), with_monitor.state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_continues_the_curves_without_a_second_baseline(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, save_top_k=-1)
    pl.seed_everything(0, verbose=False)
    trainer = trainer_for(tmp_path, [DSEMonitor(probe_size=40), checkpoints], max_epochs=2, enable_checkpointing=True)
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    first_indices = trainer.callbacks[0].probe_indices.clone()

    resumed_monitor = DSEMonitor(probe_size=40, seed=123)  # the checkpoint's probe wins over a new seed
    resumed = trainer_for(tmp_path, [resumed_monitor], max_epochs=4, enable_checkpointing=True)
    resumed.fit(TinyClassifier(), datamodule=BlobData(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert sorted(resumed_monitor.history) == [0, 1, 2, 3, 4]
    assert torch.equal(resumed_monitor.probe_indices, first_indices)
    history = read_csv(f"{resumed.log_dir}/dse_history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1, 2, 3, 4]
    logged = [float(r["dse/epoch"]) for r in read_csv(f"{resumed.log_dir}/metrics.csv") if r.get("dse/epoch")]
    assert logged == [3, 4]


def test_record_metrics_copies_validation_values_into_the_history(tmp_path):
    trainer, _ = fit(tmp_path, DSEMonitor(metrics=("dse",), record_metrics=("val_loss",)), max_epochs=2)
    history = read_csv(f"{trainer.log_dir}/dse_history.csv")
    assert history[0]["val_loss"] == ""  # the baseline runs before any validation epoch
    assert float(history[2]["val_loss"]) == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    assert float(history[1]["val_loss"]) != float(history[2]["val_loss"])


def test_every_n_epochs_and_a_probe_subset(tmp_path):
    monitor = DSEMonitor(every_n_epochs=2, probe_size=25, metrics=("dse",))
    trainer, _ = fit(tmp_path, monitor, max_epochs=5)
    assert sorted(monitor.history) == [0, 2, 4]
    assert {rows["Z"]["n"] for rows in monitor.history.values()} == {25}
    assert len(set(monitor.probe_indices.tolist())) == 25 and monitor.probe_indices.max() < 60


def test_explicit_probe_tensors_and_named_layer_output(tmp_path):
    x, y = blob_data(40, seed=5)
    monitor = DSEMonitor(layer="backbone.0", capture="output", probe=(x, y), name="hidden", metrics=("dse", "dsmi_y"))
    trainer, _ = fit(tmp_path, monitor, max_epochs=1)
    rows = [row for row in read_csv(f"{trainer.log_dir}/metrics.csv") if row.get("dse/hidden")]
    assert len(rows) == 2 and all(row["dsmi/hidden_Y"] for row in rows)
    assert monitor.history[0]["hidden"]["layer"] == "backbone.0 (output)" and monitor.history[0]["hidden"]["n"] == 40
    assert "dse/probe_seconds_hidden" in trainer.callback_metrics


def test_two_monitors_on_different_layers_coexist_and_keep_separate_state(tmp_path):
    head = DSEMonitor(metrics=("dse",))
    hidden = DSEMonitor(layer="backbone.0", capture="output", name="hidden", metrics=("dse",))
    assert head.state_key != hidden.state_key
    pl.seed_everything(0, verbose=False)
    trainer = trainer_for(tmp_path, [head, hidden], max_epochs=1)
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    assert head.history[1]["Z"]["dse"] != hidden.history[1]["hidden"]["dse"]
    with pytest.raises(RuntimeError, match="state_key` must be unique"):  # Lightning's own check
        trainer_for(tmp_path, [DSEMonitor(), DSEMonitor()], max_epochs=1)


def test_hooks_are_removed_and_module_modes_restored(tmp_path):
    class ModeSpy(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            self.modes = [m.training for m in pl_module.modules()]
            self.hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in pl_module.modules())

    class PartlyFrozen(TinyClassifier):
        def on_train_epoch_start(self):
            self.backbone[2].eval()  # a user keeps this Dropout in eval mode

    spy = ModeSpy()
    pl.seed_everything(0, verbose=False)
    trainer = trainer_for(tmp_path, [DSEMonitor(metrics=("dse",)), spy], max_epochs=1)
    model = PartlyFrozen()
    trainer.fit(model, datamodule=BlobData())
    assert spy.hooks == 0
    assert spy.modes == [True, True, True, True, False, True]  # model, backbone, 0, 1, dropout, head


def test_unknown_layer_fails_in_setup_listing_valid_names(tmp_path):
    with pytest.raises(ValueError, match=r"layer 'backbone\.9' is not a submodule .* backbone\.0, backbone\.1"):
        fit(tmp_path, DSEMonitor(layer="backbone.9"), max_epochs=1)


def test_a_hook_that_never_fires_fails_before_training_and_leaves_no_hook(tmp_path):
    class UnusedTail(TinyClassifier):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(3, 3)  # the last Linear, never called

    model = UnusedTail()
    monitor = DSEMonitor(metrics=("dse",))
    with pytest.raises(DryRunError, match=r"never fired .* torch.compile.*The batch was \[Tensor\(float32, \[4, 8\]\)"):
        fit(tmp_path, monitor, max_epochs=2, model=model)
    assert model.trainer.current_epoch == 0 and monitor.history == {}  # the dry run, before any epoch
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_configuration_errors_fail_early_with_a_fix(tmp_path):
    x, y = blob_data(10)
    with pytest.raises(ValueError, match="need labels"):
        fit(tmp_path, DSEMonitor(probe=(x,), metrics=("dse", "dsmi_y")), max_epochs=1)
    with pytest.raises(ValueError, match="at least 2"):
        fit(tmp_path, DSEMonitor(probe=(x[:1], y[:1])), max_epochs=1)
    with pytest.raises(ValueError, match="has 0 sample"):  # an empty dataset is not "no probe"
        fit(tmp_path, DSEMonitor(probe=torch.utils.data.TensorDataset(x[:0], y[:0])), max_epochs=1)
    with pytest.raises(ValueError, match="every_n_epochs must be an integer >= 1"):
        DSEMonitor(every_n_epochs=0)
    with pytest.raises(ValueError, match="metrics must be"):
        DSEMonitor(metrics=("dse", "entropy"))
    with pytest.raises(ValueError, match="sigma"):
        DSEMonitor(sigma=-1)


def test_diverging_activations_warn_once_log_nan_and_training_goes_on(tmp_path):
    class Diverging(TinyClassifier):
        def forward(self, x):
            hidden = self.backbone(x)
            if not self.training:
                hidden = hidden * float("nan")
            return self.head(hidden)

    with pytest.warns(DSEMonitorWarning, match="NaN or Inf") as record:
        trainer, _ = fit(tmp_path, DSEMonitor(), max_epochs=2, model=Diverging())
    assert sum("NaN or Inf" in str(w.message) for w in record) == 1
    assert trainer.current_epoch == 2
    assert math.isnan(float(trainer.callback_metrics["dse/Z"]))


def test_a_failing_metric_logs_nan_while_the_others_go_on(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("simulated failure")

    monkeypatch.setattr("dse_callback.measure.metrics.diffusion_spectral_mutual_information", broken)
    with pytest.warns(DSEMonitorWarning, match="could not compute dsmi_y"):
        trainer, _ = fit(tmp_path, DSEMonitor(metrics=("dse", "dsmi_y")), max_epochs=1)
    assert math.isnan(float(trainer.callback_metrics["dsmi/Z_Y"]))
    assert math.isfinite(float(trainer.callback_metrics["dse/Z"]))


def test_a_failing_input_clustering_logs_nan_for_dsmi_x_only(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("simulated clustering failure")

    monkeypatch.setattr(measurement_module, "spectral_clusters", broken)
    with pytest.warns(DSEMonitorWarning, match="could not cluster"):
        trainer, _ = fit(tmp_path, DSEMonitor(), max_epochs=1)
    assert math.isnan(float(trainer.callback_metrics["dsmi/Z_X"]))
    assert math.isfinite(float(trainer.callback_metrics["dsmi/Z_Y"]))


def test_a_saturated_bandwidth_warns_once(tmp_path):
    with pytest.warns(BandwidthWarning, match="floor") as record:
        fit(tmp_path, DSEMonitor(sigma=1e6, metrics=("dse",)), max_epochs=2)
    assert sum(issubclass(w.category, BandwidthWarning) for w in record) == 1


def test_tensorboard_gets_scalars_spectrum_figures_and_a_layout(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _ = fit(tmp_path, DSEMonitor(), max_epochs=2, logger="tensorboard")
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"dse/Z", "dsmi/Z_Y", "dsmi/Z_X", "dse/epoch"} <= set(tags["scalars"])
    assert [event.step for event in events.Scalars("dse/Z")] == [0, 5, 11]
    assert len(events.Images("dse/Z_spectrum")) == 3
    assert events.PluginTagToContent("custom_scalars")  # the layout grouping DSE and DSMI


def test_the_lightning_namespace_has_its_own_monitor(tmp_path):
    lightning = pytest.importorskip("lightning")
    from dse_callback.lightning import DSEMonitor as LightningDSEMonitor

    TinyModel, Data = make_classes(lightning.pytorch)
    monitor = LightningDSEMonitor(metrics=("dse", "dsmi_y"))
    trainer = lightning.pytorch.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=lightning.pytorch.loggers.CSVLogger(str(tmp_path)),
        callbacks=[monitor],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyModel(), datamodule=Data())
    assert sorted(monitor.history) == [0, 1]
    # Why each namespace needs its own class: Lightning's own type checks (is_overridden,
    # LightningCLI's class resolution) reject a callback built on the other namespace.
    from lightning.pytorch.utilities.model_helpers import is_overridden

    assert isinstance(monitor, lightning.pytorch.Callback) and not isinstance(monitor, pl.Callback)
    assert is_overridden("state_dict", monitor)
    with pytest.raises(ValueError, match="Expected a parent"):
        is_overridden("state_dict", DSEMonitor())


def test_failing_history_writes_and_figures_warn_once_and_training_goes_on(tmp_path, monkeypatch):
    from dse_callback.report import history as reporting

    def broken(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(reporting, "tempfile", type("Full", (), {"mkstemp": staticmethod(broken)}))
    monkeypatch.setattr("dse_callback.integrations.figures.log_figures", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _ = fit(tmp_path, DSEMonitor(probe_size=40), max_epochs=3, logger="tensorboard")
    assert trainer.current_epoch == 3  # the run finished
    messages = [str(w.message) for w in caught if issubclass(w.category, DSEMonitorWarning)]
    assert sum("could not write the history" in m for m in messages) == 1
    assert sum("could not add the figures" in m for m in messages) == 1
    assert sorted(trainer.callbacks[0].history) == [0, 1, 2, 3]  # values kept in memory and checkpoints

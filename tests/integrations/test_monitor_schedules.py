"""DSEMonitor under Lightning's schedules and entry points: validation that runs late or
never, debugging runs, accumulation, step limits, the tuner, repeated fits, evaluation
calls with the monitor attached, and two monitors on one Trainer."""

import csv
import math

import lightning.pytorch
import pytest
import pytorch_lightning
import torch
from torch.utils.data import DataLoader, TensorDataset

from dse_callback.integrations.lightning_callback import DSEMonitor as LightningMonitor
from dse_callback.integrations.pl_callback import DSEMonitor as PLMonitor

from lightning_helpers import blob_data, make_classes

NAMESPACES = {"pytorch_lightning": (pytorch_lightning, PLMonitor), "lightning": (lightning.pytorch, LightningMonitor)}


def loader(n, seed, shuffle=False):
    return DataLoader(TensorDataset(*blob_data(n, seed=seed)), batch_size=16, shuffle=shuffle)


def classes(namespace):
    pl, monitor = NAMESPACES[namespace]
    TinyClassifier, BlobData = make_classes(pl)

    class OwnData(TinyClassifier):
        """Brings its own loaders: Lightning reads val_dataloader() only when validation runs."""

        def train_dataloader(self):
            return loader(96, seed=0, shuffle=True)

        def val_dataloader(self):
            return loader(60, seed=1)

        def test_step(self, batch, batch_idx):
            self.log("test_loss", torch.nn.functional.cross_entropy(self(batch[0]), batch[1]))

        def test_dataloader(self):
            return loader(30, seed=2)

        def predict_step(self, batch, batch_idx):
            return self(batch[0])

        def predict_dataloader(self):
            return loader(30, seed=2)

    class TrainOnly(TinyClassifier):
        def train_dataloader(self):
            return loader(96, seed=0, shuffle=True)

    return pl, monitor, TinyClassifier, BlobData, OwnData, TrainOnly


def trainer_for(pl, tmp_path, callbacks, max_epochs=2, **kwargs):
    pl.seed_everything(0, verbose=False)
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=pl.loggers.CSVLogger(str(tmp_path), name="run"),
        default_root_dir=str(tmp_path),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def finite(monitor, key="dse") -> list[float]:
    values = [rows[next(iter(rows))][key] for _, rows in sorted(monitor.history.items())]
    assert all(math.isfinite(value) for value in values), values
    return values


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
@pytest.mark.parametrize(
    "schedule",
    [
        dict(check_val_every_n_epoch=2, num_sanity_val_steps=0),
        dict(limit_val_batches=0),
        dict(val_check_interval=3, num_sanity_val_steps=0),
    ],
    ids=["check_val_every_n_epoch", "limit_val_batches=0", "val_check_interval"],
)
def test_the_probe_comes_from_val_dataloader_whatever_the_validation_schedule(tmp_path, namespace, schedule):
    pl, Monitor, *_, OwnData, _ = classes(namespace)
    monitor = Monitor(metrics=("dse", "dsmi_y"))
    trainer = trainer_for(pl, tmp_path, [monitor], **schedule)
    trainer.fit(OwnData())
    assert sorted(monitor.history) == [0, 1, 2] and len(monitor.tracker.probe_set) == 60
    finite(monitor)
    finite(monitor, "dsmi_y")


def test_loaders_given_to_fit_serve_as_the_probe_when_validation_waits(tmp_path):
    pl, Monitor, *_, TrainOnly = classes("pytorch_lightning")
    monitor = Monitor(metrics=("dse",))
    trainer = trainer_for(pl, tmp_path, [monitor], check_val_every_n_epoch=3, num_sanity_val_steps=0)
    trainer.fit(TrainOnly(), val_dataloaders=loader(44, seed=1))
    assert sorted(monitor.history) == [0, 1, 2] and len(monitor.tracker.probe_set) == 44


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_no_validation_data_anywhere_fails_in_setup_with_the_fix(tmp_path, namespace):
    pl, Monitor, *_, TrainOnly = classes(namespace)

    class Recorded(TrainOnly):
        started = False

        def on_fit_start(self):  # runs after every callback's setup
            self.started = True

    model = Recorded()
    with pytest.raises(
        ValueError, match=r"no validation data .* Pass probe=\(x, y\) or a Dataset .*limit_val_batches=0"
    ):
        trainer_for(pl, tmp_path, [Monitor()]).fit(model)
    assert not model.started


def test_a_float64_probe_on_a_float32_model_measures_what_float32_does(tmp_path):
    pl, Monitor, TinyClassifier, BlobData, *_ = classes("pytorch_lightning")
    x, y = blob_data(40, seed=1)
    runs = {}
    for dtype in (torch.float32, torch.float64):
        monitor = Monitor(probe=(x.to(dtype), y), metrics=("dse",))
        trainer_for(pl, tmp_path / str(dtype), [monitor]).fit(TinyClassifier(), datamodule=BlobData())
        runs[dtype] = finite(monitor)
    assert runs[torch.float64] == pytest.approx(runs[torch.float32], abs=1e-6)  # NaN for the whole run before


@pytest.mark.parametrize(
    "limits, steps",
    [
        (dict(fast_dev_run=True), {0: 0, 1: 1}),
        (dict(overfit_batches=2), {0: 0, 1: 2, 2: 4}),
        (dict(accumulate_grad_batches=2), {0: 0, 1: 3, 2: 6}),  # 6 batches an epoch, one step per 2
        (dict(max_epochs=-1, max_steps=8), {0: 0, 1: 6, 2: 8}),  # the last epoch stops mid-way, and is probed
    ],
    ids=["fast_dev_run", "overfit_batches", "accumulate_grad_batches", "max_steps"],
)
def test_debugging_runs_accumulation_and_step_limits(tmp_path, limits, steps):
    pl, Monitor, TinyClassifier, BlobData, *_ = classes("pytorch_lightning")
    monitor = Monitor(metrics=("dse",))
    max_epochs = limits.pop("max_epochs", 2)
    trainer_for(pl, tmp_path, [monitor], max_epochs=max_epochs, **limits).fit(TinyClassifier(), datamodule=BlobData())
    assert {epoch: rows["Z"]["step"] for epoch, rows in monitor.history.items()} == steps
    finite(monitor)


def test_lr_find_before_fit_leaves_the_baseline_of_the_untrained_model(tmp_path):
    pl, Monitor, TinyClassifier, BlobData, *_ = classes("pytorch_lightning")
    from pytorch_lightning.tuner import Tuner

    plain, tuned = Monitor(metrics=("dse",)), Monitor(metrics=("dse",))
    trainer_for(pl, tmp_path / "plain", [plain]).fit(TinyClassifier(), datamodule=BlobData())
    trainer = trainer_for(pl, tmp_path / "tuned", [tuned])  # seeds: the same initial weights as `plain`
    model, data = TinyClassifier(), BlobData()
    Tuner(trainer).lr_find(model, datamodule=data, num_training=8, update_attr=False)
    assert tuned.history == {}  # the search restores the monitor's state with the model's
    trainer.fit(model, datamodule=data)
    assert sorted(tuned.history) == [0, 1, 2]
    assert tuned.history[0]["Z"]["dse"] == pytest.approx(plain.history[0]["Z"]["dse"], abs=1e-9)


def test_two_fits_with_one_monitor(tmp_path):
    pl, Monitor, TinyClassifier, BlobData, *_ = classes("pytorch_lightning")
    monitor, model = Monitor(metrics=("dse",)), TinyClassifier()
    trainer = trainer_for(pl, tmp_path / "first", [monitor])
    trainer.fit(model, datamodule=BlobData())
    first = dict(monitor.history)
    trainer.fit_loop.max_epochs = 3  # the same Trainer goes on: no second baseline, one more epoch
    trainer.fit(model, datamodule=BlobData())
    assert sorted(monitor.history) == [0, 1, 2, 3] and monitor.history[2] == first[2]
    second = trainer_for(pl, tmp_path / "second", [monitor])  # a new Trainer is a new run, from epoch 0
    second.fit(model, datamodule=BlobData())
    assert sorted(monitor.history) == [0, 1, 2]
    assert monitor.history[0]["Z"]["dse"] == pytest.approx(first[2]["Z"]["dse"], abs=0.5)  # the trained model
    with open(f"{second.log_dir}/dse_history.csv") as stream:
        assert [row["epoch"] for row in csv.DictReader(stream)] == ["0", "1", "2"]


def test_validate_test_and_predict_with_the_monitor_attached(tmp_path):
    pl, Monitor, *_, OwnData, _ = classes("lightning")
    monitor, model = Monitor(metrics=("dse",)), OwnData()
    trainer = trainer_for(pl, tmp_path, [monitor], max_epochs=1)
    trainer.validate(model)  # before any fit: the monitor stays out of the way
    assert monitor.history == {}
    trainer.fit(model)
    history = dict(monitor.history)
    assert trainer.validate(model)[0]["val_loss"] > 0
    assert trainer.test(model)[0]["test_loss"] > 0
    assert torch.cat(trainer.predict(model)).shape == (30, 3)
    assert monitor.history == history and sorted(history) == [0, 1]


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_two_monitors_on_one_trainer_with_late_validation(tmp_path, namespace):
    pl, Monitor, *_, OwnData, _ = classes(namespace)
    head = Monitor(metrics=("dse",))
    hidden = Monitor(layer="backbone.0", capture="output", name="hidden", metrics=("dse", "rankme"))
    trainer = trainer_for(pl, tmp_path, [head, hidden], check_val_every_n_epoch=2, num_sanity_val_steps=0)
    trainer.fit(OwnData())
    assert sorted(head.history) == sorted(hidden.history) == [0, 1, 2]
    assert finite(head) != finite(hidden)
    assert {"dse/Z", "dse/hidden", "rankme/hidden"} <= set(trainer.callback_metrics)

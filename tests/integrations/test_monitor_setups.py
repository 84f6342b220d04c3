"""DSEMonitor in real training setups: precision plugins, dict batches, failing forwards,
several layers in one pass, and the plain-loop core against the callback."""

import csv
import math
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dse_callback import DSEMonitor, DSETracker
from dse_callback.measure.measurer import DSEMonitorWarning, Measurer
from dse_callback.measure.settings import MeasureSettings
from dse_callback.probe.batches import BatchFormatError

from lightning_helpers import blob_data, make_classes

TinyClassifier, BlobData = make_classes(pl)
FOUR_LAYERS = ["backbone.0", "backbone.1", "backbone.2", "head"]


def fit(tmp_path, monitor, model=None, data=None, max_epochs=1, **kwargs):
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(str(tmp_path), name="run"),
        callbacks=[monitor],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )
    trainer.fit(model or TinyClassifier(), datamodule=data or BlobData())
    return trainer


class ForwardSpy:
    """A `forward=` callable that counts the probe's forward calls and what they ran under."""

    def __init__(self):
        self.calls, self.input_dtypes, self.autocast = 0, set(), set()

    def __call__(self, module, inputs):
        self.calls += 1
        self.input_dtypes.add(inputs.dtype)
        self.autocast.add(torch.is_autocast_enabled("cpu"))
        return module(inputs)


@pytest.mark.parametrize(
    "precision, input_dtype, autocast, probe_dtype",
    [
        ("bf16-true", torch.bfloat16, False, torch.float64),  # a NumPy (float64) probe: cast, then converted
        ("bf16-mixed", torch.float32, True, torch.float64),
        ("16-true", torch.float16, False, None),  # the validation set, float32
        ("64-true", torch.float64, False, None),
    ],
)
def test_the_probe_runs_under_the_trainers_precision_and_logs_finite_values(
    tmp_path, precision, input_dtype, autocast, probe_dtype
):
    spy = ForwardSpy()
    x, y = blob_data(60, seed=1)
    probe = None if probe_dtype is None else (x.to(probe_dtype), y)
    monitor = DSEMonitor(probe=probe, metrics=("dse", "dsmi_y", "rankme"), forward=spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DSEMonitorWarning)  # no probe failure hidden behind a NaN
        trainer = fit(tmp_path, monitor, precision=precision)
    assert trainer.current_epoch == 1 and sorted(monitor.history) == [0, 1]
    for key in ("dse/Z", "dsmi/Z_Y", "rankme/Z"):
        assert math.isfinite(float(trainer.callback_metrics[key]))
    assert spy.input_dtypes == {input_dtype} and spy.autocast == {autocast}  # as a validation step runs


class DictBlobs(Dataset):
    """Items {"inputs": {"image": x}, "label": y}: the label one level up from the image."""

    def __init__(self, n, seed):
        self.x, self.y = blob_data(n, seed=seed)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return {"inputs": {"image": self.x[index]}, "label": self.y[index]}


def test_dict_batches_measure_the_same_values_as_tuples():
    model = TinyClassifier()
    x, y = blob_data(40, seed=1)
    as_tuples = DSETracker(probe=(x, y), metrics=("dse", "dsmi_y"), probe_batch_size=16).measure(model, 0)
    as_dicts = DSETracker(
        probe=DictBlobs(40, seed=1),
        input_key="image",
        label_key="label",
        metrics=("dse", "dsmi_y"),
        probe_batch_size=16,
    ).measure(model, 0)
    assert (as_dicts["dse/Z"], as_dicts["dsmi/Z_Y"]) == (as_tuples["dse/Z"], as_tuples["dsmi/Z_Y"])
    by_callable = DSETracker(
        probe=DictBlobs(40, seed=1),
        batch_to_inputs=lambda b: b["inputs"]["image"],
        label_key="label",
        metrics=("dse",),
        probe_batch_size=16,
    ).measure(model, 0)
    assert by_callable["dse/Z"] == as_tuples["dse/Z"]


def test_dict_batches_train_under_the_callback(tmp_path):
    class DictClassifier(TinyClassifier):
        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self(batch["inputs"]["image"]), batch["label"])

        def validation_step(self, batch, batch_idx):
            pass

    class DictData(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(DictBlobs(48, seed=0), batch_size=16, shuffle=True)

        def val_dataloader(self):
            return DataLoader(DictBlobs(30, seed=1), batch_size=16)

    monitor = DSEMonitor(input_key="image", label_key="label")  # the validation set as probe
    trainer = fit(tmp_path, monitor, model=DictClassifier(), data=DictData())
    assert all(math.isfinite(float(trainer.callback_metrics[key])) for key in ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X"))


def test_a_batch_that_fits_no_option_fails_in_setup_showing_the_batch(tmp_path):
    picture = r"\{'inputs': \{'image': Tensor\(float32, \[1, 8\]\)\}, 'label': Tensor\(int64, \[1\]\)\}"
    with pytest.raises(BatchFormatError, match=f"cannot tell the inputs in the probe batch {picture}; pass input_key"):
        fit(tmp_path, DSEMonitor(probe=DictBlobs(20, seed=0)))
    with pytest.raises(BatchFormatError, match=f"label_key='target' is not in the probe batch {picture}"):
        fit(tmp_path, DSEMonitor(probe=DictBlobs(20, seed=0), input_key="image", label_key="target"))
    with pytest.raises(BatchFormatError, match=r"metrics \['dsmi_y'\] need labels.* label_key"):
        DSETracker(probe=DictBlobs(20, seed=0), input_key="image", metrics=("dse", "dsmi_y")).prepare_probe()


def test_a_forward_that_raises_during_the_probe_warns_once_logs_nan_and_training_completes(tmp_path):
    class TrainingOnly(TinyClassifier):
        """Passes the monitor's dry run (on_fit_start runs the callbacks' first), then fails every probe."""

        strict = False

        def on_fit_start(self):
            self.strict = True

        def forward(self, x):
            assert self.training or not self.strict, "this model only runs in training mode"
            return super().forward(x)

        def validation_step(self, batch, batch_idx):
            pass

    with pytest.warns(DSEMonitorWarning, match="forward pass failed .* only runs in training mode") as record:
        trainer = fit(tmp_path, DSEMonitor(), model=TrainingOnly(), max_epochs=2)
    assert sum("forward pass failed" in str(w.message) for w in record) == 1
    assert trainer.current_epoch == 2
    assert all(math.isnan(float(trainer.callback_metrics[key])) for key in ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X"))


def test_four_layers_cost_one_forward_call_per_probe_batch(tmp_path):
    spy = ForwardSpy()
    monitor = DSEMonitor(layers=FOUR_LAYERS, metrics=("dse", "dsmi_y", "dsmi_x"), probe_batch_size=16, forward=spy)
    trainer = fit(tmp_path, monitor)
    assert spy.calls == 1 + 2 * math.ceil(60 / 16)  # the dry run; baseline and one epoch, 4 batches each
    for name in FOUR_LAYERS:
        for key in (f"dse/{name}", f"dsmi/{name}_Y", f"dsmi/{name}_X"):
            assert math.isfinite(float(trainer.callback_metrics[key])), key
    assert "dse/Z" not in trainer.callback_metrics
    layers = {name: row["layer"] for name, row in monitor.history[1].items()}
    assert layers == {name: f"{name} (input)" for name in FOUR_LAYERS}
    with open(f"{trainer.log_dir}/dse_history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["epoch"], row["representation"]) for row in rows] == [(e, n) for e in "01" for n in FOUR_LAYERS]


def test_named_layers_and_the_default_key(tmp_path):
    monitor = DSEMonitor(layers={"hidden": "backbone.0", "penultimate": "head"}, metrics=("dse",), capture="output")
    trainer = fit(tmp_path, monitor)
    assert {"dse/hidden", "dse/penultimate"} <= set(trainer.callback_metrics)
    assert monitor.history[0]["penultimate"]["layer"] == "head (output)"
    with pytest.raises(ValueError, match="either layer="):
        DSEMonitor(layer="head", layers=["backbone.0"])
    with pytest.raises(ValueError, match="is not a submodule"):
        fit(tmp_path, DSEMonitor(layers=["backbone.0", "nothing"]))


def test_the_plain_loop_core_measures_what_the_callback_logs(tmp_path):
    x, y = blob_data(50, seed=3)
    options = dict(probe=(x, y), layers=["backbone.0", "head"], metrics=("dse", "dsmi_y", "dsmi_x", "rankme"))
    monitor = DSEMonitor(**options)
    trainer = fit(tmp_path, monitor, max_epochs=2)
    model = trainer.lightning_module
    tracker = DSETracker(**options)
    values = tracker.measure(model, epoch=2, step=trainer.global_step)
    for name in ("backbone.0", "head"):
        for metric in ("dse", "dsmi_y", "dsmi_x", "rankme"):
            assert values[tracker.keys[name][metric]] == monitor.history[2][name][metric], (name, metric)
    assert sorted(tracker.history) == [2] and tracker.history[2]["head"]["n"] == 50


def test_plain_loop_history_file_and_state(tmp_path):
    x, y = blob_data(30, seed=2)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    tracker = DSETracker(probe=(x, y), metrics=("dse", "rankme"), history_path=str(tmp_path / "h.csv"))
    first = tracker.measure(model, 0)
    assert first["dse/Z"] == tracker.history[0]["Z"]["dse"] and math.isfinite(first["rankme/Z"])
    restored = DSETracker(probe=(x, y), metrics=("dse", "rankme"))
    restored.load_state_dict(tracker.state_dict())
    assert restored.measure(model, 1)["dse/Z"] == first["dse/Z"]
    assert sorted(restored.history) == [0, 1]
    assert (tmp_path / "h.csv").read_text().splitlines()[0].startswith("epoch,representation,layer,dse,rankme")


def test_rankme_metric_matches_the_effective_rank_of_known_singular_values():
    generator = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(40, 5, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(5, 5, generator=generator, dtype=torch.float64))
    singular = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    z = u @ torch.diag(singular) @ v.T
    p = singular.numpy() / singular.sum().item() + 1e-7
    expected = float(np.exp(-(p * np.log(p)).sum()))
    measured = Measurer(MeasureSettings(metrics=("rankme",))).measure({"Z": z}, None, None)
    assert measured.values["Z"]["rankme"] == pytest.approx(expected, abs=1e-9)
    equal = Measurer(MeasureSettings(metrics=("rankme",))).measure({"Z": torch.eye(6, dtype=torch.float64)}, None, None)
    assert equal.values["Z"]["rankme"] == pytest.approx(6.0, abs=1e-5)

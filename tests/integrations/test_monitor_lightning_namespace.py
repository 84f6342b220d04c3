"""The monitor's guarantees under the `lightning.pytorch` namespace (test_monitor.py covers
`pytorch_lightning`): bit-identical training, resume, NaN survival, the Trainer's precision."""

import math

import pytest
import torch

lightning = pytest.importorskip("lightning")
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from dse_callback.lightning import DSEMonitor  # noqa: E402
from dse_callback.measure.measurer import DSEMonitorWarning  # noqa: E402

from lightning_helpers import make_classes  # noqa: E402

TinyClassifier, BlobData = make_classes(lightning.pytorch)


def fit(tmp_path, callbacks, max_epochs=2, model=None, ckpt_path=None, **kwargs):
    lightning.pytorch.seed_everything(0, verbose=False)
    kwargs.setdefault("enable_checkpointing", False)
    trainer = lightning.pytorch.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(str(tmp_path), name="run"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        **kwargs,
    )
    model = model or TinyClassifier()
    trainer.fit(model, datamodule=BlobData(), ckpt_path=ckpt_path)
    return trainer, model


def test_training_is_bit_identical_with_and_without_the_monitor(tmp_path):
    _, without = fit(tmp_path / "a", [])
    _, with_monitor = fit(tmp_path / "b", [DSEMonitor(layers=["backbone.0", "head"])])
    for (name, a), (_, b) in zip(without.state_dict().items(), with_monitor.state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_continues_the_curves(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    fit(tmp_path, [DSEMonitor(metrics=("dse",)), checkpoint], enable_checkpointing=True)
    resumed = DSEMonitor(metrics=("dse",))
    fit(tmp_path, [resumed], max_epochs=3, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert sorted(resumed.history) == [0, 1, 2, 3]


def test_nan_activations_and_a_failing_forward_never_end_the_run(tmp_path):
    class Diverging(TinyClassifier):
        def forward(self, x):
            hidden = self.backbone(x)
            return self.head(hidden if self.training else hidden * float("nan"))

    with pytest.warns(DSEMonitorWarning, match="NaN or Inf"):
        trainer, _ = fit(tmp_path / "nan", [DSEMonitor()], model=Diverging())
    assert trainer.current_epoch == 2 and math.isnan(float(trainer.callback_metrics["dse/Z"]))

    calls = []

    def failing(module, inputs):  # passes the dry run before training, then fails every probe
        calls.append(len(inputs))
        if len(calls) > 1:
            raise RuntimeError("simulated forward failure")
        return module(inputs)

    with pytest.warns(DSEMonitorWarning, match="forward pass failed"):
        trainer, _ = fit(tmp_path / "raise", [DSEMonitor(forward=failing)])
    assert trainer.current_epoch == 2 and math.isnan(float(trainer.callback_metrics["dsmi/Z_Y"]))


def test_bf16_true_trains_and_logs_finite_values(tmp_path):
    trainer, _ = fit(tmp_path, [DSEMonitor(metrics=("dse", "dsmi_y"))], max_epochs=1, precision="bf16-true")
    assert math.isfinite(float(trainer.callback_metrics["dse/Z"]))

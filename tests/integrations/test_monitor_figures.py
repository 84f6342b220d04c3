"""The monitor's figures reach every logger: CSV runs get PNG files, MLflow artifacts, no
TensorBoard needed."""

import glob
import os

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from dse_callback import DSEMonitor

from lightning_helpers import make_classes

pytest.importorskip("matplotlib")
TinyClassifier, BlobData = make_classes(pl)


def fit(tmp_path, monitor, logger, max_epochs=2):
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[monitor],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    return trainer


def pngs(folder) -> list[str]:
    return sorted(os.path.basename(path) for path in glob.glob(os.path.join(folder, "**", "*.png"), recursive=True))


def test_log_spectrum_writes_pngs_for_a_csv_run_and_the_default_does_not(tmp_path):
    trainer = fit(tmp_path / "on", DSEMonitor(probe_size=40, log_spectrum=True), CSVLogger(str(tmp_path / "on")))
    steps = [rows["Z"]["step"] for _, rows in sorted(trainer.callbacks[0].history.items())]
    expected = [f"{tag}_step{step}.png" for step in steps for tag in ("dse_Z_spectrum", "dse_information_plane")]
    assert pngs(os.path.join(trainer.log_dir, "dse_figures")) == sorted(expected)
    trainer = fit(tmp_path / "off", DSEMonitor(probe_size=40), CSVLogger(str(tmp_path / "off")))
    assert pngs(tmp_path / "off") == []  # a CSV run gets files only when asked


def test_an_mlflow_run_gets_the_figures_as_artifacts(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from pytorch_lightning.loggers import MLFlowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    logger = MLFlowLogger(experiment_name="dse", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    trainer = fit(tmp_path, DSEMonitor(probe_size=40, metrics=("dse",)), logger, max_epochs=1)
    steps = [rows["Z"]["step"] for _, rows in sorted(trainer.callbacks[0].history.items())]
    artifacts = tmp_path / "mlruns" / "*" / logger.run_id / "artifacts" / "dse_figures"
    assert pngs(glob.glob(str(artifacts))[0]) == sorted(f"dse_Z_spectrum_step{step}.png" for step in steps)

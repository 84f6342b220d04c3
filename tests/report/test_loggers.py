"""log_figure: one matplotlib figure to each logger the way it takes images, then closed."""

import glob
import os

import pytest

from dse_callback.report.figures import pyplot, spectrum_figure
from dse_callback.report.loggers import figure_filename, log_figure, log_figures, takes_images

pytest.importorskip("matplotlib")  # figures need it; the whole module skips without


def figure():
    return spectrum_figure([1.0, 0.5, 0.25], "spectrum", 1)


def is_open(fig) -> bool:
    return pyplot().fignum_exists(fig.number)


class CometLikeExperiment:
    """Stands in for a comet_ml experiment (not installed here): recognised by its module."""

    __module__ = "comet_ml.experiment"

    def __init__(self):
        self.figures = []

    def log_figure(self, figure_name=None, figure=None, overwrite=False, step=None):
        self.figures.append((figure_name, step, figure.get_axes()[0].get_title()))


class CometLogger:
    """Named like Lightning's CometLogger; its `experiment` is the comet_ml experiment."""

    def __init__(self):
        self.experiment = CometLikeExperiment()


class BrokenExperiment(CometLikeExperiment):
    def log_figure(self, **kwargs):
        raise OSError("disk full")


class BrokenLogger(CometLogger):
    def __init__(self):
        self.experiment = BrokenExperiment()


def test_a_csv_logger_gets_a_png_under_its_run_directory_and_the_figure_is_closed(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path), name="run")
    fig = figure()
    sent = log_figure([logger], "dse/Z_spectrum", fig, 7)
    expected = os.path.join(logger.log_dir, "dse_figures", "dse_Z_spectrum_step7.png")
    assert sent == [expected] and os.path.getsize(expected) > 1000
    assert not is_open(fig) and not takes_images(logger)


def test_without_a_logger_the_png_goes_to_the_directory_or_nowhere(tmp_path):
    fig = figure()
    assert log_figure([], "dse/Z_spectrum", fig, 0, directory=str(tmp_path)) == [
        str(tmp_path / "dse_figures" / "dse_Z_spectrum_step0.png")
    ]
    other = figure()
    assert log_figure(None, "dse/Z_spectrum", other, 1) == [] and not is_open(other)
    assert figure_filename("dse/run 1:Z", 3) == "dse_run_1_Z_step3.png"


def test_tensorboard_gets_the_image_at_its_step(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), name="run")
    fig = figure()
    assert log_figure([logger], "dse/Z_spectrum", fig, 5) == ["TensorBoardLogger"] and not is_open(fig)
    logger.experiment.flush()
    events = event_accumulator.EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert [image.step for image in events.Images("dse/Z_spectrum")] == [5]
    assert not glob.glob(str(tmp_path / "**" / "*.png"), recursive=True)  # no PNG beside a logger that takes images


def test_comet_by_class_and_module_and_a_failing_logger_does_not_stop_the_others(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    comet, bare = CometLogger(), CometLikeExperiment()
    log_figures([comet, bare], [("dse/Z_spectrum", figure()), ("dse/information_plane", figure())], 3)
    assert (
        comet.experiment.figures
        == bare.figures
        == [("dse/Z_spectrum", 3, "spectrum")] + [("dse/information_plane", 3, "spectrum")]
    )
    csv, fig = CSVLogger(str(tmp_path), name="run"), figure()
    with pytest.raises(OSError, match="disk full"):
        log_figure([BrokenLogger(), csv], "dse/Z_spectrum", fig, 2)
    assert os.path.exists(os.path.join(csv.log_dir, "dse_figures", "dse_Z_spectrum_step2.png")) and not is_open(fig)


def test_mlflow_file_store_gets_the_figure_as_an_artifact(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    logger = MLFlowLogger(experiment_name="dse", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    fig = figure()
    assert log_figure([logger], "dse/Z_spectrum", fig, 4) == ["MLFlowLogger"] and not is_open(fig)
    artifacts = glob.glob(str(tmp_path / "mlruns" / "*" / logger.run_id / "artifacts" / "dse_figures" / "*.png"))
    assert [os.path.basename(path) for path in artifacts] == ["dse_Z_spectrum_step4.png"]


def test_wandb_offline_gets_the_figure_from_the_logger_and_from_a_bare_run(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(name, value)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="dse")
    try:
        assert log_figure([logger], "dse/Z_spectrum", figure(), 6) == ["WandbLogger"]
        assert log_figure([logger.experiment], "dse/information_plane", figure(), 6) == ["Run"]
        run_dir = logger.experiment.dir
    finally:
        wandb.finish()
    images = sorted(os.path.basename(path) for path in glob.glob(f"{run_dir}/media/images/dse/*.png"))
    assert [name.split("_")[0] for name in images] == ["Z", "information"], images

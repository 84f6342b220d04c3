"""Information-plane figures: TensorBoard during training, `dse-experiment plot --plane` after."""

import csv

import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from dse_callback import DSEMonitor
from dse_callback.report.figures import close_figure, information_plane_figure
from experiments.cli import main
from experiments.plot import plot_information_plane, read_histories, read_history

from lightning_helpers import make_classes

TinyClassifier, BlobData = make_classes(pl)
LAYERS = {"hidden": "backbone.0", "penultimate": "head"}


@pytest.fixture(scope="module")
def layered_run(tmp_path_factory):
    """A one-epoch run watching two layers, logged to TensorBoard."""
    root = tmp_path_factory.mktemp("plane")
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(str(root), name="run"),
        callbacks=[DSEMonitor(layers=LAYERS)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    return trainer


def test_tensorboard_gets_one_information_plane_per_probe_and_a_spectrum_per_layer(layered_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(layered_run.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("dse/information_plane")) == 2  # baseline and one epoch
    for name in LAYERS:
        assert len(events.Images(f"dse/{name}_spectrum")) == 2


def test_plot_draws_the_information_plane_of_every_layer_from_the_history(layered_run, tmp_path):
    histories = read_histories(f"{layered_run.log_dir}/dse_history.csv")
    assert list(histories) == ["hidden", "penultimate"]
    assert histories["hidden"]["epoch"] == [0, 1]
    assert read_history(f"{layered_run.log_dir}/dse_history.csv", "penultimate") == histories["penultimate"]
    main(["plot", layered_run.log_dir, "--out", str(tmp_path / "curves.png"), "--plane", str(tmp_path / "plane.png")])
    assert (tmp_path / "plane.png").stat().st_size > 10_000 and (tmp_path / "curves.png").stat().st_size > 10_000


def test_the_information_plane_needs_both_mutual_informations(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / "dse_history.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["epoch", "representation", "layer", "dse"])
        writer.writerows([[0, "Z", "head (input)", 1.0], [1, "Z", "head (input)", 2.0]])
    with pytest.raises(ValueError, match="no history .* finite dsmi_x and dsmi_y"):
        plot_information_plane([folder], tmp_path / "plane.png")


def test_information_plane_figure_colours_points_by_epoch():
    figure = information_plane_figure({"a": [(0, 0.1, 0.2), (1, 0.3, 0.5)], "b": [(0, 0.2, 0.1), (4, 0.1, 0.9)]})
    collections = figure.axes[0].collections
    assert [list(c.get_array()) for c in collections] == [[0, 1], [0, 4]]
    assert figure.axes[1].get_ylabel() == "epoch"  # the colour bar
    close_figure(figure)

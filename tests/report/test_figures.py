"""Information-plane figures: TensorBoard during training, `dse-experiment plot --plane` after."""

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from dse_callback import DSEMonitor
from dse_callback.report.figures import close_figure, information_plane_figure, profile_figure
from dse_callback.report.tensorboard import probe_figures
from dse_experiments.cli import main
from dse_experiments.plot import plot_information_plane, read_histories, read_history

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


def _profile(scales, normalized):
    return SimpleNamespace(scales=np.asarray(scales), normalized=np.asarray(normalized))


def test_profile_figure_puts_epochs_across_scales_up_and_colours_by_the_fraction_of_log2_n():
    rising = {0: _profile([0.25, 1.0, 4.0], [0.9, 0.5, 0.1]), 3: _profile([4.0, 0.25, 1.0], [0.2, 0.95, 0.6])}
    figure = profile_figure(rising)
    axis, colour_bar = figure.axes
    meshes = axis.collections
    assert len(meshes) == 2  # one column per epoch
    # Each column sorted by scale (the second was given out of order), on the fixed 0..1 colour scale.
    assert [list(np.asarray(mesh.get_array()).ravel()) for mesh in meshes] == [[0.9, 0.5, 0.1], [0.95, 0.6, 0.2]]
    assert all(mesh.get_clim() == (0.0, 1.0) for mesh in meshes)
    assert axis.get_yscale() == "log" and axis.get_xlabel() == "epoch" and colour_bar.get_ylabel() == "DSE / log2 N"
    low, high = axis.get_xlim()
    assert low < 0 and high > 3  # both columns in full view
    bottom, top = axis.get_ylim()
    assert bottom <= 0.25 and top >= 4.0
    close_figure(figure)


def test_probe_figures_add_one_profile_image_per_layer_only_when_there_are_profiles():
    keys = {"hidden": {"dse": "dse/hidden"}, "Z": {"dse": "dse/Z"}}
    common = dict(history={}, spectra={}, keys=keys, t=1, epoch=2, plane_tag=None)
    profile = _profile([0.5, 1.0, 2.0], [0.8, 0.5, 0.2])
    profiles = {0: {"hidden": profile}, 2: {"hidden": profile, "Z": profile}}
    figures = probe_figures(**common, profiles=profiles)
    assert [tag for tag, _ in figures] == ["dse/hidden_profile", "dse/Z_profile"]
    assert [len(figure.axes[0].collections) for _, figure in figures] == [2, 1]  # epochs so far, per layer
    for _, figure in figures:
        close_figure(figure)
    assert probe_figures(**common) == [] and probe_figures(**common, profiles={}) == []

"""Checkpoints written by dse_callback 0.1.0 (before the restructure) resume with today's code,
and the monitor's logged values agree with an independent computation."""

import math
import pathlib
import warnings

import pytest
import pytorch_lightning as pl
import torch

from dse_callback import BandwidthWarning, DSEMonitor, diffusion_spectral_entropy

from lightning_helpers import make_classes

TinyClassifier, BlobData = make_classes(pl)
OLD_CHECKPOINT = pathlib.Path(__file__).resolve().parents[1] / "data" / "v0_1_monitor.ckpt.pt"


def two_monitors(**options):
    # The same monitors as tests/data/make_v0_1_checkpoint.py, so their state keys match.
    blocks = DSEMonitor(layers={"hidden": "backbone.1"}, name="blocks", metrics=("dse", "rankme"), **options)
    return [DSEMonitor(**options), blocks]


def trainer(tmp_path, monitors, max_epochs):
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=monitors,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )


def test_a_0_1_checkpoint_resumes_both_monitors_without_a_second_baseline(tmp_path):
    saved = torch.load(OLD_CHECKPOINT, weights_only=False)["callbacks"]
    monitors = two_monitors(sigma=10.0)  # 0.1.0's default, to continue its curves
    assert {monitor.state_key for monitor in monitors} == set(saved)  # keys unchanged since 0.1.0
    pl.seed_everything(0, verbose=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer(tmp_path, monitors, max_epochs=4).fit(TinyClassifier(), datamodule=BlobData(), ckpt_path=OLD_CHECKPOINT)
    assert not [w for w in record if "restored history" in str(w.message)]  # the same bandwidth: no warning
    plain, blocks = monitors
    assert sorted(plain.history) == [0, 1, 2, 3, 4] and sorted(blocks.history) == [0, 1, 2, 3, 4]
    for monitor in monitors:
        old = saved[monitor.state_key]["history"]
        for epoch in (0, 1, 2):  # the old rows are kept as they were
            for name, row in old[epoch].items():
                assert monitor.history[epoch][name] == row
        assert torch.equal(monitor.probe_indices, saved[monitor.state_key]["probe_indices"])
    for epoch in (3, 4):
        assert math.isfinite(plain.history[epoch]["Z"]["dse"]) and math.isfinite(
            blocks.history[epoch]["hidden"]["rankme"]
        )
    # The history file holds the old and the new rows.
    rows = (pathlib.Path(tmp_path) / "dse_history.csv").read_text().splitlines()
    assert len(rows) == 1 + 5


def test_resuming_a_0_1_run_under_today_s_default_bandwidth_warns_that_the_curves_change(tmp_path):
    monitors = two_monitors()  # sigma="rms", the default since 0.2.0
    pl.seed_everything(0, verbose=False)
    with pytest.warns(BandwidthWarning, match=r"measured with sigma='10'.*sigma='rms'.*Pass that sigma") as record:
        trainer(tmp_path, monitors, max_epochs=3).fit(TinyClassifier(), datamodule=BlobData(), ckpt_path=OLD_CHECKPOINT)
    assert sum("restored history" in str(w.message) for w in record) == 2  # once per monitor
    assert monitors[0].history[3]["Z"]["bandwidth"] == "rms" and monitors[0].history[2]["Z"]["sigma"] == 10.0


def test_the_logged_dse_equals_the_entropy_of_activations_taken_by_a_plain_hook(tmp_path):
    """An independent check: the test's own forward hook on the head, not the monitor's capture."""
    x, y = torch.randn(40, 8, generator=torch.Generator().manual_seed(3)), torch.arange(40) % 3
    monitor = DSEMonitor(probe=(x, y), metrics=("dse",), probe_batch_size=7)  # batches of 7: the rows concatenate
    model = TinyClassifier()
    pl.seed_everything(0, verbose=False)
    trainer(tmp_path, [monitor], max_epochs=2).fit(model, datamodule=BlobData())
    captured = []
    handle = model.head.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
    model.eval()
    with torch.no_grad():
        model(x)
    handle.remove()
    expected = diffusion_spectral_entropy(captured[0], "rms", max_samples=None, warn_saturation=False)
    assert monitor.history[2]["Z"]["dse"] == pytest.approx(expected, abs=1e-6)
    assert monitor.history[2]["Z"]["layer"] == "head (input)"

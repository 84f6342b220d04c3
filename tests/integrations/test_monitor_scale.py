"""The monitor at scale: the cached probe, asynchronous metrics and the probe batch size."""

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from test_monitor import fit, read_csv, trainer_for
from torch.utils.data import Dataset

from dse_callback import DSEMonitor

from lightning_helpers import blob_data, make_classes

TinyClassifier, BlobData = make_classes(pl)
METRICS = ("dse", "dsmi_y", "dsmi_x")


class CountingProbe(Dataset):
    """Blob points whose 'transform' counts its calls."""

    def __init__(self, n: int = 50):
        self.points, self.labels = blob_data(n, seed=1)
        self.calls = 0

    def __len__(self):
        return len(self.points)

    def __getitem__(self, index):
        self.calls += 1
        return self.points[index] * 1.0, self.labels[index]


def values(history) -> dict:
    return {epoch: {m: rows["Z"][m] for m in METRICS} for epoch, rows in history.items()}


def test_the_probe_is_read_and_transformed_once_while_it_fits(tmp_path):
    probe = CountingProbe(50)
    monitor = DSEMonitor(probe=probe, metrics=("dse",), probe_batch_size=16, num_workers=0)
    trainer, _ = fit(tmp_path, monitor, max_epochs=3)
    assert sorted(monitor.history) == [0, 1, 2, 3]
    assert probe.calls == 50 + 1 + 4  # one pass, plus the sample setup reads and the dry run's 4 rows
    history = read_csv(f"{trainer.log_dir}/dse_history.csv")
    assert {row["cache"] for row in history} == {"device"}
    assert float(history[0]["data_seconds"]) > 0 and float(history[-1]["data_seconds"]) == 0


def test_async_values_equal_sync_and_every_epoch_is_there_after_fit(tmp_path):
    sync = DSEMonitor(metrics=METRICS)
    trainer_sync, _ = fit(tmp_path / "sync", sync, max_epochs=3)
    asynchronous = DSEMonitor(metrics=METRICS, async_metrics=True)
    trainer_async, _ = fit(tmp_path / "async", asynchronous, max_epochs=3)
    assert sorted(asynchronous.history) == [0, 1, 2, 3]
    assert values(asynchronous.history) == values(sync.history)
    logged = [row for row in read_csv(f"{trainer_async.log_dir}/metrics.csv") if row.get("dse/Z")]
    synced = [row for row in read_csv(f"{trainer_sync.log_dir}/metrics.csv") if row.get("dse/Z")]
    late = sorted((int(r["step"]), float(r["dse/Z"])) for r in logged)  # logged when ready, at the probe's step
    in_time = sorted((int(r["step"]), float(r["dse/Z"])) for r in synced)  # pl_module.log stores float32
    assert [s for s, _ in late] == [s for s, _ in in_time] and [v for _, v in late] == pytest.approx(
        [v for _, v in in_time]
    )
    assert len(read_csv(f"{trainer_async.log_dir}/dse_history.csv")) == 4


def test_async_training_is_bit_identical_to_training_without_the_monitor(tmp_path):
    _, without = fit(tmp_path / "a", None, max_epochs=2)
    _, with_monitor = fit(tmp_path / "b", DSEMonitor(metrics=METRICS, async_metrics=True), max_epochs=2)
    for (name, a), (_, b) in zip(without.state_dict().items(), with_monitor.state_dict().items()):
        assert torch.equal(a, b), name


def test_an_async_checkpoint_holds_every_finished_probe_and_resume_continues(tmp_path):
    checkpoints = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_top_k=-1, filename="{epoch}")
    pl.seed_everything(0, verbose=False)
    first = DSEMonitor(metrics=METRICS, async_metrics=True)
    trainer = trainer_for(tmp_path, [first, checkpoints], max_epochs=2, enable_checkpointing=True)
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    saved = torch.load(tmp_path / "ckpt" / "epoch=0.ckpt", weights_only=False)["callbacks"][first.state_key]
    assert sorted(saved["history"]) == [0, 1]  # taken right after epoch 1's probe was queued
    assert all(math.isfinite(saved["history"][e]["Z"]["dse"]) for e in (0, 1))

    resumed = DSEMonitor(metrics=METRICS, async_metrics=True)
    again = trainer_for(tmp_path, [resumed], max_epochs=4, enable_checkpointing=True)
    again.fit(TinyClassifier(), datamodule=BlobData(), ckpt_path=str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    assert sorted(resumed.history) == [0, 1, 2, 3, 4]
    assert values(resumed.history)[2] == values(first.history)[2]
    assert all(math.isfinite(resumed.history[e]["Z"]["dse"]) for e in range(5))


@pytest.mark.parametrize("watcher", [ModelCheckpoint(monitor="dse/Z"), EarlyStopping(monitor="dsmi/Z_Y")])
def test_monitoring_an_async_key_is_a_setup_error_that_says_why(tmp_path, watcher):
    monitor = DSEMonitor(metrics=METRICS, async_metrics=True)
    trainer = trainer_for(tmp_path, [monitor, watcher], max_epochs=1, enable_checkpointing=True)
    with pytest.raises(ValueError, match="async_metrics=True.*background"):
        trainer.fit(TinyClassifier(), datamodule=BlobData())


def test_a_failure_in_training_still_writes_the_pending_probes(tmp_path):
    class Crashes(TinyClassifier):
        def training_step(self, batch, batch_idx):
            if self.current_epoch == 1:
                raise RuntimeError("out of memory")  # fit ends through the callbacks' on_exception
            return super().training_step(batch, batch_idx)

    monitor = DSEMonitor(metrics=METRICS, async_metrics=True)
    with pytest.raises(RuntimeError, match="out of memory"):
        fit(tmp_path, monitor, max_epochs=3, model=Crashes())
    assert sorted(monitor.history) == [0, 1]
    history = read_csv(next(tmp_path.glob("run/*/dse_history.csv")))
    assert [int(row["epoch"]) for row in history] == [0, 1] and all(math.isfinite(float(r["dse"])) for r in history)


def test_the_history_records_the_solver_that_ran_and_its_error_bar(tmp_path):
    trainer, _ = fit(tmp_path, DSEMonitor(metrics=("dse", "dsmi_y"), solver="auto"), max_epochs=1)
    history = read_csv(f"{trainer.log_dir}/dse_history.csv")
    for row in history:  # 60 probe samples: "auto" solves exactly, without an error bar
        assert (row["dse_solver"], float(row["dse_stderr"])) == ("exact", 0.0)
        assert (row["dsmi_y_solver"], float(row["dsmi_y_stderr"])) == ("exact", 0.0)
    with pytest.raises(ValueError, match="solver must be one of"):
        DSEMonitor(solver="lanczos")

"""Two-process CPU DDP run with a DSEMonitor; each rank writes what it logged.

The probe has 45 samples (odd: the shares are 23 and 22 rows) in batches of 11, so rank 1
pads with one repeated batch to make as many forward calls as rank 0. At the epoch-1 probe,
rank 1 fails just before gathering its rows (as if out of memory): rank 0 waits in the
gather until the monitor's `collective_timeout` (8 s), then both log NaN, warn once, renew
the monitor's group and train on. After fit, each rank also measures the trained weights
with a one-process DSETracker, for comparison.

Run by tests/integrations/test_monitor_ddp.py as `python tests/integrations/ddp_script.py OUT_DIR [NAMESPACE]`
(NAMESPACE: pytorch_lightning, the default, or lightning.pytorch); Lightning's DDP
launcher starts the second process by re-running this script.
"""

import importlib
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for lightning_helpers

import dse_callback.distributed.probe_shares as probe_shares  # noqa: E402
from dse_callback import DSETracker  # noqa: E402
from dse_callback.measure.measurer import DSEMonitorWarning  # noqa: E402

from lightning_helpers import make_classes  # noqa: E402


class RowCounter:
    """A `forward=` callable that counts the probe's forward calls and the rows they fed."""

    def __init__(self):
        self.calls, self.rows = 0, 0

    def __call__(self, module, inputs):
        self.calls += 1
        self.rows += len(inputs)
        return module(inputs)


def fail_on_rank_1_at_epoch_1(trainer):
    """Make rank 1's gather raise during the probe after the first training epoch."""
    original = probe_shares.gather_rows

    def gather_rows(*args, **kwargs):
        if trainer.global_rank == 1 and trainer.current_epoch == 0 and trainer.global_step > 0:
            raise MemoryError("injected: rank 1 out of memory before its gather")
        return original(*args, **kwargs)

    probe_shares.gather_rows = gather_rows


def main(out_dir: str, namespace: str = "pytorch_lightning") -> None:
    pl = importlib.import_module(namespace)
    ModelCheckpoint, CSVLogger = pl.callbacks.ModelCheckpoint, pl.loggers.CSVLogger
    module = "dse_callback.lightning" if namespace == "lightning.pytorch" else "dse_callback"
    DSEMonitor = importlib.import_module(module).DSEMonitor
    TinyClassifier, BlobData = make_classes(pl)
    pl.seed_everything(0, verbose=False)
    counter = RowCounter()
    options = dict(metrics=("dse", "dsmi_y", "dsmi_x"), probe_size=45, probe_batch_size=11)
    monitor = DSEMonitor(forward=counter, collective_timeout=8.0, **options)
    # Monitoring a DSE key would hang if any rank skipped the value or a collective.
    checkpoint = ModelCheckpoint(dirpath=os.path.join(out_dir, "ckpt"), monitor="dse/Z", mode="max")
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=CSVLogger(out_dir, name="run"),
        callbacks=[monitor, checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data, model = BlobData(), TinyClassifier()
    fail_on_rank_1_at_epoch_1(trainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=data)
    logged = {key: float(value) for key, value in trainer.callback_metrics.items() if "/" in key}
    single = DSETracker(probe=data.val_set, **options).measure(model, 2)  # the same weights, one process
    report = {
        "logged": logged,
        "history_epochs": sorted(monitor.history),
        "best": checkpoint.best_model_path,
        "probe_calls": counter.calls,
        "probe_rows": counter.rows,
        "one_process": single,
        "history": {str(epoch): rows["Z"] for epoch, rows in monitor.history.items()},
        "warnings": [str(w.message) for w in caught if issubclass(w.category, DSEMonitorWarning)],
        "groups_closed": monitor.tracker.groups.work is None and not monitor.tracker.groups.lost,
    }
    with open(os.path.join(out_dir, f"rank{trainer.global_rank}.json"), "w") as stream:
        json.dump(report, stream)


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Two-process CPU DDP run with a DSEMonitor; each rank writes what it logged.

Run by tests/test_monitor_ddp.py as `python tests/ddp_script.py OUT_DIR [NAMESPACE]`
(NAMESPACE: pytorch_lightning, the default, or lightning.pytorch); Lightning's DDP
launcher starts the second process by re-running this script.
"""

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lightning_helpers import make_classes  # noqa: E402


def main(out_dir: str, namespace: str = "pytorch_lightning") -> None:
    pl = importlib.import_module(namespace)
    ModelCheckpoint, CSVLogger = pl.callbacks.ModelCheckpoint, pl.loggers.CSVLogger
    module = "dse_callback.lightning" if namespace == "lightning.pytorch" else "dse_callback.monitor"
    DSEMonitor = importlib.import_module(module).DSEMonitor
    TinyClassifier, BlobData = make_classes(pl)
    pl.seed_everything(0, verbose=False)
    monitor = DSEMonitor(metrics=("dse", "dsmi_y", "dsmi_x"))
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
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    logged = {key: float(value) for key, value in trainer.callback_metrics.items() if "/" in key}
    with open(os.path.join(out_dir, f"rank{trainer.global_rank}.json"), "w") as stream:
        json.dump({"logged": logged, "history_epochs": sorted(monitor.history), "best": checkpoint.best_model_path}, stream)


if __name__ == "__main__":
    main(*sys.argv[1:3])

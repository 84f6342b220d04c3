"""How `v0_1_monitor.ckpt.pt` was made: dse_callback 0.1.0 (commit b55fd79), before the restructure.

A TinyClassifier (tests/lightning_helpers.py) trained 2 epochs on BlobData with two
monitors, DSEMonitor() and DSEMonitor(layers={"hidden": "backbone.1"}, name="blocks",
metrics=("dse", "rankme")). Run from the repository root:

    python tests/data/make_v0_1_checkpoint.py

`tests/integrations/test_old_checkpoint.py` resumes from the file with today's code.
"""

import pathlib
import sys
import tempfile

import pytorch_lightning as pl

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from dse_callback import DSEMonitor  # noqa: E402

from lightning_helpers import make_classes  # noqa: E402

TinyClassifier, BlobData = make_classes(pl)

if __name__ == "__main__":
    out = pathlib.Path(__file__).with_name("v0_1_monitor.ckpt.pt")
    pl.seed_everything(0, verbose=False)
    with tempfile.TemporaryDirectory() as root:
        monitors = [DSEMonitor(), DSEMonitor(layers={"hidden": "backbone.1"}, name="blocks", metrics=("dse", "rankme"))]
        trainer = pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            devices=1,
            logger=False,
            callbacks=monitors,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=root,
        )
        trainer.fit(TinyClassifier(), datamodule=BlobData())
        trainer.save_checkpoint(str(out))
    print(out, out.stat().st_size, "bytes")

"""Where a Lightning monitor's probe comes from when none is given: the fit's validation data.

Lightning loads the validation loaders lazily, only when validation is about to run, so
under `check_val_every_n_epoch=2`, `val_check_interval` or `limit_val_batches=0` the
Trainer has none at `on_train_start`. The monitor asks the same source Lightning would
(`trainer.fit_loop.epoch_loop.val_loop._data_source`: the datamodule's or the module's
`val_dataloader()`, or `fit(val_dataloaders=...)`) itself, whatever the schedule:

- `has_validation_data(trainer)`: whether the fit has a source at all (checked in `setup`,
  so a run without one fails there, saying how to fix it);
- `ready_in_setup(trainer)`: a datamodule (set up before the callbacks) or loaders passed to
  `fit` can be read in `setup`; a LightningModule's own `val_dataloader()` waits for
  `on_fit_start`, because the module's `setup` runs after the callbacks';
- `validation_probe(trainer)`: (dataset, num_workers, collate_fn) of the first validation loader.

Duck-typed: both Lightning namespaces share these attributes; nothing is imported.
"""

from __future__ import annotations

from typing import Any

from .trainer_access import first_loader, val_loader_of

NO_VALIDATION_DATA = (
    "DSEMonitor found no probe set: no probe= was given and the fit has no validation data (no val_dataloader() "
    "on the LightningModule or the datamodule, no fit(val_dataloaders=...)). Pass probe=(x, y) or a Dataset to "
    "DSEMonitor, or give the fit validation data; validation itself need not run (limit_val_batches=0 and any "
    "check_val_every_n_epoch work)."
)


def validation_source(trainer) -> Any:
    """Lightning's record of where the fit's validation loaders come from (None if it has none)."""
    loop = getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "val_loop", None)
    return getattr(loop, "_data_source", None)


def has_validation_data(trainer) -> bool:
    """Whether the fit has validation loaders to read, loaded yet or not."""
    source = validation_source(trainer)
    if source is not None:
        return source.instance is not None and source.is_defined()
    return getattr(trainer, "val_dataloaders", None) is not None or val_loader_of(_datamodule(trainer)) is not None


def ready_in_setup(trainer) -> bool:
    """Whether the validation loaders can be asked for in the callbacks' `setup`."""
    source = validation_source(trainer)
    return source is None or source.instance is not getattr(trainer, "lightning_module", None)


def validation_probe(trainer) -> tuple[Any, int | None, Any]:
    """(dataset, num_workers, collate_fn) of the fit's first validation loader; raises when it has none."""
    loader = first_loader(_request_loaders(trainer))
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        raise ValueError(NO_VALIDATION_DATA)
    return dataset, getattr(loader, "num_workers", None), getattr(loader, "collate_fn", None)


def _request_loaders(trainer) -> Any:
    source = validation_source(trainer)
    if source is not None and source.instance is not None and source.is_defined():
        loaders = source.dataloader()  # the hook Lightning itself would call, or the loaders given to fit
    else:
        loaders = getattr(trainer, "val_dataloaders", None) or val_loader_of(_datamodule(trainer))
    return getattr(loaders, "flattened", loaders)  # a CombinedLoader's own loaders


def _datamodule(trainer) -> Any:
    return getattr(trainer, "datamodule", None)

"""What the monitor reads from a Trainer: loaders, watched keys, and the probe's `Runtime`.

Duck-typed, so it serves both Lightning namespaces without importing either.
"""

from __future__ import annotations

from typing import Any

from ..distributed.probe_shares import Runtime


def first_loader(loaders) -> Any:
    """The first loader of a loader, a list or tuple of loaders, or a dict of them."""
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    if isinstance(loaders, dict):
        loaders = next(iter(loaders.values()), None)
    return loaders


def val_loader_of(datamodule) -> Any:
    """The datamodule's (first) validation loader, or None when it has none."""
    if datamodule is None or not hasattr(datamodule, "val_dataloader"):
        return None
    try:
        return first_loader(datamodule.val_dataloader())
    except NotImplementedError:
        return None


def runtime_of(trainer) -> Runtime:
    """The Trainer's precision plugin, rank and world size, for the tracker.

    The probe's collectives run on the tracker's own gloo groups (bounded waits) under
    torch.distributed; the strategy's all-gather serves strategies without it.
    """
    plugin = trainer.precision_plugin
    return Runtime(
        convert_input=plugin.convert_input,
        forward_context=plugin.val_step_context,
        is_primary=trainer.is_global_zero,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
        all_gather=lambda tensor: trainer.strategy.all_gather(tensor),
    )


def watched_keys(trainer) -> list[tuple[str, str]]:
    """(callback class name, monitored key) of every ModelCheckpoint and EarlyStopping."""
    callbacks = [*trainer.checkpoint_callbacks, *trainer.early_stopping_callbacks]
    return [(type(callback).__name__, callback.monitor) for callback in callbacks if getattr(callback, "monitor", None)]


def check_nothing_watches_async_keys(trainer, keys: set[str]) -> None:
    """Raise when a ModelCheckpoint or EarlyStopping monitors one of an asynchronous monitor's `keys`."""
    for callback, key in watched_keys(trainer):
        if key in keys:
            raise ValueError(
                f"{callback}(monitor={key!r}) watches a key of DSEMonitor(async_metrics=True), whose values are "
                "computed in a background thread and logged on rank 0 whenever they are ready, often epochs "
                f"later: {callback} would compare stale or missing values (and under DDP the ranks would "
                "disagree). Monitor it with async_metrics=False, or watch another key."
            )

"""What the Hugging Face callback reads from a `transformers.Trainer`, duck-typed.

- `probe_source`: the probe's Dataset, collator and workers: the explicit probe, else the
  Trainer's `eval_dataset` (the first of a dict), with the columns its model does not take
  removed and read through the Trainer's `data_collator`, as its evaluation loop reads it;
- `read_batch_rules`: from one collated sample, which keys hold class labels and how the
  inputs reach the model (`model(**batch)` without the labels for a mapping);
- `runtime_from`: the probe's `Runtime` from the Trainer (rank, world size, autocast, the
  accelerator's gather);
- `add_figures`: the probe's figures to the TensorBoard writer, W&B run, MLflow run or
  Comet experiment the Trainer's reporting callbacks hold (`figure_loggers`), else PNGs;
- `json_state`/`saved_state`: the tracker's state as JSON (`trainer_state.json`) and back;
  `original_of`: the callback a Trainer-made copy replaced.

Nothing here imports transformers; `huggingface.py` holds the callback itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ..distributed.probe_shares import Runtime
from ..probe.probe_set import as_dataset
from ..report.figures import matplotlib_available
from .figures import send_probe_figures

# Keys that hold labels in Hugging Face batches besides the Trainer's `label_names`.
LABEL_KEYS = ("labels", "label", "label_ids")


def first_eval_dataset(eval_dataset) -> Any:
    """The dataset, or the first of a dict of datasets (None when there is none)."""
    if isinstance(eval_dataset, Mapping):
        return next(iter(eval_dataset.values()), None)
    return eval_dataset


def probe_source(trainer, probe) -> tuple[Dataset, Any, int]:
    """(dataset, collate_fn or None, num_workers) of the probe.

    Tensors (x, y) are read as they are (torch's default collate); a Dataset, given or the
    Trainer's `eval_dataset`, goes through the Trainer's `data_collator` (padding), with
    unused columns removed as `Trainer.get_eval_dataloader` removes them.
    """
    workers = int(getattr(trainer.args, "dataloader_num_workers", 0) or 0)
    if probe is not None and not isinstance(probe, Dataset):
        return as_dataset(probe), None, workers
    dataset = probe if probe is not None else first_eval_dataset(getattr(trainer, "eval_dataset", None))
    if dataset is None:
        raise ValueError(
            "DSETrainerCallback found no probe set: pass probe=<a Dataset or (x, y) tensors> or give the Trainer an "
            "eval_dataset (it is read through the Trainer's data collator, so padding works)"
        )
    collate = trainer.data_collator
    if hasattr(dataset, "column_names") and hasattr(trainer, "_remove_unused_columns"):  # a datasets.Dataset
        dataset = trainer._remove_unused_columns(dataset, description="DSE probe")
    elif hasattr(trainer, "_get_collator_with_removed_columns"):
        collate = trainer._get_collator_with_removed_columns(collate, description="DSE probe")
    return dataset, collate, workers


def label_names(trainer) -> list[str]:
    """The keys that hold labels in the Trainer's batches."""
    names = list(getattr(trainer, "label_names", None) or [])
    return names + [key for key in LABEL_KEYS if key not in names]


def holds_one_class(value: Any) -> bool:
    """Whether `value`, the labels of a one-sample batch, is one integer class (not token labels)."""
    return isinstance(value, torch.Tensor) and value.shape == (1,) and not value.is_floating_point()


def class_label_key(batch: Any, names: Sequence[str]) -> str | None:
    """The first key in `names` holding one integer class per sample of a one-sample batch."""
    if not isinstance(batch, Mapping):
        return None
    return next((key for key in names if holds_one_class(batch.get(key))), None)


class InputsWithoutLabels:
    """batch -> the batch without its label keys, so the probe's forward computes no loss."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)

    def __call__(self, batch: Mapping) -> dict:
        return {key: value for key, value in batch.items() if key not in self.names}


def call_model(model, inputs: Any) -> Any:
    """The Trainer's way to call a model: `model(**inputs)` for a mapping, else `model(inputs)`."""
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


def read_batch_rules(batch: Any, names: Sequence[str], settings) -> dict[str, Any]:
    """ProbeSettings overrides for one collated sample: the label key, the inputs, the forward.

    The user's own `label_key`, `input_key`, `batch_to_inputs` and `forward` win.
    """
    rules: dict[str, Any] = {}
    if settings.label_key is None:
        rules["label_key"] = class_label_key(batch, names)
    if isinstance(batch, Mapping) and settings.input_key is None and settings.batch_to_inputs is None:
        rules["batch_to_inputs"] = InputsWithoutLabels(names)
    if settings.forward is None:
        rules["forward"] = call_model
    return rules


def runtime_from(trainer) -> Runtime:
    """Rank, world size and autocast of the Trainer, for the tracker.

    Under torch.distributed (DDP, FSDP, DeepSpeed through accelerate) the probe's collectives
    run on the tracker's own gloo groups, with bounded waits; `accelerator.gather` over a
    leading axis of one ((P, M, ...) on every rank) serves a backend without torch.distributed.
    The forward runs under the Trainer's `compute_loss_context_manager`, as its loss does
    (accelerate's mixed-precision autocast wraps the model's forward itself).
    """
    args = trainer.args
    world_size = int(getattr(args, "world_size", 1) or 1)
    accelerator = trainer.accelerator
    return Runtime(
        forward_context=getattr(trainer, "compute_loss_context_manager", None),
        is_primary=bool(trainer.is_world_process_zero()),
        rank=int(getattr(args, "process_index", 0) or 0),
        world_size=world_size,
        all_gather=(lambda tensor: accelerator.gather(tensor.unsqueeze(0))) if world_size > 1 else None,
    )


def figure_loggers(trainer) -> list:
    """The figure writers the Trainer's `report_to` callbacks hold (on rank 0): TensorBoard's
    `SummaryWriter`, the W&B run, the `mlflow` module (its active run) and the Comet experiment."""
    found = []
    for callback in trainer.callback_handler.callbacks:
        kind = type(callback).__name__
        if kind == "TensorBoardCallback":
            found.append(getattr(callback, "tb_writer", None))
        elif kind == "WandbCallback":
            found.append(getattr(getattr(callback, "_wandb", None), "run", None))
        elif kind == "MLflowCallback" and getattr(callback, "_initialized", False):
            found.append(getattr(callback, "_ml_flow", None))
        elif kind == "CometCallback":
            found.append(getattr(callback, "_experiment", None))
    return [writer for writer in found if writer is not None]


def add_figures(trainer, tracker, log_spectrum: bool | None, key: int, step: int, unit: str = "epoch") -> None:
    """The probe's figures (spectrum per layer; the information plane with DSMI(Z; X) and
    DSMI(Z; Y); the entropy profiles with `profile=True`) through `log_figures` to the
    Trainer's writers, else PNGs under `output_dir`. `key` counts `unit`s ("epoch", or
    "step" with `every_n_steps`). Rank 0 only; a failure warns once and training goes on."""
    if log_spectrum is False or not matplotlib_available():
        return
    send_probe_figures(tracker, figure_loggers(trainer), key, step, trainer.args.output_dir, unit)


def latest_logged(log_history: Sequence[Mapping], keys: Sequence[str]) -> dict[str, Any]:
    """The most recent value of each key in the Trainer's `log_history` ("" when never logged)."""
    found = {}
    for key in keys:
        found[key] = next((entry[key] for entry in reversed(log_history) if key in entry), "")
    return found


def json_state(state: dict[str, Any]) -> dict[str, Any]:
    """The tracker's `state_dict` in plain JSON types: tensors become lists, NaN stays (json allows it)."""
    return {key: _plain(value) for key, value in state.items()}


def tensor_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """`json_state`'s inverse: the probe indices and input clusters as int64 tensors again."""
    restored = dict(state)
    for key in ("probe_indices", "input_clusters"):
        if restored.get(key) is not None:
            restored[key] = torch.as_tensor(restored[key], dtype=torch.int64)
    return restored


def saved_state(stateful_callbacks, class_name: str, key: str) -> dict[str, Any] | None:
    """The tracker state a checkpoint's `TrainerState.stateful_callbacks` holds for the
    callback whose `state_key` is `key` (tensors again); None when it holds none."""
    entries = (stateful_callbacks or {}).get(class_name)
    entries = entries if isinstance(entries, list) else [entries] if entries else []
    for entry in reversed(entries):  # the Trainer appends to a list when a class has several instances
        saved = entry.get("attributes", {}).get("dse_state", {})
        if saved.get("key") == key and "history" in saved:
            return tensor_state(saved)
    return None


def original_of(copy, attached) -> Any:
    """The attached callback that `copy` replaced in its Trainer's callbacks, or None.

    With `restore_callback_states_from_checkpoint=True` the Trainer swaps each stateful
    callback for `type(callback)(**state["args"])`, which knows neither the Trainer nor the probe.
    """
    for original in list(attached):
        callbacks = original.trainer.callback_handler.callbacks
        if copy in callbacks and original not in callbacks:
            return original
    return None


def with_default(init, name: str, default: Any, annotation: Any) -> None:
    """Give the parameter `name` of a `with_settings` signature another default and type."""
    parameters = [
        parameter.replace(default=default, annotation=annotation) if parameter.name == name else parameter
        for parameter in init.__signature__.parameters.values()
    ]
    init.__signature__ = init.__signature__.replace(parameters=parameters)
    init.__annotations__[name] = annotation


def _plain(value: Any) -> Any:
    """JSON types only: a value json cannot write would make the Trainer's checkpoint fail."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return str(value)

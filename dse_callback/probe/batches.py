"""Reading a probe batch: which part goes into the model, which part is the label.

A probe batch is whatever the probe's DataLoader yields: a tensor, an (x, y, ...) tuple,
a mapping such as {"image": x, "label": y} (Hugging Face datasets), nested mixtures of
those, or a custom object. `BatchReader.split(batch)` returns (inputs, labels):

- inputs: `batch_to_inputs(batch)` when given; else the value under `input_key` (looked
  up in mappings, or attributes, at any nesting level); else a bare tensor, or the first
  element of a tuple or list.
- labels: the value under `label_key` when given; else the second element of a tuple or
  list when it is a tensor; else None.

`BatchReader.mask(batch)` is the attention mask under `mask_key` (at any level of the
batch, inputs included), or None when the batch has none: sequences are then pooled
over every token.

Nothing is guessed silently: a batch that fits none of these raises `BatchFormatError`
with `describe_batch(batch)`, a short picture of its structure, so the user sees which
key to pass. No Lightning here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

# How deep and how wide `describe_batch` goes before it abbreviates.
_DESCRIBE_DEPTH = 3
_DESCRIBE_ITEMS = 8


class BatchFormatError(ValueError):
    """The monitor cannot tell the inputs or labels of a probe batch apart."""


def describe_batch(batch: Any, depth: int = 0) -> str:
    """A one-line picture of a batch: containers with their keys, tensors with dtype and shape.

    Example:
        >>> describe_batch({"image": torch.zeros(2, 3), "label": torch.zeros(2, dtype=torch.long)})
        "{'image': Tensor(float32, [2, 3]), 'label': Tensor(int64, [2])}"
    """
    if isinstance(batch, torch.Tensor):
        return f"Tensor({str(batch.dtype).replace('torch.', '')}, {list(batch.shape)})"
    if depth >= _DESCRIBE_DEPTH:
        return "..." if isinstance(batch, (Mapping, tuple, list)) else type(batch).__name__
    if isinstance(batch, Mapping):
        items = [f"{key!r}: {describe_batch(value, depth + 1)}" for key, value in list(batch.items())[:_DESCRIBE_ITEMS]]
        more = ", ..." if len(batch) > _DESCRIBE_ITEMS else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(batch, (tuple, list)):
        items = [describe_batch(value, depth + 1) for value in list(batch)[:_DESCRIBE_ITEMS]]
        more = ", ..." if len(batch) > _DESCRIBE_ITEMS else ""
        brackets = "()" if isinstance(batch, tuple) else "[]"
        return brackets[0] + ", ".join(items) + more + brackets[1]
    if isinstance(batch, (str, int, float, bool)) or batch is None:
        return repr(batch)
    return type(batch).__name__


_MISSING = object()


def find_key(batch: Any, key: str) -> Any:
    """The value under `key` in the first mapping (or object attribute) that has it,
    searching nested mappings, tuples and lists depth first; `_MISSING` when none has it."""
    if isinstance(batch, Mapping):
        if key in batch:
            return batch[key]
        children = list(batch.values())
    elif isinstance(batch, (tuple, list)):
        children = list(batch)
    elif isinstance(batch, torch.Tensor) or batch is None:
        return _MISSING
    else:
        return getattr(batch, key, _MISSING)
    for child in children:
        found = find_key(child, key)
        if found is not _MISSING:
            return found
    return _MISSING


def check_optional_key(value: Any, name: str) -> None:
    """A batch key option (`input_key`, `label_key`, `mask_key`, ...): a non-empty string or None."""
    if value is not None and not (isinstance(value, str) and value):
        raise TypeError(f"{name} must be a non-empty string or None, got {value!r}")


class BatchReader:
    """Splits probe batches into (inputs, labels); see the module docstring for the rules.

    Args:
        input_key: key (or attribute) holding the model's inputs, at any nesting level.
        label_key: key (or attribute) holding the labels, at any nesting level.
        batch_to_inputs: callable batch -> inputs, for any other batch layout; it wins
            over `input_key`.
        mask_key: key (or attribute) of the attention mask (B, T), used when present;
            None: no mask.

    Example:
        >>> reader = BatchReader(input_key="image", label_key="label")
        >>> inputs, labels = reader.split({"image": torch.ones(2, 3), "label": torch.tensor([0, 1])})
        >>> tuple(inputs.shape), labels.tolist()
        ((2, 3), [0, 1])
    """

    def __init__(
        self,
        input_key: str | None = None,
        label_key: str | None = None,
        batch_to_inputs: Callable[[Any], Any] | None = None,
        mask_key: str | None = None,
    ):
        for value, name in ((input_key, "input_key"), (label_key, "label_key"), (mask_key, "mask_key")):
            check_optional_key(value, name)
        if batch_to_inputs is not None and not callable(batch_to_inputs):
            raise TypeError(f"batch_to_inputs must be a callable batch -> inputs, got {batch_to_inputs!r}")
        self.input_key = input_key
        self.label_key = label_key
        self.batch_to_inputs = batch_to_inputs
        self.mask_key = mask_key

    def inputs(self, batch: Any) -> Any:
        if self.batch_to_inputs is not None:
            return self.batch_to_inputs(batch)
        if self.input_key is not None:
            return _required_key(batch, "input_key", self.input_key, "the model's inputs, or batch_to_inputs=callable")
        if isinstance(batch, torch.Tensor):
            return batch
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            return batch[0]
        raise BatchFormatError(
            f"DSEMonitor cannot tell the inputs in the probe batch {describe_batch(batch)}; pass "
            "input_key='<key>' (and label_key='<key>') for mappings, or batch_to_inputs=callable for "
            "any other layout; tensors and (x, y) tuples need neither"
        )

    def labels(self, batch: Any) -> torch.Tensor | None:
        if self.label_key is not None:
            return torch.as_tensor(_required_key(batch, "label_key", self.label_key, "the labels"))
        if isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
            return batch[1]
        return None

    def mask(self, batch: Any) -> torch.Tensor | None:
        """The attention mask under `mask_key`, or None when there is none."""
        if self.mask_key is None:
            return None
        found = find_key(batch, self.mask_key)
        return None if found is _MISSING or found is None else torch.as_tensor(found)

    def split(self, batch: Any) -> tuple[Any, torch.Tensor | None]:
        """(inputs, labels or None) of one batch."""
        return self.inputs(batch), self.labels(batch)


def _required_key(batch: Any, argument: str, key: str, holds: str) -> Any:
    """The value under `key` at any level of `batch`, or a BatchFormatError naming `argument`."""
    found = find_key(batch, key)
    if found is _MISSING:
        raise BatchFormatError(
            f"{argument}={key!r} is not in the probe batch {describe_batch(batch)}; pass the key that holds {holds}"
        )
    return found

"""The probe set: which samples the monitor measures, and their batches on the model's device.

Flow of a probe through this module:

1. `as_dataset(probe)` turns what the user gave (a Dataset, or (x, y) / (x,) tensors) into
   a Dataset; the Lightning glue passes the validation set instead when none was given.
2. `ProbeSet.prepare(needs_labels, needs_tensor_inputs)` (once, in `setup`) draws the fixed
   indices: at most `probe_size` samples, chosen with a private seeded generator (indices
   restored from a checkpoint win), then reads one collated sample through the
   `BatchReader`, so a batch the monitor cannot read fails here, showing its structure.
3. `ProbeSet.batches(device)` (every probe) yields (inputs, labels) batches in probe order
   on `device`: from the `ProbeCache` when the previous pass filled it, else from a
   DataLoader over the fixed indices (filling the cache as it goes).

No Lightning here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from .batches import BatchFormatError, BatchReader, describe_batch


def as_dataset(probe: Dataset | Sequence[torch.Tensor]) -> Dataset:
    """A Dataset from a Dataset or a tuple of equally long tensors (x, y) or (x,)."""
    if isinstance(probe, Dataset):
        return probe
    if isinstance(probe, (tuple, list)) and probe and all(isinstance(part, torch.Tensor) for part in probe):
        lengths = [len(part) for part in probe]
        if len(set(lengths)) != 1:
            raise ValueError(f"probe tensors must have the same length, got lengths {lengths}")
        return TensorDataset(*probe)
    raise TypeError(f"probe must be a torch Dataset or a tuple of tensors (x, y), got {type(probe).__name__}")


def to_device(value: Any, device: torch.device) -> Any:
    """`value` with every tensor inside (mappings, tuples, lists) moved to `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(item, device) for item in value)
    return value


def nbytes(value: Any) -> int:
    """Bytes held by the tensors inside `value`."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(nbytes(item) for item in value.values())
    if isinstance(value, (tuple, list)):
        return sum(nbytes(item) for item in value)
    return 0


class ProbeCache:
    """Probe batches kept on the model's device after the first pass, up to `max_bytes`.

    The probe is read through the DataLoader once; later probes replay the cached batches.
    A probe larger than `max_bytes` is never cached (it is re-read every probe).
    """

    def __init__(self, max_bytes: int = 2**30):
        self.max_bytes = max_bytes
        self._batches: list[tuple[Any, torch.Tensor | None]] | None = None
        self._filling: list[tuple[Any, torch.Tensor | None]] = []
        self._bytes = 0

    @property
    def full(self) -> bool:
        return self._batches is not None

    def batches(self) -> Iterator[tuple[Any, torch.Tensor | None]]:
        yield from self._batches or ()

    def offer(self, inputs: Any, labels: torch.Tensor | None) -> None:
        """Keep one batch of a first pass while the total stays within `max_bytes`."""
        self._bytes += nbytes(inputs) + nbytes(labels)
        if self._bytes <= self.max_bytes:
            self._filling.append((inputs, labels))
        else:
            self._filling = []

    def complete(self) -> None:
        """The first pass ended: keep what was offered if all of it fitted."""
        if self._bytes <= self.max_bytes:
            self._batches = self._filling
        self._filling, self._bytes = [], 0

    def abandon(self) -> None:
        """A pass stopped half-way: forget the partial batches."""
        self._filling, self._bytes = [], 0

    def clear(self) -> None:
        self._batches = None
        self.abandon()


class ProbeSet:
    """A fixed, seeded subset of a dataset and its batches; see the module docstring.

    Args:
        dataset: the probe's Dataset (see `as_dataset`).
        probe_size: at most this many samples, chosen once with a seeded generator.
        batch_size: probe batch size.
        seed: seeds the choice of samples.
        reader: reads inputs and labels out of each batch.
        num_workers: DataLoader workers.
        cache: the device cache (a fresh 1 GiB `ProbeCache` when None).
        indices: fixed indices, for example from a checkpoint.
    """

    def __init__(
        self,
        dataset: Dataset,
        probe_size: int = 10_000,
        batch_size: int = 256,
        seed: int = 0,
        reader: BatchReader | None = None,
        num_workers: int = 0,
        cache: ProbeCache | None = None,
        indices: torch.Tensor | None = None,
    ):
        self.dataset = dataset
        self.probe_size = probe_size
        self.batch_size = batch_size
        self.seed = seed
        self.reader = reader or BatchReader()
        self.num_workers = num_workers
        self.cache = cache if cache is not None else ProbeCache()
        self.indices = indices
        self.labels: torch.Tensor | None = None  # all probe labels, in order, after a first pass

    def __len__(self) -> int:
        return 0 if self.indices is None else len(self.indices)

    def prepare(self, needs_labels: Sequence[str] = (), needs_tensor_inputs: Sequence[str] = ()) -> None:
        """Fix the indices and check that the batches can be read (configuration errors raise).

        Args:
            needs_labels: metrics that need labels (named in the error when there are none).
            needs_tensor_inputs: metrics that need the inputs as one tensor (DSMI(Z; X)).
        """
        size = len(self.dataset)
        if size < 2:
            raise ValueError(f"DSEMonitor's probe set has {size} sample(s); it needs at least 2")
        if self.indices is None:
            if size > self.probe_size:
                generator = torch.Generator().manual_seed(self.seed)
                self.indices = torch.randperm(size, generator=generator)[: self.probe_size].sort().values
            else:
                self.indices = torch.arange(size)
        elif int(self.indices.max()) >= size:
            raise ValueError(
                f"the checkpoint's probe indices reach {int(self.indices.max())} but the probe set has "
                f"{size} samples; resume with the same probe set"
            )
        batch = default_collate([self.dataset[int(self.indices[0])]])
        inputs, labels = self.reader.split(batch)
        if needs_labels and labels is None:
            raise BatchFormatError(
                f"metrics {list(needs_labels)} need labels, but DSEMonitor found none in the probe batch "
                f"{describe_batch(batch)}; pass label_key='<key>' (mappings), a probe of (x, y) items, or drop "
                "those metrics"
            )
        if labels is not None and (labels.ndim != 1 or len(labels) != 1):
            raise BatchFormatError(
                f"labels must hold one class per sample, but a batch of one sample gave labels of shape "
                f"{list(labels.shape)} from {describe_batch(batch)}; pass label_key='<key>' for the class labels"
            )
        if needs_tensor_inputs and not isinstance(inputs, torch.Tensor):
            raise BatchFormatError(
                f"metrics {list(needs_tensor_inputs)} cluster the inputs, so they need the inputs as one tensor, "
                f"but they are {describe_batch(inputs)}; pass input_key='<key>' for the image tensor, or drop those "
                "metrics"
            )

    def batches(self, device: torch.device) -> Iterator[tuple[Any, torch.Tensor | None]]:
        """(inputs, labels or None) per batch, in probe order, on `device`."""
        if self.cache.full:
            yield from self.cache.batches()
            return
        loader = DataLoader(
            Subset(self.dataset, self.indices.tolist()),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )
        labels = []
        try:
            for batch in loader:
                inputs, batch_labels = self.reader.split(batch)
                inputs = to_device(inputs, device)
                batch_labels = None if batch_labels is None else batch_labels.to(device)
                self.cache.offer(inputs, batch_labels)
                if batch_labels is not None:
                    labels.append(batch_labels)
                yield inputs, batch_labels
        except BaseException:
            self.cache.abandon()
            raise
        self.labels = torch.cat(labels) if labels else None
        self.cache.complete()

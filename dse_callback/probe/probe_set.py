"""The probe set: which samples the monitor measures, and their batches on the model's device.

Flow of a probe through this module:

1. `as_dataset(probe)` turns what the user gave (a Dataset, or (x, y) / (x,) tensors) into
   a Dataset; the Lightning glue passes the validation set instead when none was given.
2. `ProbeSet.prepare(needs_labels, needs_tensor_inputs)` (once, in `setup`) draws the fixed
   indices: at most `probe_size` samples, chosen with a private seeded generator (indices
   restored from a checkpoint win), then reads one collated sample through the
   `BatchReader`, so a batch the monitor cannot read fails here, showing its structure.
3. `ProbeSet.shard(rank, P)` (under DDP) picks this process's contiguous share of the
   indices (`sharding.shard_range`); one process keeps them all.
4. `ProbeSet.batches(device)` (every probe) yields (inputs, mask, labels, is_padding) per
   forward call (mask: the attention mask under the reader's `mask_key`, or None), in
   probe order, on `device`, from a `ProbeCache` over the share: read once with DataLoader
   workers, then kept on the device, in pinned host memory or re-read, by a free-memory
   budget (`cache.py`); the mask is kept beside the inputs. Every process makes the same number of calls:
   the shorter shares end with repeated batches marked as padding, whose outputs the
   forward pass drops (FSDP and DeepSpeed gather parameters inside every forward call).

No Lightning here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils._pytree import tree_map
from torch.utils.data import Dataset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from .batches import BatchFormatError, BatchReader, describe_batch
from .cache import ProbeCache
from .shares import forward_batch_count, padded_batches, shard_range


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


# Forward batch sizes for throughput when none is given: the probe keeps no gradients, so
# it takes far larger batches than training; a GPU needs more rows to be kept busy.
DEFAULT_BATCH_SIZE = {"cpu": 256, "cuda": 1024}


class ProbeSet:
    """A fixed, seeded subset of a dataset and its batches; see the module docstring.

    Args:
        dataset: the probe's Dataset (see `as_dataset`).
        probe_size: at most this many samples, chosen once with a seeded generator.
        batch_size: rows per forward call; None: `DEFAULT_BATCH_SIZE` for the device.
        seed: seeds the choice of samples.
        reader: reads inputs and labels out of each batch.
        num_workers: DataLoader workers of the reading pass; None: 0 for a TensorDataset (in
            memory already: workers would only cost their start), else `default_num_workers()`.
        max_cache_bytes: a cap on the cached inputs (None: only the free-memory budget).
        indices: fixed indices, for example from a checkpoint.
        collate_fn: list of samples -> batch, as a DataLoader takes it (for example the Hugging Face
            Trainer's padding collator); None: torch's `default_collate`.
    """

    def __init__(
        self,
        dataset: Dataset,
        probe_size: int = 10_000,
        batch_size: int | None = None,
        seed: int = 0,
        reader: BatchReader | None = None,
        num_workers: int | None = None,
        max_cache_bytes: int | None = None,
        indices: torch.Tensor | None = None,
        collate_fn: Callable[[list], Any] | None = None,
    ):
        if num_workers is None and isinstance(dataset, TensorDataset):
            num_workers = 0
        self.dataset = dataset
        self.probe_size = probe_size
        self.batch_size = batch_size
        self.seed = seed
        self.reader = reader or BatchReader()
        self.num_workers = num_workers
        self.max_cache_bytes = max_cache_bytes
        self.indices = indices
        self.collate = collate_fn or default_collate
        self.rank, self.world_size = 0, 1
        self.cache: ProbeCache | None = None
        self.has_labels = False  # known after `prepare`
        self.has_mask = False  # whether batches carry an attention mask, known after `prepare`

    def __len__(self) -> int:
        return 0 if self.indices is None else len(self.indices)

    @property
    def share(self) -> range:
        """The rows of the probe this process forwards."""
        return shard_range(len(self), self.rank, self.world_size)

    @property
    def labels(self) -> torch.Tensor | None:
        """This process's share of the labels, in probe order, after a first pass."""
        return None if self.cache is None else self.cache.labels

    @property
    def cache_mode(self) -> str:
        return "" if self.cache is None or self.cache.mode is None else self.cache.mode

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
        batch = self.collate([self.dataset[int(self.indices[0])]])
        inputs, labels = self.reader.split(batch)
        self.has_labels = labels is not None
        self.has_mask = self.reader.mask(batch) is not None
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

    def shard(self, rank: int, world_size: int) -> None:
        """Forward only rank `rank`'s contiguous share of P = `world_size` (a new cache if it moved)."""
        if (rank, world_size) != (self.rank, self.world_size):
            self.rank, self.world_size = rank, world_size
            self.cache = None

    def batches(self, device: torch.device) -> Iterator[tuple[Any, torch.Tensor | None, torch.Tensor | None, bool]]:
        """(inputs, mask or None, labels or None, is_padding) per forward call, in probe order, on `device`.

        Every process makes `forward_batch_count(N, P, batch_size)` calls; after its own
        batches come repeats (is_padding True) whose outputs the caller drops.
        """
        device = torch.device(device)
        if self.cache is None or self.cache.device != device:
            share = self.share
            self.cache = ProbeCache(
                self.dataset,
                self.indices[share.start : share.stop],
                device,
                split=self._split,
                collate_fn=self.collate,
                num_workers=self.num_workers,
                max_bytes=self.max_cache_bytes,
            )
        batch_size = self.batch_size or DEFAULT_BATCH_SIZE.get(device.type, 256)
        count = forward_batch_count(len(self), self.world_size, batch_size)
        for (inputs, labels), padding in padded_batches(self.cache.batches(batch_size), count, self._filler(device)):
            inputs, mask = inputs if self.has_mask else (inputs, None)
            yield inputs, mask, labels, padding

    def head_batch(self, rows: int, device: torch.device) -> tuple[Any, Any, torch.Tensor | None, Any]:
        """(inputs, mask or None, labels or None, the raw batch) of the probe's first `rows` samples
        on `device`, read and collated as the probe's batches are: a dry run's batch."""
        samples = [self.dataset[int(index)] for index in self.indices[:rows]]
        batch = self.collate(samples)
        inputs, labels = self._split(batch)
        inputs, mask = inputs if self.has_mask else (inputs, None)
        return _to(inputs, device), _to(mask, device), labels, batch

    def release(self) -> None:
        """Drop the cached inputs (the end of a run)."""
        self.cache = None

    def _filler(self, device: torch.device):
        """A one-sample batch for a process whose share is empty (N < P), to pad with."""

        def read_one():
            inputs, labels = self._split(self.collate([self.dataset[int(self.indices[0])]]))
            return _to(inputs, device), labels

        return read_one

    def _split(self, batch: Any) -> tuple[Any, torch.Tensor | None]:
        """(inputs, labels), or ((inputs, mask), labels) when the batches carry a mask, so the
        cache keeps the mask beside the inputs."""
        inputs, labels = self.reader.split(batch)
        if not self.has_mask:
            return inputs, labels
        mask = self.reader.mask(batch)
        if mask is None:
            raise BatchFormatError(
                f"the first probe batch had an attention mask under mask_key={self.reader.mask_key!r}, but this one "
                f"has none: {describe_batch(batch)}"
            )
        return (inputs, mask), labels


def _to(value: Any, device: torch.device) -> Any:
    """Every tensor of a nest on `device`."""
    return tree_map(lambda leaf: leaf.to(device) if isinstance(leaf, torch.Tensor) else leaf, value)

"""The probe's inputs, read and transformed once, then served from memory.

The flow: the first pass reads the probe (a Dataset and fixed indices) through a
DataLoader with workers and yields its batches while storing them; the first batch fixes
the bytes per sample, so the whole probe's size is known before anything is kept. It is
kept where it fits, in this order:

1. ``"device"``: on the model's device (GPU memory, or host memory for a CPU model),
   when it fits a budget of ``memory_fraction`` of the device's free memory;
2. ``"pinned"``: in page-locked host memory, copied to the GPU batch by batch (only with
   CUDA; pinning means nothing on a CPU-only machine);
3. ``"reread"``: nothing kept; every probe reads and transforms the inputs again.

Labels are small and always kept after the first pass. No Lightning here; the monitor
passes the dataset, its rank's share of the indices and the device.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.data import DataLoader, Dataset, Subset

from ..kernel.validation import check_positive, check_positive_int

Batch = tuple[Any, "torch.Tensor | None"]


def available_memory(device: torch.device | str) -> int:
    """Free bytes where `device` keeps tensors: GPU memory for CUDA, else host memory.

    On the host this reads `MemAvailable` from /proc/meminfo (memory that can be taken
    without swapping) and falls back to the free physical pages from `os.sysconf`.

    Args:
        device: a torch device or its name.

    Returns:
        bytes, an int >= 0.

    Example:
        >>> available_memory("cpu") > 0
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def default_num_workers(loader: DataLoader | None = None) -> int:
    """The validation loader's `num_workers`, else half the usable cores (at most 8).

    Example:
        >>> default_num_workers(DataLoader(range(4), num_workers=1))
        1
    """
    if loader is not None and isinstance(getattr(loader, "num_workers", None), int):
        return loader.num_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(8, cores // 2)


def split_pair(batch) -> Batch:
    """(inputs, labels or None) from an (x, y, ...) tuple or a bare tensor."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch:
        labels = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], labels
    raise TypeError(f"probe batches must be (inputs, labels) tuples or tensors, got {type(batch).__name__}")


class ProbeCache:
    """Serves a fixed probe's (inputs, labels) batches, reading the dataset as few times as fits.

    Inputs may be a tensor or any nest of tensors (tuples, lists, dicts); each leaf is
    stored in one preallocated (N, ...) tensor, so keeping the probe never needs twice its
    size (no concatenation). The cost of a pass goes to `seconds`: ``"data"`` (reading,
    transforming, collating) and ``"transfer"`` (host to device).

    Args:
        dataset: the probe's Dataset.
        indices: the dataset indices to serve, in order (a rank's share under DDP).
        device: where the model runs.
        split: batch -> (inputs, labels or None); default `split_pair` for (x, y) items.
        num_workers: DataLoader workers for reading; None takes `default_num_workers()`.
        memory_fraction: share of the free memory the cache may take, in (0, 1].
        max_bytes: a hard cap on the cached bytes (None: only the memory budget).
        collate_fn: the DataLoader's list of samples -> batch (None: torch's default); a
            padding collator gives batches of several shapes, which are then re-read.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.arange(10.0).reshape(5, 2), torch.arange(5))
        >>> cache = ProbeCache(data, [4, 0, 2], device="cpu", num_workers=0)
        >>> [x[:, 0].tolist() for x, _ in cache.batches(2)]
        [[8.0, 0.0], [4.0]]
        >>> cache.mode, cache.labels.tolist()
        ('device', [4, 0, 2])
    """

    def __init__(
        self,
        dataset: Dataset,
        indices,
        device: torch.device | str,
        split: Callable[[Any], Batch] = split_pair,
        num_workers: int | None = None,
        memory_fraction: float = 0.25,
        max_bytes: int | None = None,
        collate_fn: Callable[[list], Any] | None = None,
    ):
        self.indices = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
        self.dataset = dataset
        self.device = torch.device(device)
        self.split = split
        self.num_workers = (
            default_num_workers() if num_workers is None else check_positive_int(num_workers, "num_workers", 0)
        )
        fraction = check_positive(memory_fraction, "memory_fraction")
        if fraction > 1:
            raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
        self.memory_fraction = fraction
        self.max_bytes = None if max_bytes is None else check_positive_int(max_bytes, "max_bytes", 0)
        self.collate_fn = collate_fn
        self.mode: str | None = None  # decided on the first batch of the first pass
        self.reason = ""
        self.labels: torch.Tensor | None = None
        self.seconds = {"data": 0.0, "transfer": 0.0}
        self._leaves: list[torch.Tensor] | None = None
        self._spec = None
        self._loaded = False

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        """One line for the log: how the probe is kept and why."""
        if self.mode is None:
            return f"probe cache: {len(self)} samples, not read yet"
        return f"probe cache: {len(self)} samples, mode {self.mode!r} ({self.reason})"

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """(inputs, labels or None) batches on `device`, in index order; resets `seconds`."""
        check_positive_int(batch_size, "batch_size")
        self.seconds = {"data": 0.0, "transfer": 0.0}
        if self._loaded and self.mode != "reread":
            yield from self._cached_batches(batch_size)
        else:
            yield from self._read_batches(batch_size)

    # ------------------------------------------------------------------ passes

    def _cached_batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self), batch_size):
            clock = time.perf_counter()
            leaves = [leaf[start : start + batch_size] for leaf in self._leaves]
            if self.mode == "pinned":
                leaves = [leaf.to(self.device, non_blocking=True) for leaf in leaves]
                self._synchronize()
            self.seconds["transfer"] += time.perf_counter() - clock
            labels = None if self.labels is None else self.labels[start : start + batch_size]
            yield tree_unflatten(leaves, self._spec), labels

    def _read_batches(self, batch_size: int) -> Iterator[Batch]:
        """Read the dataset; on the first pass also store it (one forward batch per read batch)."""
        storing = not self._loaded
        labels, row = [], 0
        loader = DataLoader(
            Subset(self.dataset, self.indices),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
        )
        clock = time.perf_counter()
        for batch in loader:
            inputs, y = self.split(batch)
            leaves, spec = tree_flatten(inputs)
            self.seconds["data"] += time.perf_counter() - clock
            clock = time.perf_counter()
            on_device = [leaf.to(self.device) if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
            y = None if y is None else y.to(self.device)
            self._synchronize()
            self.seconds["transfer"] += time.perf_counter() - clock
            if storing and self.mode is None:
                self._decide(leaves, spec)
            if storing and self.mode != "reread":
                storing = self._store(on_device if self.mode == "device" else leaves, row)
            if y is not None and not self._loaded:
                labels.append(y)
            row += len(leaves[0]) if leaves and isinstance(leaves[0], torch.Tensor) else 0
            yield tree_unflatten(on_device, spec), y
            clock = time.perf_counter()
        if not self._loaded:
            self.labels = torch.cat(labels) if labels else None
            self._loaded = True

    # ------------------------------------------------------------------ storage

    def _decide(self, leaves: list, spec) -> None:
        """Pick the mode from the first batch: bytes per sample times the probe size."""
        self._spec = spec
        if not leaves or not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
            self.mode, self.reason = "reread", "inputs are not all tensors"
            return
        per_sample = sum(leaf[:1].numel() * leaf.element_size() for leaf in leaves)
        needed = per_sample * len(self)
        device_budget, host_budget = self._budget(self.device), self._budget(torch.device("cpu"))
        if needed <= device_budget:
            self.mode, self.reason = "device", f"{_gb(needed)} on {self.device}, budget {_gb(device_budget)}"
        elif self.device.type == "cuda" and needed <= host_budget:
            self.mode = "pinned"
            self.reason = f"{_gb(needed)} in pinned host memory, over the {_gb(device_budget)} device budget"
        else:
            self.mode, self.reason = "reread", f"{_gb(needed)} over the {_gb(device_budget)} budget"
            return
        self._leaves = [
            torch.empty(
                (len(self), *leaf.shape[1:]),
                dtype=leaf.dtype,
                device=self.device if self.mode == "device" else "cpu",
                pin_memory=self.mode == "pinned",
            )
            for leaf in leaves
        ]

    def _store(self, leaves: list, row: int) -> bool:
        """Copy one read batch into the cache; a batch of another shape abandons caching."""
        if len(leaves) != len(self._leaves) or any(
            leaf.shape[1:] != kept.shape[1:] or leaf.dtype != kept.dtype for leaf, kept in zip(leaves, self._leaves)
        ):
            self.mode, self.reason, self._leaves = "reread", "samples differ in shape or dtype", None
            return False
        for leaf, kept in zip(leaves, self._leaves):
            kept[row : row + len(leaf)].copy_(leaf)
        return True

    def _budget(self, device: torch.device) -> int:
        budget = int(self.memory_fraction * available_memory(device))
        return budget if self.max_bytes is None else min(budget, self.max_bytes)

    def _synchronize(self) -> None:
        # Honest transfer timings: copies to the GPU return before they finish.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB"

"""Tiny MNIST, CIFAR-10 and STL-10 files in their real on-disk formats.

torchvision's own loaders read them. CIFAR-10 and STL-10 verify the md5 of the real
downloads, which a tiny file cannot match, so `accept_tiny_files` relaxes only that check
to "the file exists"; everything after it (unpickling, reshaping, labels) runs as shipped.
"""

from __future__ import annotations

import os
import pathlib
import pickle

import numpy as np


def _idx_file(path: pathlib.Path, array: np.ndarray) -> None:
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: pathlib.Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    labels = {}
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        labels[prefix] = np.arange(count) % 10
        _idx_file(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _idx_file(raw / f"{prefix}-labels-idx1-ubyte", labels[prefix])
    return labels


def write_cifar10(root: pathlib.Path, per_batch: int = 8, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    labels = {}
    for index, name in enumerate(names):
        count = n_test if name == "test_batch" else per_batch
        labels[name] = [(index + i) % 10 for i in range(count)]
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), "labels": labels[name]}
        with open(folder / name, "wb") as stream:
            pickle.dump(batch, stream)
    with open(folder / "batches.meta", "wb") as stream:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, stream)
    return labels


def write_stl10(root: pathlib.Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels[split] = np.arange(count) % 10
        rng.integers(0, 256, count * 3 * 96 * 96, dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        (labels[split] + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")  # 1-based on disk
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return labels


def accept_tiny_files(monkeypatch) -> None:
    import torchvision.datasets.cifar as cifar
    from torchvision.datasets import CIFAR10, STL10

    def exists(fpath, md5=None) -> bool:
        return os.path.isfile(fpath)

    monkeypatch.setattr(cifar, "check_integrity", exists)
    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)

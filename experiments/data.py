"""Data modules for the paper's studies: MNIST, CIFAR-10, STL-10, and offline digits.

Each dataset is read by torchvision's own loader (`data_dir`, `download`); the digits
quickstart uses the 8 x 8 handwritten digits that scikit-learn ships, so it runs offline.
The regime decides the training view of the data:

- "supervised": the paper's augmentation (random resized crop, flip, and colour jitter and
  grayscale for RGB).
- "contrastive": two augmented views per image (the supervised pipeline plus Gaussian blur).
- "overfit": no augmentation, training labels permuted once with `label_seed`.

Validation (the probe) is always the test split without augmentation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
import torchvision
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from torchvision import transforms as T

REGIMES = ("supervised", "contrastive", "overfit")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    native_size: int
    num_classes: int = 10


SPECS = {
    "mnist": DatasetSpec((0.1307,), (0.3081,), 1, 28),
    "cifar10": DatasetSpec((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 3, 32),
    "stl10": DatasetSpec((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), 3, 96),
    # scikit-learn's digits, scaled to [0, 1]; statistics measured on all 1,797 images.
    "digits": DatasetSpec((0.3053,), (0.3760,), 1, 8),
}


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Integer labels of a torchvision dataset (or a Subset or concatenation of them)."""
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([dataset_labels(part) for part in dataset.datasets])
    for attribute in ("targets", "labels"):
        if hasattr(dataset, attribute):
            return np.asarray(getattr(dataset, attribute), dtype=np.int64)
    raise TypeError(f"cannot read labels of {type(dataset).__name__}")


def permuted_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    """The labels in a random order fixed by `seed`: same histogram, no relation to images."""
    return labels[np.random.default_rng(seed).permutation(len(labels))]


class RelabelledDataset(Dataset):
    """`dataset` with its labels replaced (the overfitting regime)."""

    def __init__(self, dataset: Dataset, labels: np.ndarray):
        if len(labels) != len(dataset):
            raise ValueError(f"{len(labels)} labels for {len(dataset)} samples")
        self.dataset, self.labels = dataset, torch.as_tensor(labels)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        image, _ = self.dataset[index]
        return image, self.labels[index]


class TwoViews:
    """A transform that returns two independent augmentations of one image."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, image):
        return self.transform(image), self.transform(image)


class DigitsDataset(Dataset):
    """scikit-learn's 1,797 handwritten 8 x 8 digits as PIL images, split 80/20 (seeded)."""

    def __init__(self, train: bool, transform: Callable | None = None, seed: int = 0):
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(seed).permutation(len(digits.target))
        cut = int(0.8 * len(order))
        chosen = order[:cut] if train else order[cut:]
        self.images = (digits.images[chosen] / 16.0 * 255).astype(np.uint8)
        self.targets = digits.target[chosen].astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        from PIL import Image

        image = Image.fromarray(self.images[index], mode="L")
        return (self.transform(image) if self.transform else image), int(self.targets[index])


def _base_transform(spec: DatasetSpec, image_size: int, three_channels: bool) -> list:
    steps = []
    if image_size != spec.native_size:
        steps.append(T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC))
    steps.append(T.ToTensor())
    if three_channels and spec.channels == 1:
        steps.append(T.Lambda(_repeat_to_three_channels))
    return steps


def _repeat_to_three_channels(image: torch.Tensor) -> torch.Tensor:
    return image.repeat(3, 1, 1)


def _normalize(spec: DatasetSpec, three_channels: bool) -> T.Normalize:
    mean, std = spec.mean, spec.std
    if three_channels and spec.channels == 1:
        mean, std = mean * 3, std * 3
    return T.Normalize(mean, std)


def eval_transform(spec: DatasetSpec, image_size: int, three_channels: bool) -> T.Compose:
    return T.Compose(_base_transform(spec, image_size, three_channels) + [_normalize(spec, three_channels)])


def train_transform(spec: DatasetSpec, image_size: int, three_channels: bool, blur: bool) -> T.Compose:
    """The paper's augmentation; with `blur`, SimCLR's Gaussian blur (radius 0.1-2, p=0.5) too."""
    steps = [T.RandomResizedCrop(image_size, scale=(0.6, 1.6), interpolation=T.InterpolationMode.BICUBIC)]
    steps.append(T.RandomHorizontalFlip())
    if spec.channels == 3:
        steps.append(T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.4))
        steps.append(T.RandomGrayscale(p=0.2))
    if blur:
        kernel = max(3, (image_size // 10) | 1)  # odd, about a tenth of the image, as in SimCLR
        steps.append(T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5))
    steps.append(T.ToTensor())
    if three_channels and spec.channels == 1:
        steps.append(T.Lambda(_repeat_to_three_channels))
    steps.append(_normalize(spec, three_channels))
    return T.Compose(steps)


class PaperData(pl.LightningDataModule):
    """One of the paper's datasets in one training regime.

    Args:
        dataset: "mnist", "cifar10", "stl10" or "digits" (offline, scikit-learn's).
        data_dir: where torchvision finds (or downloads) the files.
        download: let torchvision download missing files.
        regime: "supervised", "contrastive" or "overfit".
        image_size: side of the square images the model sees (the paper: 224).
        three_channels: repeat grey images to 3 channels (the paper does, for MNIST).
        batch_size: training and validation batch size.
        num_workers: DataLoader workers.
        train_subset: use only the first this many training images (None: all).
        val_subset: use only the first this many test images (None: all).
        train_repeats: iterate the training set this many times per epoch (the paper
            repeats STL-10's 5,000 images 10 times for supervised and contrastive runs).
        label_seed: seed of the overfitting regime's label permutation (the CLI links it
            to the run's seed_everything).
    """

    def __init__(
        self,
        dataset: str = "mnist",
        data_dir: str = "data",
        download: bool = False,
        regime: str = "supervised",
        image_size: int = 224,
        three_channels: bool = True,
        batch_size: int = 128,
        num_workers: int = 0,
        train_subset: int | None = None,
        val_subset: int | None = None,
        train_repeats: int = 1,
        label_seed: int = 0,
    ):
        super().__init__()
        if dataset not in SPECS:
            raise ValueError(f"dataset must be one of {tuple(SPECS)}, got {dataset!r}")
        if regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
        if train_repeats < 1:
            raise ValueError(f"train_repeats must be >= 1, got {train_repeats}")
        self.save_hyperparameters()
        self.spec = SPECS[dataset]
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def in_channels(self) -> int:
        return 3 if self.hparams.three_channels else self.spec.channels

    def _load(self, train: bool, transform: Callable) -> Dataset:
        name, root, download = self.hparams.dataset, self.hparams.data_dir, self.hparams.download
        if name == "mnist":
            return torchvision.datasets.MNIST(root, train=train, download=download, transform=transform)
        if name == "cifar10":
            return torchvision.datasets.CIFAR10(root, train=train, download=download, transform=transform)
        if name == "stl10":
            split = "train" if train else "test"
            return torchvision.datasets.STL10(root, split=split, download=download, transform=transform)
        return DigitsDataset(train=train, transform=transform)

    def prepare_data(self) -> None:
        if self.hparams.download:
            for train in (True, False):
                self._load(train, transform=None)

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        evaluation = eval_transform(self.spec, hp.image_size, hp.three_channels)
        if hp.regime == "overfit":
            training = evaluation
        else:
            training = train_transform(self.spec, hp.image_size, hp.three_channels, blur=hp.regime == "contrastive")
            if hp.regime == "contrastive":
                training = TwoViews(training)
        train_set = self._first(self._load(True, training), hp.train_subset)
        if hp.regime == "overfit":
            train_set = RelabelledDataset(train_set, permuted_labels(dataset_labels(train_set), hp.label_seed))
        if hp.train_repeats > 1:
            train_set = ConcatDataset([train_set] * hp.train_repeats)
        self.train_set = train_set
        self.val_set = self._first(self._load(False, evaluation), hp.val_subset)

    @staticmethod
    def _first(dataset: Dataset, count: int | None) -> Dataset:
        return dataset if count is None or count >= len(dataset) else Subset(dataset, range(count))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            num_workers=self.hparams.num_workers,
            drop_last=self.hparams.regime == "contrastive",
            persistent_workers=self.hparams.num_workers > 0,
        )

    def linear_probe_dataloader(self) -> DataLoader:
        """The training split without augmentation and with its true labels (linear evaluation)."""
        hp = self.hparams
        dataset = self._first(
            self._load(True, eval_transform(self.spec, hp.image_size, hp.three_channels)), hp.train_subset
        )
        return DataLoader(dataset, batch_size=hp.batch_size, num_workers=hp.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.hparams.batch_size,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

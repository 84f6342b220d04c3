"""A tiny classifier and data module for callback tests (either Lightning namespace)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blob_data(n: int = 96, n_classes: int = 3, dim: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    centres = torch.randn(n_classes, dim, generator=generator) * 4
    points = centres[labels] + torch.randn(n, dim, generator=generator)
    return points, labels


def make_classes(pl):
    """TinyClassifier and BlobData built on the Lightning namespace module `pl`."""

    class TinyClassifier(pl.LightningModule):
        def __init__(self, dim: int = 8, hidden: int = 16, n_classes: int = 3, dropout: float = 0.2):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout))
            self.head = nn.Linear(hidden, n_classes)

        def forward(self, x):
            return self.head(self.backbone(x))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    class BlobData(pl.LightningDataModule):
        def __init__(self, n_train: int = 96, n_val: int = 60, batch_size: int = 16):
            super().__init__()
            self.train_set = TensorDataset(*blob_data(n_train, seed=0))
            self.val_set = TensorDataset(*blob_data(n_val, seed=1))
            self.batch_size = batch_size

        def train_dataloader(self):
            return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

        def val_dataloader(self):
            return DataLoader(self.val_set, batch_size=self.batch_size)

    return TinyClassifier, BlobData

"""The LightningModule of the paper's studies: one backbone, one regime.

- supervised and overfit: cross-entropy on the head's logits.
- contrastive: SimCLR on a projection head; every `linear_probe_every` epochs the
  classifier head is reset and trained for `linear_probe_epochs` on frozen features of the
  (unaugmented) training set, which gives the validation accuracy (`val_acc`). In the same
  epochs a k-nearest-neighbour classifier on those frozen features (cosine similarity, k =
  `knn_k`) gives `val_knn_acc`, a probe of the features that trains nothing.

The classifier head is registered last, so DSEMonitor's default layer (the input of the
last nn.Linear) is the pooled backbone feature Z in every regime.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from dse_callback.probe.capture import EvalMode

from .backbones import build_backbone, paper_init
from .losses import CONTRASTIVE_LOSSES, nt_xent, nt_xent_paper

MODEL_REGIMES = ("supervised", "contrastive", "overfit")


def warmup_cosine(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Learning-rate factor: linear warm-up over `warmup_epochs`, then cosine to 0."""
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    progress = (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def knn_predict(
    queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, k: int, num_classes: int
) -> torch.Tensor:
    """Classes (Q,) of queries (Q, D) by a vote of their k most cosine-similar rows of bank (M, D).

    Each query takes the class most frequent among its k neighbours (k capped at M); a tie
    goes to the class whose tied neighbours are the more similar in sum. `bank` may be given
    unit-normalized already (normalizing again changes nothing); bank_labels (M,) are in
    [0, num_classes).

    >>> bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_predict(torch.tensor([[2.0, 0.1], [0.1, 3.0]]), bank, torch.tensor([0, 0, 1]), k=1, num_classes=2)
    tensor([0, 1])
    """
    similarity = F.normalize(queries.float(), dim=1) @ F.normalize(bank.float(), dim=1).T
    top, neighbours = similarity.topk(min(k, len(bank)), dim=1)
    votes = F.one_hot(bank_labels[neighbours], num_classes).float()  # (Q, k, C)
    # Counts decide; the summed similarity (|.| <= k) scaled below 1 only breaks ties.
    scores = votes.sum(1) + votes.mul(top.unsqueeze(2)).sum(1) / (2.0 * k + 1.0)
    return scores.argmax(1)


class ExperimentModule(pl.LightningModule):
    """A backbone trained from scratch in one of the paper's regimes.

    Args:
        backbone: a name in `dse_experiments.backbones.BACKBONES`.
        num_classes, in_channels, image_size: set from the data module by the CLI.
        regime: "supervised", "contrastive" or "overfit" (the CLI links it to the data's).
        lr, weight_decay: AdamW.
        warmup_epochs: linear warm-up, then cosine decay to 0 at the last epoch.
        conv_init_std: None for Kaiming-normal conv weights, or the std of N(0, std)
            (the initialization study).
        contrastive_loss: "standard" (SimCLR's NT-Xent) or "paper" (cross-view pairs only).
        temperature: NT-Xent temperature (None: 0.5 for "standard", 1.0 for "paper").
        projection_hidden, projection_dim: Linear(Z, hidden, no bias) -> ReLU -> Linear(hidden, dim).
        linear_probe_every, linear_probe_epochs, linear_probe_lr: the contrastive regime's
            linear evaluation.
        knn_k: neighbours of the contrastive regime's kNN evaluation (`val_knn_acc`, in the
            linear probe's epochs); 0 turns it off.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 224,
        regime: str = "supervised",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_epochs: int = 10,
        conv_init_std: float | None = None,
        contrastive_loss: str = "standard",
        temperature: float | None = None,
        projection_hidden: int = 512,
        projection_dim: int = 128,
        linear_probe_every: int = 5,
        linear_probe_epochs: int = 10,
        linear_probe_lr: float = 1e-3,
        knn_k: int = 20,
    ):
        super().__init__()
        if regime not in MODEL_REGIMES:
            raise ValueError(f"regime must be one of {MODEL_REGIMES}, got {regime!r}")
        if contrastive_loss not in CONTRASTIVE_LOSSES:
            raise ValueError(f"contrastive_loss must be one of {CONTRASTIVE_LOSSES}, got {contrastive_loss!r}")
        if isinstance(knn_k, bool) or not isinstance(knn_k, int) or knn_k < 0:
            raise ValueError(f"knn_k must be an integer >= 0 (0: no kNN accuracy), got {knn_k!r}")
        self.save_hyperparameters()
        self._knn_bank: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (epoch, unit features, labels)
        self.backbone, width = build_backbone(backbone, image_size, in_channels)
        self.projector = None
        if regime == "contrastive":
            self.projector = nn.Sequential(
                nn.Linear(width, projection_hidden, bias=False), nn.ReLU(), nn.Linear(projection_hidden, projection_dim)
            )
        self.head = nn.Linear(width, num_classes)  # last: its input is Z
        paper_init(self, conv_init_std)

    @property
    def contrastive(self) -> bool:
        return self.hparams.regime == "contrastive"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        if self.contrastive:
            (first, second), _ = batch
            projections = self.projector(self.backbone(torch.cat([first, second])))
            first_projection, second_projection = projections.chunk(2)
            if self.hparams.contrastive_loss == "paper":
                loss = nt_xent_paper(first_projection, second_projection, self.hparams.temperature or 1.0)
            else:
                loss = nt_xent(first_projection, second_projection, self.hparams.temperature or 0.5)
            self.log("train_loss", loss, prog_bar=True)
            return loss
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_acc", (logits.argmax(1) == labels).float().mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        features = self.backbone(images)
        logits = self.head(features)
        self.log("val_loss", F.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(1) == labels).float().mean(), prog_bar=True)
        if self._knn_bank is not None and self._knn_bank[0] == self.current_epoch:
            _, bank, bank_labels = self._knn_bank
            predicted = knn_predict(features, bank, bank_labels, self.hparams.knn_k, self.hparams.num_classes)
            self.log("val_knn_acc", (predicted == labels).float().mean())

    def on_validation_epoch_start(self) -> None:
        if self.contrastive and not self.trainer.sanity_checking:
            if (self.current_epoch + 1) % self.hparams.linear_probe_every == 0:
                self.fit_linear_probe(self.trainer.datamodule.linear_probe_dataloader())

    def fit_linear_probe(self, loader) -> None:
        """Reset the head and train it on frozen, unaugmented training features."""
        with torch.inference_mode(False), torch.enable_grad():
            with torch.no_grad(), EvalMode(self):
                features, labels = [], []
                for images, targets in loader:
                    features.append(self.backbone(images.to(self.device)))
                    labels.append(targets.to(self.device))
            features, labels = torch.cat(features), torch.cat(labels)
            if self.hparams.knn_k:
                self._knn_bank = (self.current_epoch, F.normalize(features.float(), dim=1), labels)
            nn.init.normal_(self.head.weight, std=0.001)
            nn.init.zeros_(self.head.bias)
            optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.hparams.linear_probe_lr)
            generator = torch.Generator().manual_seed(self.current_epoch)  # leaves the global RNG alone
            batch_size = loader.batch_size or 128
            for _ in range(self.hparams.linear_probe_epochs):
                order = torch.randperm(len(features), generator=generator).to(self.device)
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    loss = F.cross_entropy(self.head(features[rows]), labels[rows])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

    def configure_optimizers(self):
        # In the contrastive regime only the linear probe trains the head.
        parameters = [p for name, p in self.named_parameters() if not (self.contrastive and name.startswith("head."))]
        optimizer = torch.optim.AdamW(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        max_epochs = self.trainer.max_epochs if self.trainer and self.trainer.max_epochs else 1
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: warmup_cosine(epoch, self.hparams.warmup_epochs, max_epochs)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

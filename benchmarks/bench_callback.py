"""Overhead of DSEMonitor on a small CNN trained on real MNIST.

Trains one epoch without the monitor, then one with it for each probe size, and prints
the epoch's training time, the probe's time split into the forward pass and the metric
computation, and the overhead ratio (probe seconds / training seconds of the epoch).

    ../shared/data/mnist/unpack.sh data          # once: MNIST where torchvision looks
    python benchmarks/bench_callback.py --data-dir data
    python benchmarks/bench_callback.py --data-dir data --device cuda --model resnet18 --probe-sizes 10000

The ResNet-18 variant resizes MNIST to 224 px (3 channels), as the paper does.
"""

from __future__ import annotations

import argparse
import time
import warnings

import pytorch_lightning as pl
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Subset

from dse_callback import DSEMonitor


class Classifier(pl.LightningModule):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.network = backbone

    def forward(self, x):
        return self.network(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def resnet18() -> nn.Module:
    return torchvision.models.resnet18(num_classes=10)


class EpochTimer(pl.Callback):
    """Training seconds of each epoch, up to the point where the monitor starts probing."""

    def __init__(self):
        self.train_seconds = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.train_seconds.append(time.perf_counter() - self._start)


def mnist(data_dir: str, train: bool, size: int, resize: int | None):
    steps = [torchvision.transforms.ToTensor()]
    if resize:
        steps += [torchvision.transforms.Resize(resize), torchvision.transforms.Lambda(lambda x: x.repeat(3, 1, 1))]
    steps.append(torchvision.transforms.Normalize((0.1307,), (0.3081,)))
    dataset = torchvision.datasets.MNIST(data_dir, train=train, download=False, transform=torchvision.transforms.Compose(steps))
    return Subset(dataset, range(min(size, len(dataset))))


def run(args, probe_size: int | None) -> tuple[float, dict | None]:
    pl.seed_everything(0, verbose=False)
    resize = 224 if args.model == "resnet18" else None
    train = DataLoader(mnist(args.data_dir, True, args.train_size, resize), batch_size=128, shuffle=True, num_workers=args.workers)
    timer = EpochTimer()
    callbacks = [timer]  # hooks run in list order: the timer's epoch end comes before the probe
    monitor = None
    if probe_size:
        monitor = DSEMonitor(probe=mnist(args.data_dir, False, probe_size, resize), probe_size=probe_size,
                             metrics=("dse", "dsmi_y", "dsmi_x"), num_workers=args.workers, max_cache_bytes=2**32)
        callbacks.append(monitor)
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator=args.device, devices=1, logger=False, callbacks=callbacks,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0)
    model = Classifier(small_cnn() if args.model == "cnn" else resnet18())
    trainer.fit(model, train)
    last = None if monitor is None else monitor.history[max(monitor.history)]
    return timer.train_seconds[-1], last


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("cnn", "resnet18"), default="cnn")
    parser.add_argument("--probe-sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--train-size", type=int, default=60_000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    baseline, _ = run(args, None)
    print(f"\n{args.model} on MNIST ({args.train_size} training images), device={args.device}, threads={torch.get_num_threads()}")
    print(f"{'probe N':>8} {'train s':>8} {'probe s':>8} {'forward s':>9} {'metrics s':>9} {'overhead':>9} {'metrics/forward':>15}")
    print(f"{'none':>8} {baseline:>8.2f}")
    for probe_size in args.probe_sizes:
        train_seconds, row = run(args, probe_size)
        print(
            f"{probe_size:>8} {train_seconds:>8.2f} {row['probe_seconds']:>8.2f} {row['forward_seconds']:>9.2f} "
            f"{row['metric_seconds']:>9.2f} {row['probe_seconds'] / baseline:>8.1%} "
            f"{row['metric_seconds'] / row['forward_seconds']:>15.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""What DSEMonitor costs a training epoch: probe seconds by stage, sync against async.

Setup (the issue's): a torchvision ResNet-18 at 32 px on real MNIST repeated to 3
channels, one epoch of 20,000 training images; the probe is N test images (N in {1,000,
10,000}) measured with DSE, DSMI(Z; Y) and DSMI(Z; X) at the epoch-0 baseline and after
the epoch. Each configuration is one `fit` in this process, against a `fit` without the
monitor in the same run (the baseline):

- the probe's seconds split into data (reading and transforming; only the first probe
  reads, later ones come from the cache), transfer (host to device), forward and metrics;
- the probe's share of the epoch (probe seconds over the monitor-free epoch's seconds);
- each `fit`'s wall time over the baseline's, which is what async saves: there the metrics
  run in a background thread while training goes on (the last probe's metrics cannot
  overlap anything and are waited for before `fit` returns).

    python benchmarks/bench_callback.py                    # CPU, the issue's setup
    python benchmarks/bench_callback.py --device cuda --model resnet50 --image-size 224 \\
        --train-size 20000 --out results/callback_gpu.md  # as benchmarks/gpu.sh runs it

MNIST comes from --data-dir (torchvision's layout) or, when absent, is unpacked from
../shared/data/mnist into a temporary directory.
"""

from __future__ import annotations

import argparse
import inspect
import math
import pathlib
import subprocess
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Subset

from dse_callback import DSEMonitor

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
STAGES = ("data", "transfer", "forward", "metric")


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


class EpochTimer(pl.Callback):
    """Seconds of each training epoch, up to the point where the monitor starts probing."""

    def __init__(self):
        self.train_seconds = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.train_seconds.append(time.perf_counter() - self._start)


def mnist_root(data_dir: str) -> str:
    if (pathlib.Path(data_dir) / "MNIST" / "raw").is_dir():
        return data_dir
    root = tempfile.mkdtemp(prefix="bench_mnist_")
    subprocess.run(["bash", str(SHARED_MNIST / "unpack.sh"), root], check=True, capture_output=True)
    return root


def _three_channels(x: torch.Tensor) -> torch.Tensor:
    return x.expand(3, -1, -1)


def mnist(root: str, train: bool, size: int, image_size: int):
    transform = torchvision.transforms.Compose(
        [
            torchvision.transforms.Resize(image_size, antialias=True),
            torchvision.transforms.ToTensor(),
            torchvision.transforms.Normalize((0.1307,), (0.3081,)),
            torchvision.transforms.Lambda(_three_channels),
        ]
    )
    dataset = torchvision.datasets.MNIST(root, train=train, download=False, transform=transform)
    return Subset(dataset, range(min(size, len(dataset))))


def monitor_options(**wanted) -> dict:
    """The options this DSEMonitor accepts (the bench runs before and after they land)."""
    accepted = inspect.signature(DSEMonitor.__init__).parameters
    return {key: value for key, value in wanted.items() if key in accepted and value is not None}


def probe_row(monitor, epoch: int) -> dict:
    """The history row of one probe: flat, or the first layer's when it holds several."""
    row = monitor.history[epoch]
    return next(iter(row.values())) if row and isinstance(next(iter(row.values())), dict) else row


def fit(args, root: str, probe_size: int | None, asynchronous: bool) -> dict:
    pl.seed_everything(0, verbose=False)
    train = DataLoader(
        mnist(root, True, args.train_size, args.image_size),
        batch_size=128,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    timer = EpochTimer()
    callbacks = [timer]  # hooks run in list order: the timer's epoch end comes before the probe
    monitor = None
    if probe_size:
        options = monitor_options(
            num_workers=args.workers, async_metrics=asynchronous, probe_batch_size=args.probe_batch_size
        )
        if asynchronous and "async_metrics" not in options:
            return {"skipped": "this DSEMonitor has no async_metrics option"}
        monitor = DSEMonitor(
            probe=mnist(root, False, probe_size, args.image_size),
            probe_size=probe_size,
            metrics=("dse", "dsmi_y", "dsmi_x"),
            **options,
        )
        callbacks.append(monitor)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator=args.device,
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tempfile.mkdtemp(prefix="bench_callback_"),
    )
    backbone = getattr(torchvision.models, args.model)(num_classes=10)
    start = time.perf_counter()
    trainer.fit(Classifier(backbone), train)
    result = {"fit": time.perf_counter() - start, "train": timer.train_seconds[-1]}
    if monitor is not None:
        result["probes"] = [probe_row(monitor, epoch) for epoch in sorted(monitor.history)]
        result["cache"] = result["probes"][0].get("cache", "")
    return result


def seconds(row: dict, stage: str) -> float:
    value = row.get(f"{stage}_seconds", "")
    return float(value) if value not in ("", None) else math.nan


def table(args, baseline: dict, results: list[tuple[int, str, dict]]) -> str:
    lines = [
        f"{args.model} at {args.image_size} px on MNIST, {args.train_size:,} training images, device "
        f"{device_name(args.device)}, {torch.get_num_threads()} threads, probe metrics DSE, DSMI(Z; Y), DSMI(Z; X).",
        f"Training alone: epoch {baseline['train']:.2f} s, fit {baseline['fit']:.2f} s.",
        "",
        "| probe N | mode | probe | data s | transfer s | forward s | metrics s | probe s | probe / epoch "
        "| fit s | fit / fit alone | cache |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for probe_size, mode, result in results:
        if "skipped" in result:
            lines.append(f"| {probe_size:,} | {mode} | {result['skipped']} |" + " |" * 9)
            continue
        for which, row in zip(("baseline", "after epoch 1"), result["probes"]):
            split = " | ".join(f"{seconds(row, stage):.2f}" for stage in STAGES)
            probe = seconds(row, "probe")
            fit_cells = f"{result['fit']:.2f} | {result['fit'] / baseline['fit']:.3f}" if which == "baseline" else " | "
            lines.append(
                f"| {probe_size:,} | {mode} | {which} | {split} | {probe:.2f} | "
                f"{probe / baseline['train']:.1%} | {fit_cells} | {row.get('cache', '')} |"
            )
    for probe_size in sorted({p for p, _, _ in results}):
        fits = {mode: r["fit"] for p, mode, r in results if p == probe_size and "fit" in r}
        if len(fits) == 2:
            lines.append("")
            lines.append(
                f"N = {probe_size:,}: async saves {fits['sync'] - fits['async']:.2f} s of "
                f"{fits['sync'] - baseline['fit']:.2f} s that sync adds to fit "
                f"({(fits['sync'] - fits['async']) / (fits['sync'] - baseline['fit']):.0%})."
            )
    return "\n".join(lines)


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("resnet18", "resnet50"), default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--probe-sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--modes", nargs="+", choices=("sync", "async"), default=["sync", "async"])
    parser.add_argument("--train-size", type=int, default=20_000, help="training images in the epoch")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers, training and probe")
    parser.add_argument("--probe-batch-size", type=int, default=None, help="None: the monitor's default")
    parser.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    root = mnist_root(args.data_dir)
    print("warm-up (one-off library and allocator start-up stays out of the timings) ...", flush=True)
    fit(argparse.Namespace(**{**vars(args), "train_size": 512}), root, None, False)
    print(f"training alone ({args.train_size} images) ...", flush=True)
    baseline = fit(args, root, None, False)
    results = []
    for probe_size in args.probe_sizes:
        for mode in args.modes:
            print(f"probe N = {probe_size}, {mode} ...", flush=True)
            results.append((probe_size, mode, fit(args, root, probe_size, mode == "async")))
    report = table(args, baseline, results)
    print("\n" + report)
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()

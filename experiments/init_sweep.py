"""`dse-experiment init-sweep`: initial DSE(Z) of a random ResNet-50 against the conv weight std.

The paper's initialization study: conv weights drawn from N(0, std) (the rest as in
`paper_init`), no training; DSE(Z) of the pooled 2048-wide feature on a fixed probe, with
the model in eval mode as DSEMonitor's epoch-0 baseline sees it. The paper reports DSE
rising monotonically with std, from about 0 at 0.01 to about log2 N at 0.1: in eval mode
BatchNorm passes activations through at their own scale, which each conv multiplies by
about std * sqrt(fan_in), so small stds shrink Z towards a point (DSE ~ 0) and large ones
spread it far beyond sigma (DSE ~ log2 N).

Writes `{out}/init_sweep.csv` (one row per std) and `{out}/init_sweep.png`.
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib
import time
import warnings

import torch
import torch.nn.functional as F

from dse_callback import diffusion_spectral_entropy
from dse_callback.report.figures import pyplot

from .backbones import build_backbone, paper_init
from .plot import save_figure
from .population.study import fixed_probe, load_mnist

PAPER_STDS = (1e-3, 1e-2, 2e-2, 3e-2, 4e-2, 5e-2, 8e-2, 1e-1)


def probe_images(data_dir: str | pathlib.Path, n_images: int, image_size: int, seed: int = 0) -> torch.Tensor:
    """A seeded subset of normalized MNIST test images, resized and repeated to (N, 3, S, S)."""
    images, labels = load_mnist(data_dir, train=False)
    chosen = images[fixed_probe(labels, n_images, seed)]
    if image_size != chosen.shape[-1]:
        chosen = F.interpolate(chosen, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return chosen.repeat(1, 3, 1, 1)


@torch.no_grad()
def initial_representation(images: torch.Tensor, conv_std: float, seed: int = 0, batch_size: int = 100) -> torch.Tensor:
    """Pooled features (N, 2048) of a ResNet-50 with conv weights N(0, conv_std), in eval mode."""
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
        torch.manual_seed(seed)
        model, _ = build_backbone("resnet50", images.shape[-1], 3)
        paper_init(model, conv_std)
    model.eval()
    return torch.cat([model(images[start : start + batch_size]) for start in range(0, len(images), batch_size)])


def sweep(images: torch.Tensor, stds=PAPER_STDS, sigma: float = 10.0, t: float = 1, seed: int = 0) -> list[dict]:
    """DSE(Z) at initialization for each conv std; one row per std, with Z's spread."""
    rows = []
    for index, std in enumerate(stds, 1):
        started = time.perf_counter()
        z = initial_representation(images, std, seed).double()
        finite = bool(torch.isfinite(z).all())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the ends of the sweep sit at 0 and log2 N by design
            dse = diffusion_spectral_entropy(z, sigma=sigma, t=t, max_samples=None) if finite else math.nan
        spread = float((z - z.mean(0)).norm(dim=1).median()) if finite else math.nan
        rows.append({"conv_std": std, "dse": dse, "log2_n": math.log2(len(z)), "n": len(z), "image_size": images.shape[-1],
                     "sigma": sigma, "t": t, "median_distance_to_mean": spread,
                     "seconds": time.perf_counter() - started})  # fmt: skip
        print(f"[{index}/{len(stds)}] conv std {std:g}: DSE(Z) = {dse:.3f} bits of log2 N = {math.log2(len(z)):.2f}; "
              f"median |z - mean| = {spread:.3g} ({rows[-1]['seconds']:.1f} s)", flush=True)  # fmt: skip
    return rows


def write_outputs(rows: list[dict], out: str | pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "init_sweep.csv"
    with open(table, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([row["conv_std"] for row in rows], [row["dse"] for row in rows], marker="o", label="DSE(Z) at initialization")
    axis.axhline(rows[0]["log2_n"], color="grey", linestyle="--", label=f"log2 N (N = {rows[0]['n']})")
    axis.set_xscale("log")
    axis.set_xlabel("conv weight std")
    axis.set_ylabel("DSE(Z), bits")
    axis.set_title(f"Random ResNet-50, MNIST test images at {rows[0]['image_size']} px, sigma {rows[0]['sigma']:g}", fontsize=9)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return table, save_figure(figure, out / "init_sweep.png")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="dse-experiment init-sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--data-dir", default="data", help="torchvision MNIST root")
    parser.add_argument("--n-images", type=int, default=1000, help="probe size N (MNIST test images)")
    parser.add_argument("--image-size", type=int, default=64, help="side the images are resized to (the paper: 224)")
    parser.add_argument("--stds", type=float, nargs="+", default=list(PAPER_STDS), help="conv weight stds")
    parser.add_argument("--sigma", type=float, default=10.0)
    parser.add_argument("--t", type=float, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seeds the probe subset and the weights")
    parser.add_argument("--out", default="results/init_sweep")
    args = parser.parse_args(argv)
    if args.n_images < 2 or args.image_size < 32:
        parser.error(f"--n-images must be >= 2 and --image-size >= 32 (ResNet-50 halves it 5 times), got {args.n_images}, {args.image_size}")
    images = probe_images(args.data_dir, args.n_images, args.image_size, args.seed)
    rows = sweep(images, args.stds, args.sigma, args.t, args.seed)
    for path in write_outputs(rows, args.out):
        print(path)

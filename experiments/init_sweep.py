"""`dse-experiment init-sweep`: initial DSE(Z) of a random ResNet-50 against the conv weight std, per bandwidth.

The paper's initialization study: conv weights drawn from N(0, std) (the rest as in
`paper_init`), no training; DSE(Z) of the pooled 2048-wide feature on a fixed probe, with
the model in eval mode as DSEMonitor's epoch-0 baseline sees it. The paper reports DSE
rising monotonically with std, from about 0 at 0.01 to about log2 N at 0.1: in eval mode
BatchNorm passes activations through at their own scale, which each conv multiplies by
about std * sqrt(fan_in), so small stds shrink Z towards a point (DSE ~ 0) and large ones
spread it far beyond sigma (DSE ~ log2 N). With about 50 such layers, the step from 0 to
log2 N at sigma = 10 is sharp (between std 0.03 and 0.05).

`--sigma` takes several bandwidths (default all of the population study's: `sqrt_dim`,
`10`, `median`, `rms`, `knn`); Z is computed once per std and measured under each. The
scale-free presets follow Z's scale, so they show what the fixed ones cannot: whether Z's
shape, not its size, changes with the std.

Writes `{out}/init_sweep.csv` (one row per std and bandwidth: the resolved sigma, the RMS
radius of Z and their ratio) and `{out}/init_sweep.png` (DSE per bandwidth, and the radius).
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
from .population.metrics import BANDWIDTHS, bandwidth_label, resolve_bandwidth
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


def sweep(images: torch.Tensor, stds=PAPER_STDS, sigmas=BANDWIDTHS, t: float = 1, seed: int = 0) -> list[dict]:
    """DSE(Z) at initialization for each conv std and bandwidth; one row per (std, bandwidth), with Z's spread."""
    labels = list(dict.fromkeys(bandwidth_label(sigma) for sigma in sigmas))
    rows = []
    for index, std in enumerate(stds, 1):
        started = time.perf_counter()
        z = initial_representation(images, std, seed).double()
        finite = bool(torch.isfinite(z).all())
        centred = z - z.mean(0)
        spread = float(centred.norm(dim=1).median()) if finite else math.nan
        radius = float(centred.square().sum(1).mean().sqrt()) if finite else math.nan
        for label in labels:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the ends of the sweep sit at 0 and log2 N by design
                estimate = (
                    diffusion_spectral_entropy(
                        z, sigma=resolve_bandwidth(label, z.shape[1]), t=t, max_samples=None, return_details=True
                    )
                    if finite
                    else None
                )
            sigma_value = float(estimate.sigma) if estimate else math.nan
            rows.append(
                {
                    "conv_std": std,
                    "sigma": label,
                    "sigma_value": sigma_value,
                    "dse": float(estimate.value) if estimate else math.nan,
                    "log2_n": math.log2(len(z)),
                    "n": len(z),
                    "image_size": images.shape[-1],
                    "t": t,
                    "rms_radius": radius,
                    "scale": radius / sigma_value,
                    "median_distance_to_mean": spread,
                    "seconds": time.perf_counter() - started,
                }
            )
        measured = rows[-len(labels) :]
        print(
            f"[{index}/{len(stds)}] conv std {std:g}: RMS radius {radius:.3g}; DSE(Z) "
            + ", ".join(f"{row['sigma']} {row['dse']:.3f}" for row in measured)
            + f" bits of log2 N = {math.log2(len(z)):.2f} ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
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
    figure, (axis, radius_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label in dict.fromkeys(row["sigma"] for row in rows):
        chosen = [row for row in rows if row["sigma"] == label]
        axis.plot([row["conv_std"] for row in chosen], [row["dse"] for row in chosen], marker="o", label=label)
    axis.axhline(rows[0]["log2_n"], color="grey", linestyle="--", label=f"log2 N (N = {rows[0]['n']})")
    axis.set_xscale("log")
    axis.set_xlabel("conv weight std")
    axis.set_ylabel("DSE(Z) at initialization, bits")
    axis.set_ylim(-0.3, 1.4 * rows[0]["log2_n"])  # room above log2 N for the legend
    axis.legend(title="sigma", fontsize=8, loc="upper center", ncol=3)
    first = [row for row in rows if row["sigma"] == rows[0]["sigma"]]
    radius_axis.plot([row["conv_std"] for row in first], [row["rms_radius"] for row in first], marker="o")
    radius_axis.set_xscale("log")
    radius_axis.set_yscale("log")
    radius_axis.set_xlabel("conv weight std")
    radius_axis.set_ylabel("RMS radius of Z")
    for each in (axis, radius_axis):
        each.grid(True, alpha=0.3)
    title = f"Random ResNet-50, {rows[0]['n']} MNIST test images at {rows[0]['image_size']} px"
    return table, save_figure(figure, out / "init_sweep.png", title)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="dse-experiment init-sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="data", help="torchvision MNIST root")
    parser.add_argument("--n-images", type=int, default=1000, help="probe size N (MNIST test images)")
    parser.add_argument("--image-size", type=int, default=64, help="side the images are resized to (the paper: 224)")
    parser.add_argument("--stds", type=float, nargs="+", default=list(PAPER_STDS), help="conv weight stds")
    parser.add_argument(
        "--sigma",
        nargs="+",
        default=list(BANDWIDTHS),
        help="bandwidths: sqrt_dim (sqrt(2048)), numbers, median, rms, knn (default: all of these)",
    )
    parser.add_argument("--t", type=float, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seeds the probe subset and the weights")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: no thrashing on a shared CPU)"
    )
    parser.add_argument("--out", default="results/init_sweep")
    args = parser.parse_args(argv)
    if args.n_images < 2 or args.image_size < 32:
        parser.error(
            "--n-images must be >= 2 and --image-size >= 32 (ResNet-50 halves it 5 times), "
            f"got {args.n_images}, {args.image_size}"
        )
    try:
        sigmas = [bandwidth_label(sigma) for sigma in args.sigma]
    except ValueError as error:
        parser.error(f"--sigma: {error}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        images = probe_images(args.data_dir, args.n_images, args.image_size, args.seed)
        rows = sweep(images, args.stds, sigmas, args.t, args.seed)
    finally:
        torch.set_num_threads(threads)
    for path in write_outputs(rows, args.out):
        print(path)

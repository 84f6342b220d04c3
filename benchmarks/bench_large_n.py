"""Large-N DSE on real MNIST: the "slq" solver against exact float64 and float32, in one process.

MNIST training images, flattened (D = 784), pixels in [0, 1] scaled by 4, sigma 10, t 1.
Sections (each prints a markdown table; the README's "Large N" tables come from here):

1. For each N in --sizes: exact float64 (up to --f64-max), exact float32 and slq (default
   options, seed 0):
   seconds (kernel included), speed-up of slq over each exact, |error| of each against
   exact float64, slq's stderr and its products (columns multiplied by A).
2. --large N (default 50,000): slq alone in a fresh subprocess (so that its peak resident
   memory is its own), stored kernel; then the blocked, matrix-free path under a small
   --blocked-budget at --blocked-n points, against the stored path at the same N.
3. The paper-scale probe (N = 10,000, D = 512 by a fixed random projection of the images,
   10 classes; DSE + DSMI(Z; Y) + DSMI(Z; X) with X's clusters computed once beforehand,
   as the monitor does): exact float64 against "auto" and "slq" (and float32 variants).

    flock /tmp/dse_heavy.lock python benchmarks/bench_large_n.py
    python benchmarks/bench_large_n.py --sizes 4000 --large 0 --no-paper    # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import torch

from dse_callback import diffusion_spectral_entropy, diffusion_spectral_mutual_information, spectral_clusters

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def mnist_train(n: int, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n training images as (n, 784) float64 in [0, 4], and their labels."""
    import torchvision

    root = data_dir or tempfile.mkdtemp(prefix="bench_mnist_")
    if not (pathlib.Path(root) / "MNIST" / "raw").is_dir():
        subprocess.run(["bash", str(SHARED_MNIST / "unpack.sh"), root], check=True, capture_output=True)
    dataset = torchvision.datasets.MNIST(root, train=True, download=False)
    return dataset.data[:n].reshape(n, -1).double() / 255.0 * 4.0, dataset.targets[:n]


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def dse(z, **kwargs):
    return diffusion_spectral_entropy(z, sigma=10.0, max_samples=None, warn_saturation=False, return_details=True, **kwargs)


def bench_sizes(sizes, f64_max, data_dir):
    """Above `f64_max` exact float64 is skipped and errors are against exact float32 (which
    sits within 1e-6 bits of float64 at every N measured below it)."""
    print("\n| N | exact f64 s | exact f32 s | slq s | f64/slq | f32/slq | f32 error (bits) | slq error (bits) | slq stderr | products |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for n in sizes:
        z, _ = mnist_train(n, data_dir)
        f64_s, f64 = timed(lambda: dse(z, solver="exact", precision="float64")) if n <= f64_max else (math.nan, None)
        f32_s, f32 = timed(lambda: dse(z.float(), solver="exact", precision="float32"))
        slq_s, slq = timed(lambda: dse(z, solver="slq", seed=0))
        reference = f64 or f32
        print(
            f"| {n:,} | {f64_s:.1f} | {f32_s:.1f} | {slq_s:.2f} | {f64_s / slq_s:.1f}x | {f32_s / slq_s:.1f}x | "
            f"{abs(f32.value - f64.value) if f64 else math.nan:.1e} | {abs(slq.value - reference.value):.4f}"
            f"{'' if f64 else ' (vs f32)'} | {slq.stderr:.4f} | {slq.products} |",
            flush=True,
        )


def single_run(n: int, memory_budget: int | None, data_dir) -> None:
    """One slq estimate, printed as JSON with its seconds and peak resident memory."""
    load_s, (z, _) = timed(lambda: mnist_train(n, data_dir))
    seconds, estimate = timed(lambda: dse(z, solver="slq", seed=0, memory_budget=memory_budget))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({
        "n": n, "seconds": seconds, "value": estimate.value, "stderr": estimate.stderr, "storage": estimate.storage,
        "products": estimate.products, "peak_gib": peak / 2**30, "load_seconds": load_s,
    }))


def run_single(n: int, memory_budget: int | None, data_dir) -> dict:
    command = [sys.executable, __file__, "--single", str(n)] + (["--memory-budget", str(memory_budget)] if memory_budget else [])
    if data_dir:
        command += ["--data-dir", data_dir]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def bench_large(n: int, blocked_n: int, blocked_budget: int, data_dir) -> None:
    print("\n| run | N | storage | seconds (kernel included) | DSE (bits) | stderr | products | peak memory |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    runs = [("slq", n, None)] if n else []
    runs += [("slq, stored", blocked_n, None), (f"slq, budget {blocked_budget / 2**20:.0f} MiB", blocked_n, blocked_budget)]
    for name, size, budget in runs:
        result = run_single(size, budget, data_dir)
        print(
            f"| {name} | {size:,} | {result['storage']} | {result['seconds']:.1f} | {result['value']:.4f} | "
            f"{result['stderr']:.4f} | {result['products']} | {result['peak_gib']:.1f} GiB |",
            flush=True,
        )


def bench_paper_probe(data_dir) -> None:
    images, labels = mnist_train(10_000, data_dir)
    projection = torch.randn(784, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 512**0.5
    z = images @ projection
    x_clusters = spectral_clusters(images, 10)  # once, outside the timing, as the monitor caches it
    print(f"\nPaper-scale probe: N = 10,000, D = 512, 10 classes, sigma 10, torch threads {torch.get_num_threads()}")
    print("| solver | precision | DSE s | DSMI(Z;Y) s | DSMI(Z;X) s | total s | speed-up | DSE error | DSMI(Z;Y) error | DSMI(Z;X) error |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    baseline = None
    for solver, precision in (("exact", "float64"), ("auto", None), ("auto", "float32"), ("slq", None)):
        kwargs = dict(solver=solver, precision=precision)
        dse_s, value = timed(lambda: dse(z, **kwargs).value)
        y_s, mi_y = timed(lambda: diffusion_spectral_mutual_information(z, labels, max_samples=None, **kwargs))
        x_s, mi_x = timed(lambda: diffusion_spectral_mutual_information(z, x_clusters, max_samples=None, **kwargs))
        total = dse_s + y_s + x_s
        baseline = baseline or (total, value, mi_y, mi_x)
        print(
            f"| {solver} | {precision or 'default'} | {dse_s:.2f} | {y_s:.2f} | {x_s:.2f} | {total:.2f} | "
            f"{baseline[0] / total:.1f}x | {abs(value - baseline[1]):.4f} | {abs(mi_y - baseline[2]):.4f} | "
            f"{abs(mi_x - baseline[3]):.4f} |",
            flush=True,
        )
    bench_paper_floor(z, labels)


def bench_paper_floor(z: torch.Tensor, labels: torch.Tensor) -> None:
    """Where the paper-scale probe's seconds go, in float32: the parts any of our solvers must pay.

    The N x N kernel (one distance GEMM and an exp per pair) is built once per DSE; slq then
    multiplies it by `products` columns; each DSMI term solves K x (R + 1) matrices of N / K
    points, which "auto" keeps exact (batched eigvalsh, one batch per class).
    """
    from dse_callback.diffusion import affinity_of_points
    from dse_callback.sampling import random_subsets
    from dse_callback.spectrum import exact_eigenvalues

    z32 = z.float()
    kernel_s, (affinity, _) = timed(lambda: affinity_of_points(z32, 10.0, torch.float32))
    block = torch.randn(len(z32), 32, generator=torch.Generator().manual_seed(0))
    product_s, _ = timed(lambda: affinity @ block)
    estimate = dse(z, solver="slq", seed=0, precision="float32")
    del affinity
    eigen_s = 0.0
    for class_id in range(10):
        members = (labels == class_id).nonzero().reshape(1, -1)
        rows = torch.cat([members, random_subsets(len(labels), members.shape[1], 5, seed=0, sampler="torch")])
        matrices, _ = zip(*(affinity_of_points(z32[index], 10.0, torch.float32) for index in rows))
        stacked = torch.stack(matrices)
        seconds, _ = timed(lambda: exact_eigenvalues(stacked))
        eigen_s += seconds
    print("\nWhere its time goes (float32, one run):\n")
    print("| part | seconds |\n|---|---:|")
    print(f"| N x N kernel (distances + exp), once per DSE | {kernel_s:.2f} |")
    print(f"| slq products: {estimate.products} columns at {product_s / 32 * 1000:.2f} ms each | "
          f"{product_s / 32 * estimate.products:.2f} |")
    print(f"| slq DSE in all (kernel, products, bookkeeping) | {estimate.seconds:.2f} |")
    print(f"| one DSMI term's 60 exact eigensolves of about {len(labels) // 10:,} points (batched per class) | {eigen_s:.2f} |",
          flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[4000, 8000, 16000])
    parser.add_argument("--f64-max", type=int, default=8000, help="largest N for exact float64")
    parser.add_argument("--large", type=int, default=50_000, help="N of the large slq run (0: skip)")
    parser.add_argument("--blocked-n", type=int, default=8000)
    parser.add_argument("--blocked-budget", type=int, default=64 * 2**20, help="bytes for the blocked run")
    parser.add_argument("--no-paper", action="store_true", help="skip the paper-scale probe")
    parser.add_argument("--data-dir", default=None, help="a root holding MNIST/raw (default: unpack to a temp dir)")
    parser.add_argument("--single", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--memory-budget", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        single_run(args.single, args.memory_budget, args.data_dir)
        return
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench_mnist_")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, MNIST train x 4, sigma 10, t 1", flush=True)
    if args.sizes:
        bench_sizes(args.sizes, args.f64_max, data_dir)
    if args.large or args.blocked_n:
        bench_large(args.large, args.blocked_n, args.blocked_budget, data_dir)
    if not args.no_paper:
        bench_paper_probe(data_dir)


if __name__ == "__main__":
    main()

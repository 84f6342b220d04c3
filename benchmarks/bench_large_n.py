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
   as the monitor does): exact float64 against "auto" and "slq" (and float32 variants),
   then where its seconds go.
4. --subsets n ... (default 256 512 1024 2048): one DSMI class's R + 1 = 6 subsets of n of
   those points, batched eigvalsh (float64 and float32) against batched slq, kernels
   included; this sets `solvers.run.BATCHED_SLQ_MIN_N`.

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
from dse_callback.kernel.geometry.affinity import affinity_of_points, diffusion_affinity_
from dse_callback.kernel.geometry.distances import pairwise_squared_distances_
from dse_callback.kernel.reference.sampling import random_subsets
from dse_callback.kernel.solvers.batched import batched_slq_entropies
from dse_callback.kernel.solvers.exact import entropy_of_spectrum, exact_eigenvalues
from dse_callback.solvers import SLQOptions

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
    return diffusion_spectral_entropy(
        z, sigma=10.0, max_samples=None, warn_saturation=False, return_details=True, **kwargs
    )


def bench_sizes(sizes, f64_max, data_dir):
    """Above `f64_max` exact float64 is skipped and errors are against exact float32 (which
    sits within 1e-6 bits of float64 at every N measured below it)."""
    print(
        "\n| N | exact f64 s | exact f32 s | slq s | f64/slq | f32/slq | f32 error (bits) | slq error (bits) "
        "| slq stderr | products |"
    )
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
    print(
        json.dumps(
            {
                "n": n,
                "seconds": seconds,
                "value": estimate.value,
                "stderr": estimate.stderr,
                "storage": estimate.storage,
                "products": estimate.products,
                "peak_gib": peak / 2**30,
                "load_seconds": load_s,
            }
        )
    )


def run_single(n: int, memory_budget: int | None, data_dir) -> dict:
    command = [sys.executable, __file__, "--single", str(n)] + (
        ["--memory-budget", str(memory_budget)] if memory_budget else []
    )
    if data_dir:
        command += ["--data-dir", data_dir]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def bench_large(n: int, blocked_n: int, blocked_budget: int, data_dir) -> None:
    print("\n| run | N | storage | seconds (kernel included) | DSE (bits) | stderr | products | peak memory |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    runs = [("slq", n, None)] if n else []
    runs += [
        ("slq, stored", blocked_n, None),
        (f"slq, budget {blocked_budget / 2**20:.0f} MiB", blocked_n, blocked_budget),
    ]
    for name, size, budget in runs:
        result = run_single(size, budget, data_dir)
        print(
            f"| {name} | {size:,} | {result['storage']} | {result['seconds']:.1f} | {result['value']:.4f} | "
            f"{result['stderr']:.4f} | {result['products']} | {result['peak_gib']:.1f} GiB |",
            flush=True,
        )


def paper_probe_points(data_dir) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Z (10,000, 512): the MNIST images through a fixed random projection; labels; images."""
    images, labels = mnist_train(10_000, data_dir)
    projection = torch.randn(784, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 512**0.5
    return images @ projection, labels, images


def bench_paper_probe(data_dir) -> None:
    z, labels, images = paper_probe_points(data_dir)
    x_clusters = spectral_clusters(images, 10)  # once, outside the timing, as the monitor caches it
    print(f"\nPaper-scale probe: N = 10,000, D = 512, 10 classes, sigma 10, torch threads {torch.get_num_threads()}")
    print(
        "| solver | precision | DSE s | DSMI(Z;Y) s | DSMI(Z;X) s | total s | speed-up | DSE error "
        "| DSMI(Z;Y) error | DSMI(Z;X) error |"
    )
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


def exact_subset_entropies(points: torch.Tensor) -> torch.Tensor:
    """What DSMI's exact path does for one class: a batched GEMM, then a batched eigvalsh."""
    return entropy_of_spectrum(exact_eigenvalues(diffusion_affinity_(pairwise_squared_distances_(points), 10.0)), 1.0)


def class_subsets(z: torch.Tensor, labels: torch.Tensor, class_id: int) -> torch.Tensor:
    """The class's members and 5 random subsets of their size, as DSMI draws them: (6, n, D)."""
    members = (labels == class_id).nonzero().reshape(1, -1)
    return z[torch.cat([members, random_subsets(len(labels), members.shape[1], 5, seed=0, sampler="torch")])]


def bench_paper_floor(z: torch.Tensor, labels: torch.Tensor) -> None:
    """Where the paper-scale probe's seconds go, in float32.

    The N x N kernel (one distance GEMM and an exp per pair) is built once per DSE; slq then
    makes one pass over it per Lanczos step and per Krylov block (memory-bound on a CPU).
    Each DSMI term solves K x (R + 1) subsets of N / K points: batched slq in "auto" above
    EXACT_MAX_N, against the batched eigvalsh "auto" used before.
    """
    z32 = z.float()
    kernel_s, affinity = timed(lambda: affinity_of_points(z32, 10.0, torch.float32))
    block = torch.randn(len(z32), 16, generator=torch.Generator().manual_seed(0))
    pass_s, _ = timed(lambda: affinity @ block)
    affinity = None  # free the N x N kernel before the DSE builds its own
    options = SLQOptions()
    passes = options.lanczos_steps + options.depth + 1
    estimate = dse(z, solver="slq", seed=0, precision="float32")
    eigen_s = sum(timed(lambda: exact_subset_entropies(class_subsets(z32, labels, c)))[0] for c in range(10))
    batched_s, _ = timed(lambda: diffusion_spectral_mutual_information(z, labels, max_samples=None, solver="slq"))
    print("\nWhere its time goes (float32, one run):\n")
    print("| part | seconds |\n|---|---:|")
    print(f"| N x N kernel (distances + exp), once per DSE | {kernel_s:.2f} |")
    print(f"| slq passes over the kernel: {passes} at {pass_s * 1000:.0f} ms each | {pass_s * passes:.2f} |")
    print(f"| slq DSE in all (kernel, passes, bookkeeping) | {estimate.seconds:.2f} |")
    print(
        f"| one DSMI term, 60 subsets of about {len(labels) // 10:,} points: batched float32 eigvalsh "
        f"(kernels included) | {eigen_s:.2f} |"
    )
    print(f"| the same term with batched slq, in all | {batched_s:.2f} |", flush=True)


def bench_subsets(sizes, data_dir) -> None:
    z, _, _ = paper_probe_points(data_dir)
    print(
        "\nDSMI subsets: 6 subsets of n paper-scale points at once, kernels included, slq error against exact float64"
    )
    print(
        "| n | exact f64 s | exact f32 s | batched slq s | f64/slq | f32/slq | max slq error (bits) | max slq stderr |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for n in sizes:
        points = z[random_subsets(len(z), n, 6, seed=0, sampler="torch")]
        f64_s, exact = timed(lambda: exact_subset_entropies(points))
        f32_s, _ = timed(lambda: exact_subset_entropies(points.float()))
        slq_s, (values, variances) = timed(
            lambda: batched_slq_entropies(
                points, 10.0, 1.0, torch.float32, torch.Generator().manual_seed(0), SLQOptions()
            )
        )
        print(
            f"| {n:,} | {f64_s:.3f} | {f32_s:.3f} | {slq_s:.3f} | {f64_s / slq_s:.1f}x | {f32_s / slq_s:.1f}x | "
            f"{float((values - exact).abs().max()):.4f} | {float(variances.sqrt().max()):.4f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[4000, 8000, 16000])
    parser.add_argument("--f64-max", type=int, default=8000, help="largest N for exact float64")
    parser.add_argument("--large", type=int, default=50_000, help="N of the large slq run (0: skip)")
    parser.add_argument("--blocked-n", type=int, default=8000)
    parser.add_argument("--blocked-budget", type=int, default=64 * 2**20, help="bytes for the blocked run")
    parser.add_argument("--no-paper", action="store_true", help="skip the paper-scale probe")
    parser.add_argument("--subsets", type=int, nargs="*", default=[256, 512, 1024, 2048], help="DSMI subset sizes")
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
    if args.subsets:
        bench_subsets(args.subsets, data_dir)


if __name__ == "__main__":
    main()

"""Cost and accuracy of the float32 distances' cancellation guard (issue 16, item 5).

Cost. The formula before the fix (centre, one GEMM, |a|^2 + |b|^2 - 2 a.b, clamp; written
out below) against `pairwise_squared_distances_` (the dense N x N matrix of the exact solver
and DSMI's subsets) and `squared_distances_from_rows` (row chunks of 2^25 elements, as the
slq operator builds them), at N = 4,000 and 10,000, D = 512, float32 and float64. Three data
sets: Gaussian noise (nothing recomputed: the price of the screen), ReLU features of a
random two-layer network on a 4-dimensional latent (a dense sample of a low-dimensional
manifold: a few entries in some rows), 50-point clusters with centres ~ N(0, 1000^2) (49
entries in every row, recomputed one by one), and two tight halves at +-1000 (every row
recomputed whole in float64). Ratios are
new / old, in CPU seconds of this process (best of --repeats after a warm-up, old and new
alternating, in one run; CPU time because other processes' load stretches wall time).

Accuracy. DSE (bits) of tight clusters far from their mean, sigma 10: 100 clusters of 50
points in 32 dimensions against exact float64, 300 clusters (N = 15,000, slq float32)
against the closed form log2 300; with --large also 1,000 clusters at
N = 50,000 (slq float32 only, against the closed form log2 1000; several minutes, skipped
with a note when the machine is busy or short of memory). "before" runs the module with the
recompute switched off, which is the formula before the fix.

    python benchmarks/bench_distances.py                  # the tables in the report
    python benchmarks/bench_distances.py --sizes 4000 --repeats 1 --skip-accuracy --threads 1
    python benchmarks/bench_distances.py --large          # adds N = 50,000
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
import warnings

import torch

import dse_callback.kernel.geometry.distances as distances
from dse_callback import diffusion_spectral_entropy
from dse_callback.kernel.geometry.affinity import available_memory_bytes


def formula_before_the_fix(z: torch.Tensor) -> torch.Tensor:
    centered, squared_norms = distances.centered_with_squared_norms(z)
    with distances.full_precision_matmul():
        d2 = torch.matmul(centered, centered.transpose(-1, -2))
    d2.mul_(-2.0)
    d2.add_(squared_norms.unsqueeze(-1)).add_(squared_norms.unsqueeze(-2))
    d2.clamp_(min=0.0)
    d2.diagonal(dim1=-2, dim2=-1).zero_()
    return d2


def rows_before_the_fix(centered: torch.Tensor, squared_norms: torch.Tensor, rows: slice) -> torch.Tensor:
    with distances.full_precision_matmul():
        block = torch.addmm(squared_norms[None, :], centered[rows], centered.T, alpha=-2.0)
    return block.add_(squared_norms[rows, None]).clamp_(min=0.0)


def all_row_chunks(row_function, z: torch.Tensor) -> None:
    """Every row of the N x N distances, in the slq operator's chunks of 2^25 elements."""
    centered, squared_norms = distances.centered_with_squared_norms(z)
    n = len(z)
    chunk = max(1, 2**25 // n)
    for start in range(0, n, chunk):
        row_function(centered, squared_norms, slice(start, start + chunk))


def datasets(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 4, generator=generator)
    hidden = torch.relu(latent @ torch.randn(4, 256, generator=generator))
    centres = torch.randn(n // 50, 512, generator=generator) * 1e3
    halves = torch.cat([torch.full((n // 2, 512), 1e3), torch.full((n - n // 2, 512), -1e3)])
    return {
        "gaussian": torch.randn(n, 512, generator=generator),
        "relu, 4-d": torch.relu(hidden @ torch.randn(256, 512, generator=generator) / 16),
        "far clusters": centres.repeat_interleave(50, dim=0) + 0.03 * torch.randn(n, 512, generator=generator),
        "two halves": halves + 0.03 * torch.randn(n, 512, generator=generator),
    }


def recomputed(z: torch.Tensor) -> str:
    """Share of float32 entries recomputed one by one, and of rows recomputed whole in float64, from 2,000 rows."""
    counts = {"entries": 0, "rows": 0}
    entries, rows = distances._recompute_entries_, distances._recompute_rows_float64_

    def count_entries(block, centered, row_index, positions, columns):
        counts["entries"] += len(positions)
        entries(block, centered, row_index, positions, columns)

    def count_rows(block, centered, row_index, positions):
        counts["rows"] += len(positions)
        rows(block, centered, row_index, positions)

    distances._recompute_entries_, distances._recompute_rows_float64_ = count_entries, count_rows
    try:
        block = distances.squared_distances_from_rows(*distances.centered_with_squared_norms(z.float()), slice(0, 2000))
    finally:
        distances._recompute_entries_, distances._recompute_rows_float64_ = entries, rows
    return f"{counts['entries'] / block.numel():.2%} / {counts['rows'] / len(block):.0%}"


def best_seconds(old, new, repeats: int) -> tuple[float, float]:
    """Best CPU seconds of `old` and of `new` (this process's, all threads), one warm-up call each, alternating.

    CPU time rather than wall time: on a shared machine another process's load stretches the
    wall clock of both sides unevenly, while the work a call does stays the same.
    """
    best = [math.inf, math.inf]
    for attempt in range(repeats + 1):
        for which, function in enumerate((old, new)):
            start = time.process_time()
            function()
            if attempt:
                best[which] = min(best[which], time.process_time() - start)
    return best[0], best[1]


def bench_cost(sizes, repeats: int) -> None:
    threads, load = torch.get_num_threads(), os.getloadavg()[0]
    print(f"\nCost, D=512, best CPU seconds of {repeats}, torch threads={threads}, load {load:.1f}")
    print(
        f"| {'N':>6} | {'data':13} | {'dtype':7} | entries / rows recomputed | dense old s | dense new / old | "
        "rows old s | rows new / old |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        for name, points in datasets(n).items():
            share = recomputed(points)
            for dtype in (torch.float32, torch.float64):
                z = points.to(dtype)
                dense_old, dense_new = best_seconds(
                    lambda z=z: formula_before_the_fix(z), lambda z=z: distances.pairwise_squared_distances_(z), repeats
                )
                rows_old, rows_new = best_seconds(
                    lambda z=z: all_row_chunks(rows_before_the_fix, z),
                    lambda z=z: all_row_chunks(distances.squared_distances_from_rows, z),
                    repeats,
                )
                shown = share if dtype == torch.float32 else "none"
                print(
                    f"| {n:>6} | {name:13} | {str(dtype)[6:]:7} | {shown:>25} | {dense_old:11.2f} | "
                    f"{dense_new / dense_old:15.2f} | {rows_old:10.2f} | {rows_new / rows_old:14.2f} |",
                    flush=True,
                )


@contextlib.contextmanager
def formula_alone(enabled: bool):
    """Switch the recompute off (the formula before the fix) while `enabled`."""
    original = distances._compensate_cancellation_
    if enabled:
        distances._compensate_cancellation_ = lambda *args: None
    try:
        yield
    finally:
        distances._compensate_cancellation_ = original


def tight_far_clusters(clusters: int, per_cluster: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, 32, generator=generator, dtype=torch.float64) * 1e3
    noise = 0.01 * torch.randn(clusters * per_cluster, 32, generator=generator, dtype=torch.float64)
    return centres.repeat_interleave(per_cluster, dim=0) + noise


def dse_row(label: str, points: torch.Tensor, reference: float, before: bool, **kwargs) -> None:
    with formula_alone(before), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.process_time()
        estimate = diffusion_spectral_entropy(points, sigma=10.0, return_details=True, max_samples=None, **kwargs)
        seconds = time.process_time() - start
    error = estimate.value - reference
    print(
        f"| {label:34} | {estimate.value:8.4f} | {estimate.stderr:6.4f} | {error:+8.4f} | {seconds:7.1f} |", flush=True
    )


def bench_accuracy(large: bool) -> None:
    print("\nAccuracy: tight clusters (spread 0.01), centres ~ N(0, 1000^2), 32 dims, sigma 10")
    print(f"| {'case':34} | {'DSE':>8} | {'stderr':>6} | {'error':>8} | {'CPU s':>7} |")
    print("|---|---:|---:|---:|---:|")
    points = tight_far_clusters(100, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = diffusion_spectral_entropy(points, sigma=10.0, precision="float64", solver="exact")
    print(f"| {'100 x 50: exact float64 (reference)':34} | {reference:8.4f} | {0:6.4f} | {0:+8.4f} | {'':>7} |")
    print(f"| {'  closed form log2 100':34} | {math.log2(100):8.4f} |        |          |         |")
    for solver in ("exact", "slq"):
        for before in (True, False):
            label = f"100 x 50: {solver} float32, {'before' if before else 'now'}"
            dse_row(label, points, reference, before, precision="float32", solver=solver)
    dse_row("100 x 50: slq float64", points, reference, False, precision="float64", solver="slq")
    points = tight_far_clusters(300, 50).float()
    for before in (True, False):
        label = f"300 x 50: slq float32, {'before' if before else 'now'}"
        dse_row(label, points, math.log2(300), before, precision="float32", solver="slq")
    print("(300 x 50 = 15,000 points: errors against log2 300 = 8.2288; the spread adds about 1e-3)")
    if not large:
        print("N = 50,000 (1,000 clusters): run with --large (several minutes).")
        return
    n = 50_000
    needed = 3 * n * n * 4 // 2  # a float32 kernel stored (10 GB), and room for the rest of the machine
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 2 * cores or available_memory_bytes(torch.device("cpu")) < needed:
        print(f"N = 50,000 skipped: load {load:.1f} on {cores} cores, or less than {needed / 2**30:.0f} GiB free.")
        return
    points = tight_far_clusters(1000, 50).float()
    for before in (True, False):
        label = f"1000 x 50: slq float32, {'before' if before else 'now'}"
        dse_row(label, points, math.log2(1000), before, precision="float32", solver="slq")
    print("(errors against log2 1000 = 9.9658; the spread adds about 1e-3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--large", action="store_true", help="also 1,000 clusters at N = 50,000 (slq float32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.skip_cost:
        bench_cost(args.sizes, args.repeats)
    if not args.skip_accuracy:
        bench_accuracy(args.large)


if __name__ == "__main__":
    main()

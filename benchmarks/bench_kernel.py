"""Speed and accuracy of the kernel against the `dse-dsmi` reference, in one process.

For each N (D=256 uniform noise, sigma 10, t 1) it prints the reference's seconds, ours in
float64 and float32, the speed-up ratios, the absolute DSE differences, and the bare
`torch.linalg.eigvalsh` time on the same diffusion matrix (our total over that is the
overhead of everything but the eigensolver). Then DSMI with 10 balanced classes.

    python benchmarks/bench_kernel.py                      # the CPU table in the README
    python benchmarks/bench_kernel.py --device cuda --sizes 1000 2000 4000 8000 10000 20000 --no-reference

Timings are wall-clock medians of --repeats runs (default: 3 up to N=5000, where first-touch
page faults of a fresh N x N buffer would otherwise dominate, and 1 above), after one
warm-up; on CUDA the device is synchronized around each timed call.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from dse_callback import diffusion_operator, diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dse_callback.kernel.solvers.exact import entropy_of_spectrum, exact_eigenvalues


def timed(function, device: torch.device, repeats: int):
    """Median seconds of `repeats` calls, and the last result."""
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def bench_dse(sizes, device, repeats, with_reference):
    print(f"\nDSE, D=256 uniform noise, sigma=10, t=1, device={device}, torch threads={torch.get_num_threads()}")
    header = (
        f"{'N':>6} {'ref s':>8} {'f64 s':>8} {'f32 s':>8} {'ref/f64':>8} {'ref/f32':>8} "
        f"{'|d f64|':>9} {'|d f32|':>9} {'eig64 s':>8} {'f64/eig':>8} {'eig32 s':>8} {'f32/eig':>8}"
    )
    print(header)
    for n in sizes:
        repeats_here = repeats or (3 if n <= 5000 else 1)
        data = np.random.default_rng(n).uniform(0.0, 1.0, size=(n, 256))
        points = torch.as_tensor(data, device=device)
        reference_seconds, reference_value = float("nan"), float("nan")
        if with_reference:
            import dse_dsmi

            reference_seconds, reference_value = timed(
                lambda: dse_dsmi.diffusion_spectral_entropy(data), torch.device("cpu"), repeats_here
            )
        f64_seconds, f64_value = timed(
            lambda: diffusion_spectral_entropy(points, precision="float64", solver="exact", warn_saturation=False),
            device,
            repeats_here,
        )
        f32_seconds, f32_value = timed(
            lambda: diffusion_spectral_entropy(
                points.float(), precision="float32", solver="exact", warn_saturation=False
            ),
            device,
            repeats_here,
        )
        matrices = {"float64": diffusion_operator(points, precision="float64")}
        eig64_seconds, eigenvalues = timed(lambda: torch.linalg.eigvalsh(matrices["float64"]), device, repeats_here)
        matrices = {"float32": diffusion_operator(points.float(), precision="float32")}  # the float64 one freed
        eig32_seconds, _ = timed(lambda: torch.linalg.eigvalsh(matrices["float32"]), device, repeats_here)
        matrices.clear()
        if not with_reference:  # accuracy against our own float64 then
            reference_value = float(entropy_of_spectrum(eigenvalues))
        print(
            f"{n:>6} {reference_seconds:>8.2f} {f64_seconds:>8.3f} {f32_seconds:>8.3f} "
            f"{reference_seconds / f64_seconds:>8.2f} {reference_seconds / f32_seconds:>8.2f} "
            f"{abs(f64_value - reference_value):>9.1e} {abs(f32_value - reference_value):>9.1e} "
            f"{eig64_seconds:>8.3f} {f64_seconds / eig64_seconds:>8.2f} "
            f"{eig32_seconds:>8.3f} {f32_seconds / eig32_seconds:>8.2f}",
            flush=True,
        )


def bench_dsmi(n, device, repeats, with_reference, compare_batching):
    repeats = repeats or 3
    print(f"\nDSMI, N={n}, D=256, 10 balanced classes, 5 repetitions, sampler=python_random, device={device}")
    data = np.random.default_rng(1).uniform(0.0, 1.0, size=(n, 256))
    labels = np.repeat(np.arange(10), n // 10)[:n]
    points = torch.as_tensor(data, device=device)
    label_tensor = torch.as_tensor(labels, device=device)
    reference_seconds, reference_value = float("nan"), float("nan")
    if with_reference:
        import dse_dsmi

        reference_seconds, (reference_value, _) = timed(
            lambda: dse_dsmi.diffusion_spectral_mutual_information(data, labels.reshape(-1, 1)),
            torch.device("cpu"),
            repeats,
        )
        print(f"reference: {reference_seconds:.2f} s")
    for precision in ("float64", "float32"):
        source = points if precision == "float64" else points.float()
        seconds, value = timed(
            lambda: diffusion_spectral_mutual_information(
                source, label_tensor, sampler="python_random", precision=precision, solver="exact"
            ),
            device,
            repeats,
        )
        print(
            f"ours {precision}: {seconds:.3f} s, reference/ours {reference_seconds / seconds:.2f}, "
            f"|difference| {abs(value - reference_value):.1e}"
        )
    if compare_batching:
        size = n // 10
        blocks = diffusion_operator(points[: 6 * size].float(), precision="float32")
        batch = torch.stack([blocks[i * size : (i + 1) * size, i * size : (i + 1) * size] for i in range(6)])
        batched, _ = timed(lambda: exact_eigenvalues(batch), device, repeats)
        looped, _ = timed(lambda: [exact_eigenvalues(matrix) for matrix in batch], device, repeats)
        print(f"6 x {size}^2 float32 eigensolves: batched {batched:.4f} s, looped {looped:.4f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--dsmi-n", type=int, default=5000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per cell (median)")
    parser.add_argument("--no-reference", action="store_true", help="skip dse-dsmi (slow at large N)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    # Warm-up: library loading and thread pools stay out of the first timed call.
    diffusion_spectral_entropy(torch.rand(256, 8, device=device), warn_saturation=False)
    bench_dse(args.sizes, device, args.repeats, not args.no_reference)
    bench_dsmi(args.dsmi_n, device, args.repeats, not args.no_reference, device.type == "cuda")


if __name__ == "__main__":
    main()

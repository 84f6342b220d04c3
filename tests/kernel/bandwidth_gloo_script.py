"""Two gloo processes resolving scale-free bandwidths with distributed=True; rank 0 writes the results.

Run by tests/kernel/test_bandwidth_distributed.py as `python tests/kernel/bandwidth_gloo_script.py OUT_JSON N`.
Each rank passes its own rows of the same Z (rank 0 takes 3 more rows than rank 1). Every
rank records the kNN rows it computed, the resolved bandwidth, DSE and DSMI under each preset.
"""

import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dse_callback.kernel.entropy import diffusion_spectral_entropy
from dse_callback.kernel.geometry import bandwidth
from dse_callback.kernel.mutual_info import diffusion_spectral_mutual_information
from dse_callback.kernel.request import entropy_request

PRESETS = ("median", "rms", "knn")


def points(n: int):
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 10.0, size=(4, 16))
    labels = np.arange(n) % 4
    spreads = np.array([0.5, 1.0, 2.0, 4.0])[labels, None]
    return centres[labels] + rng.normal(0.0, 1.0, size=(n, 16)) * spreads, labels


def resolved(z, sigma, distributed: bool) -> list:
    request = entropy_request(
        z,
        sigma,
        1,
        max_samples=None,
        seed=5,
        sampler="torch",
        precision=None,
        solver="slq",
        distributed=distributed,
        memory_budget=None,
        solver_options=None,
    )
    local = request.bandwidth.local
    return [request.bandwidth.value, None if local is None else local.tolist()]


def measure(z, labels, sigma, distributed: bool) -> dict:
    return {
        "bandwidth": resolved(z, sigma, distributed),
        "dse": diffusion_spectral_entropy(z, sigma=sigma, solver="slq", seed=5, distributed=distributed),
        "dsmi": diffusion_spectral_mutual_information(
            z, labels, sigma=sigma, solver="slq", seed=5, n_repetitions=2, distributed=distributed
        ),
    }


def worker(rank: int, world: int, port: int, out: str, n: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    z, labels = points(n)
    split = n // 2 + 3
    rows = slice(0, split) if rank == 0 else slice(split, n)
    computed = []  # the rows whose kNN scales this rank computed
    knn_distances = bandwidth.knn_distances

    def recording(points, k, rows=None):
        computed.append([rows.start, rows.stop] if rows is not None else [0, len(points)])
        return knn_distances(points, k, rows)

    bandwidth.knn_distances = recording
    results = {sigma: measure(z[rows], labels[rows], sigma, distributed=True) for sigma in PRESETS}
    results["knn_rows"] = computed
    gathered = [None] * world
    dist.all_gather_object(gathered, results)
    dist.destroy_process_group()
    if rank == 0:  # the single-process values, same seed and thread count
        bandwidth.knn_distances = knn_distances
        single = {sigma: measure(z, labels, sigma, distributed=False) for sigma in PRESETS}
        with open(out, "w") as stream:
            json.dump({"ranks": gathered, "single": single, "split": split}, stream)


if __name__ == "__main__":
    out_path, size = sys.argv[1], int(sys.argv[2])
    port = 29500 + (os.getpid() + 337) % 1000
    mp.spawn(worker, args=(2, port, out_path, size), nprocs=2, join=True)

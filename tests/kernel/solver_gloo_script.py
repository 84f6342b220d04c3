"""Two gloo processes measuring DSE and DSMI with distributed=True; rank 0 writes the results.

Run by tests/kernel/test_solver_distributed.py as `python tests/kernel/solver_gloo_script.py OUT_JSON N`.
Each rank passes its own rows of the same Z (rank 0 takes 3 more rows than rank 1, so the
blocks are uneven); a second round gives rank 1 one more column to show the D check. Then
`process_group` runs the solve on a group of its own, and on a 2-second-timeout group that
rank 1 never joins (rank 0 must raise, not wait).
"""

import json
import os
import sys
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dse_callback.kernel.entropy import diffusion_spectral_entropy
from dse_callback.kernel.mutual_info import diffusion_spectral_mutual_information
from dse_callback.kernel.solvers.layout import process_group


def points(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 10.0, size=(4, 16))
    labels = np.arange(n) % 4
    return centres[labels] + rng.normal(0.0, 3.0, size=(n, 16)), labels


def worker(rank: int, world: int, port: int, out: str, n: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    z, labels = points(n)
    split = n // 2 + 3
    rows = slice(0, split) if rank == 0 else slice(split, n)
    results = {}
    for t in (1, 3):
        estimate = diffusion_spectral_entropy(
            z[rows], t=t, solver="slq", seed=5, distributed=True, return_details=True, warn_saturation=False
        )
        results[f"dse_t{t}"] = [estimate.value, estimate.stderr, estimate.solver]
    results["dse_blocked"] = diffusion_spectral_entropy(
        z[rows], solver="slq", seed=5, distributed=True, memory_budget=2**16, warn_saturation=False
    )
    # Only rank 0's budget is too small to store its rows: both ranks must then go blocked.
    mixed = diffusion_spectral_entropy(
        z[rows],
        solver="slq",
        seed=5,
        distributed=True,
        memory_budget=2**16 if rank == 0 else None,
        warn_saturation=False,
        return_details=True,
    )
    results["dse_mixed_budget"] = [mixed.value, mixed.storage]
    results["dsmi"] = diffusion_spectral_mutual_information(
        z[rows], labels[rows], solver="slq", seed=5, distributed=True, n_repetitions=2
    )
    wide = np.concatenate([z[rows], np.zeros((len(z[rows]), rank))], axis=1)
    try:
        diffusion_spectral_entropy(wide, solver="slq", distributed=True)
        results["d_mismatch"] = "no error"
    except ValueError as error:
        results["d_mismatch"] = str(error)
    # The same solve on a group of its own: the same value.
    with process_group(dist.new_group(backend="gloo")):
        results["dse_group"] = diffusion_spectral_entropy(z[rows], solver="slq", seed=5, distributed=True)
    # A group with a 2 s timeout that rank 1 never joins: rank 0's solve raises within it
    # (on the default group it would wait 30 minutes).
    short = dist.new_group(backend="gloo", timeout=timedelta(seconds=2))
    if rank == 0:
        start = time.perf_counter()
        try:
            with process_group(short):
                diffusion_spectral_entropy(z[rows], solver="slq", distributed=True)
            abandoned = "no error"
        except RuntimeError as error:
            abandoned = [str(error), time.perf_counter() - start]
    gathered = [None] * world
    dist.all_gather_object(gathered, results)
    dist.destroy_process_group()
    if rank == 0:  # the single-process values, same seed and thread count
        single = {
            f"dse_t{t}": diffusion_spectral_entropy(z, t=t, solver="slq", seed=5, warn_saturation=False) for t in (1, 3)
        }
        single["dsmi"] = diffusion_spectral_mutual_information(z, labels, solver="slq", seed=5, n_repetitions=2)
        with open(out, "w") as stream:
            json.dump({"ranks": gathered, "single": single, "abandoned": abandoned}, stream)


if __name__ == "__main__":
    out_path, size = sys.argv[1], int(sys.argv[2])
    port = 29500 + os.getpid() % 1000
    mp.spawn(worker, args=(2, port, out_path, size), nprocs=2, join=True)

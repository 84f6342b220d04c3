import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dse_callback.distributed.sharding import torch_all_gather
from dse_callback.measure.measurer import Measurer
from dse_callback.measure.settings import MeasureSettings
from dse_callback.measure.shared import measure_shared

WORLD = 2
METRICS = ("dse", "dsmi_y", "cse", "rankme")


def inputs():
    generator = torch.Generator().manual_seed(3)
    labels = torch.arange(90) % 3
    z = torch.randn(90, 6, generator=generator, dtype=torch.float64) * 4 + labels[:, None] * 6.0
    return {"a": z, "b": z[:, :3] * 2}, labels


def _worker(rank, rendezvous, results):
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    try:
        representations, labels = inputs()
        measurer = Measurer(MeasureSettings(metrics=METRICS, sigma="knn"), profiles=True)
        measured = measure_shared(measurer, representations, labels, None, None, rank, WORLD, torch_all_gather())
        assert measured.profiles == {}  # the ranks' subsets of the work leave the profiles out
        measurer.complete(measured, representations, primary=rank == 0)  # the tracker's step: scales, profiles
        saved = {
            "values": measured.values,
            "sigma": measured.sigma,
            "scale": measured.scale,
            "profiles": measured.profiles,
            "spectra": measured.spectra,
            "details": measured.details,
        }
        torch.save(saved, f"{results}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_split_the_metric_work_and_both_get_the_one_process_values(tmp_path):
    # spawn, not fork: a child forked after this process ran OpenMP kernels can deadlock in them
    mp.start_processes(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, start_method="spawn")
    representations, labels = inputs()
    single = Measurer(MeasureSettings(metrics=METRICS, sigma="knn"), profiles=True).measure(
        representations, labels, None
    )
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert result["values"] == single.values and result["sigma"] == single.sigma
        assert result["scale"] == single.scale and all(math.isfinite(scale) for scale in single.scale.values())
        # The profiles are drawn by the primary process only, which computes them once.
        assert result["profiles"] == (single.profiles if rank == 0 else {}) and set(single.profiles) == {"a", "b"}
        assert result["details"] == single.details and single.details["a"]["dse_solver"] == "exact"
        assert set(result["spectra"]) == {"a", "b"}
        for name, spectrum in single.spectra.items():
            assert (result["spectra"][name] == spectrum).all()


def test_one_process_is_the_plain_measurement():
    representations, labels = inputs()
    shared = measure_shared(Measurer(MeasureSettings(metrics=METRICS)), representations, labels, None, None, 0, 1, None)
    assert shared.values == Measurer(MeasureSettings(metrics=METRICS)).measure(representations, labels, None).values


def _sharded_worker(rank, rendezvous, results, sigma):
    import dse_callback.kernel.solvers.batched as batched
    import dse_callback.kernel.solvers.run as run

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    built_rows, built_batches = [], []
    original, original_batched = run.DiffusionOperator, batched.BatchedDiffusionOperator

    def counting_operator(points, bandwidth, dtype, layout, *args, **kwargs):
        built_rows.append(layout.hi - layout.lo)
        return original(points, bandwidth, dtype, layout, *args, **kwargs)

    def counting_batch(points, *args, **kwargs):
        built_batches.append(tuple(points.shape[:2]))
        return original_batched(points, *args, **kwargs)

    run.DiffusionOperator, batched.BatchedDiffusionOperator = counting_operator, counting_batch
    try:
        representations, labels = sharded_inputs()
        measured = measure_shared(
            Measurer(MeasureSettings(metrics=METRICS, solver="slq", sigma=sigma)),
            representations,
            labels,
            None,
            None,
            rank,
            WORLD,
            torch_all_gather(),
        )
        torch.save(
            {
                "values": measured.values,
                "sigma": measured.sigma,
                "details": measured.details,
                "rows": built_rows,
                "batches": built_batches,
            },
            f"{results}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def sharded_inputs():
    generator = torch.Generator().manual_seed(5)
    labels = torch.arange(301) % 3
    return {"a": torch.randn(301, 8, generator=generator, dtype=torch.float64) * 3 + labels[:, None] * 5.0}, labels


@pytest.mark.parametrize("sigma", [10.0, "knn"])
def test_an_slq_dse_runs_on_every_rank_each_building_its_own_kernel_rows(tmp_path, sigma):
    mp.start_processes(
        _sharded_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path), sigma), nprocs=WORLD, start_method="spawn"
    )
    representations, labels = sharded_inputs()
    single = Measurer(MeasureSettings(metrics=METRICS, solver="slq", sigma=sigma)).measure(
        representations, labels, None
    )
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]
    # N = 301 over 2 ranks: the DSE kernel is split 151 + 150 rows; DSMI's 3 classes of
    # (5 + 1) subsets of about 100 points are built whole, one batch per class, by the one
    # rank that owns DSMI.
    assert [result["rows"] for result in results] == [[151], [150]]
    batches = [shape for result in results for shape in result["batches"]]
    assert sorted(batches) == [(6, 100), (6, 100), (6, 101)]
    assert sum(len(result["batches"]) > 0 for result in results) == 1
    for result in results:
        assert result["details"]["a"]["dse_solver"] == "slq" and result["values"] == results[0]["values"]
        assert result["sigma"] == single.sigma  # every rank resolved the same bandwidth on the full Z
        assert abs(result["values"]["a"]["dse"] - single.values["a"]["dse"]) < 1e-5
        for metric in ("dsmi_y", "cse", "rankme"):
            assert result["values"]["a"][metric] == single.values["a"][metric]

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dse_callback.measurement import Measurer
from dse_callback.shared_measurement import measure_shared
from dse_callback.sharding import torch_all_gather

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
        measured = measure_shared(Measurer(METRICS), representations, labels, None, None, rank, WORLD, torch_all_gather())
        saved = {"values": measured.values, "sigma": measured.sigma, "spectra": measured.spectra, "details": measured.details}
        torch.save(saved, f"{results}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_split_the_metric_work_and_both_get_the_one_process_values(tmp_path):
    # spawn, not fork: a child forked after this process ran OpenMP kernels can deadlock in them
    mp.start_processes(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, start_method="spawn")
    representations, labels = inputs()
    single = Measurer(METRICS).measure(representations, labels, None)
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert result["values"] == single.values and result["sigma"] == single.sigma
        assert result["details"] == single.details and single.details["a"]["dse_solver"] == "exact"
        assert set(result["spectra"]) == {"a", "b"}
        for name, spectrum in single.spectra.items():
            assert (result["spectra"][name] == spectrum).all()


def test_one_process_is_the_plain_measurement():
    representations, labels = inputs()
    shared = measure_shared(Measurer(METRICS), representations, labels, None, None, 0, 1, None)
    assert shared.values == Measurer(METRICS).measure(representations, labels, None).values

"""Bounded waits under DDP: a rank that fails mid-probe sends every rank to NaN with one warning.

Two gloo processes run one `DSETracker` each (the default group keeps torch's 30-minute
timeout, so a wait that is not bounded by the probe's own groups would outlast the test's
deadline). Probes, in order, on the same weights:

0. normal (the sharded slq DSE, DSMI(Z; Y), DSMI(Z; X));
1. rank 1's sharded solve runs out of memory after a few products: rank 0 times out;
2. normal again, on the renewed group: the values of probe 0, to the bit;
3. rank 1's forward pass raises: no timeout needed (the first agreement tells rank 0);
4. rank 1 fails before gathering its rows: rank 0 times out in the gather;
5. normal again.
Then the default group still all-reduces (training's collectives are untouched).
"""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dse_callback import DSETracker, Runtime
from dse_callback.measure.measurer import DSEMonitorWarning

WORLD = 2
TIMEOUT = 5.0  # the probe's collective_timeout, seconds
DEADLINE = 150.0  # the whole test: far below torch's 30-minute default, far above 2 timeouts


def probe_data(n: int = 90):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    x = torch.randn(n, 6, generator=generator) + labels[:, None] * 2.0
    return x, labels


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


class Forward:
    """`forward=`: the plain call, or an error while `failing` is set."""

    def __init__(self):
        self.failing = False

    def __call__(self, module, inputs):
        if self.failing:
            raise RuntimeError("injected forward failure")
        return module(inputs)


def _fail_on_call(owner, name, call: int, error: Exception):
    """Patch `owner.name` to raise `error` from its `call`-th call on; returns the undo."""
    original, calls = getattr(owner, name), [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] >= call:
            raise error
        return original(*args, **kwargs)

    setattr(owner, name, failing)
    return lambda: setattr(owner, name, original)


def _worker(rank: int, rendezvous: str, results: str) -> None:
    import dse_callback.distributed.probe_shares as probe_shares
    from dse_callback.kernel.solvers.operator import DiffusionOperator

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    forward, net = Forward(), model()
    tracker = DSETracker(
        probe_data(),
        metrics=("dse", "dsmi_y", "dsmi_x"),
        solver="slq",
        collective_timeout=TIMEOUT,
        forward=forward,
        probe_batch_size=16,
    )
    runtime = Runtime(rank=rank, world_size=WORLD, is_primary=rank == 0)
    injections = {
        1: lambda: _fail_on_call(DiffusionOperator, "matmul", 3, torch.OutOfMemoryError("injected: out of memory")),
        3: lambda: (setattr(forward, "failing", True), lambda: setattr(forward, "failing", False))[1],
        4: lambda: _fail_on_call(probe_shares, "gather_rows", 1, MemoryError("injected before the gather")),
    }
    report = []
    for epoch in range(6):
        undo = injections[epoch]() if rank == 1 and epoch in injections else None
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = tracker.measure(net, epoch, runtime=runtime)
        seconds = time.perf_counter() - start
        if undo is not None:
            undo()
        messages = [str(w.message) for w in caught if issubclass(w.category, DSEMonitorWarning)]
        report.append({"values": values, "seconds": seconds, "warnings": messages})
    total = torch.ones(1)
    dist.all_reduce(total)  # the default group, after all that
    torch.save({"probes": report, "default_group": float(total), "lost": tracker.groups.lost}, f"{results}/{rank}.pt")
    tracker.release()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounded")
    # spawn, not fork: a child forked after this process ran OpenMP kernels can deadlock in them
    context = mp.start_processes(
        _worker, args=(str(folder / "rendezvous"), str(folder)), nprocs=WORLD, start_method="spawn", join=False
    )
    deadline = time.monotonic() + DEADLINE
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the ranks were still waiting after {DEADLINE} s: a wait was not bounded")
    return [torch.load(folder / f"{rank}.pt", weights_only=False) for rank in range(WORLD)]


KEYS = ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X")


def metric_values(values: dict) -> dict:
    return {key: values[key] for key in KEYS}


def test_a_normal_probe_is_finite_and_the_same_on_both_ranks(ranks):
    first = [metric_values(rank["probes"][0]["values"]) for rank in ranks]
    assert all(math.isfinite(value) for value in first[0].values())
    assert first[0] == first[1]
    assert all(rank["probes"][0]["warnings"] == [] for rank in ranks)


@pytest.mark.parametrize(
    "epoch, failure, cause",
    [(1, "measurement", "injected: out of memory"), (3, "forward pass", "injected forward failure"),
     (4, "gather of the representations", "injected before the gather")],
)  # fmt: skip
def test_a_failure_on_rank_1_gives_nan_and_one_warning_on_every_rank(ranks, epoch, failure, cause):
    for rank in ranks:
        probe = rank["probes"][epoch]
        values = metric_values(probe["values"])
        assert len(values) == 3 and all(math.isnan(value) for value in values.values())
        assert len(probe["warnings"]) == 1, probe["warnings"]
        message = probe["warnings"][0]
        assert f"probe {failure} failed on " in message and "rank 1 (" in message and cause in message
        assert "every rank logs NaN" in message
        assert probe["seconds"] < 4 * TIMEOUT  # bounded by the probe's timeout, not torch's 30 minutes


def test_rank_0_learns_that_it_timed_out_waiting_for_rank_1(ranks):
    for epoch in (1, 4):  # rank 1 failed between collectives: rank 0 waited in one
        assert "rank 0 (" in ranks[0]["probes"][epoch]["warnings"][0]
        assert "Timed out" in ranks[0]["probes"][epoch]["warnings"][0]
    assert "rank 0 (" not in ranks[0]["probes"][3]["warnings"][0]  # a failed forward: nobody waited


def test_after_a_failure_the_next_probe_succeeds_with_the_first_values(ranks):
    for rank in ranks:
        first = metric_values(rank["probes"][0]["values"])
        for epoch in (2, 5):
            assert metric_values(rank["probes"][epoch]["values"]) == first
            assert rank["probes"][epoch]["warnings"] == []
        assert rank["lost"] is False
        assert rank["default_group"] == WORLD

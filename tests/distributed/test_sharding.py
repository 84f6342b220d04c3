import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dse_callback.distributed.sharding import assign_work, combine_owned, gather_rows, torch_all_gather
from dse_callback.probe.shares import forward_batch_count, padded_batches, shard_range

WORLD = 2


class RowCounter(torch.nn.Module):
    """A fixed linear map that counts its forward calls and the rows it saw."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 4)
        with torch.no_grad():
            self.layer.weight.copy_(torch.arange(12.0).reshape(4, 3) / 7)
            self.layer.bias.copy_(torch.arange(4.0))
        self.calls, self.rows = 0, 0

    def forward(self, x):
        self.calls += 1
        self.rows += len(x)
        return self.layer(x)


def probe(n: int) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(n), dtype=torch.float64).float()


def sharded_forward(n, rank, world_size, batch_size, all_gather):
    """What the monitor does on each rank: its share, equal forward calls, gather in order."""
    x, model = probe(n), RowCounter()
    share = shard_range(n, rank, world_size)
    local = x[share.start : share.stop]
    batches = [local[i : i + batch_size] for i in range(0, len(local), batch_size)]
    outputs = []
    n_batches = forward_batch_count(n, world_size, batch_size)
    with torch.inference_mode():
        for batch, padding in padded_batches(batches, n_batches, filler=lambda: x[:1]):
            out = model(batch)
            if not padding:
                outputs.append(out)
    local_z = torch.cat(outputs) if outputs else torch.empty(0, 4)
    return gather_rows(local_z, n, rank, world_size, all_gather), model


def _worker(rank, world_size, rendezvous, results):
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        gather = torch_all_gather()
        report = {}
        for n, batch_size in ((9, 2), (8, 3), (1, 2)):  # uneven, even, a rank with an empty share
            z, model = sharded_forward(n, rank, world_size, batch_size, gather)
            report[n] = (z, model.calls, model.rows)
        costs = [5.0, 1.0, 3.0, 2.0, 2.0]
        owners = assign_work(costs, world_size)
        mine = torch.full((len(costs),), float("nan"), dtype=torch.float64)
        for item, owner in enumerate(owners):
            if owner == rank:
                mine[item] = float("inf") if item == 3 else math.sqrt(item)
        report["combined"] = combine_owned(mine, owners, rank, world_size, gather)
        report["owners"] = owners
        torch.save(report, f"{results}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_forward_half_each_and_gather_in_probe_order(tmp_path):
    # spawn, not fork: a child forked after this process ran OpenMP kernels can deadlock in them
    mp.start_processes(
        _worker, args=(WORLD, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, start_method="spawn"
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for n, batch_size in ((9, 2), (8, 3), (1, 2)):
        expected, single = sharded_forward(n, 0, 1, batch_size, all_gather=None)
        assert single.rows == n
        calls = {rank[n][1] for rank in ranks}
        assert calls == {forward_batch_count(n, WORLD, batch_size)}  # equal forward calls (FSDP)
        for rank in ranks:
            torch.testing.assert_close(rank[n][0], expected, rtol=0, atol=0)  # probe order, all rows
        real_rows = [len(shard_range(n, r, WORLD)) for r in range(WORLD)]
        assert real_rows == [math.ceil(n / 2), n // 2]
        assert ranks[0][n][2] == real_rows[0]  # rank 0 never pads here
        assert ranks[1][n][2] >= real_rows[1]  # rank 1 forwards its share plus dropped padding
    assert ranks[1][9][2] == 4 + 2  # 4 rows in 2 batches, then batch 2 repeated
    expected = torch.tensor([0.0, 1.0, math.sqrt(2), math.inf, 2.0], dtype=torch.float64)
    assert set(ranks[0]["owners"]) == {0, 1}
    for rank in ranks:
        torch.testing.assert_close(rank["combined"], expected, rtol=0, atol=0)


def test_shares_cover_the_probe_once_and_differ_by_at_most_one_row():
    for n in (0, 1, 5, 10, 10_001):
        for world in (1, 2, 3, 8):
            shares = [shard_range(n, r, world) for r in range(world)]
            assert [i for share in shares for i in share] == list(range(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_work_assignment_balances_load_and_is_deterministic():
    costs = [9.0, 1.0, 1.0, 1.0, 4.0, 4.0]
    owners = assign_work(costs, 3)
    loads = [sum(c for c, o in zip(costs, owners) if o == r) for r in range(3)]
    assert owners == [0, 1, 2, 1, 1, 2] and loads == [9.0, 6.0, 5.0]  # the 9 alone: optimal
    assert owners == assign_work(costs, 3) and assign_work(costs, 1) == [0] * 6


def test_padding_and_arguments_are_checked():
    with pytest.raises(ValueError, match="filler"):
        list(padded_batches([], 2))
    with pytest.raises(ValueError, match="n_batches"):
        list(padded_batches([1, 2, 3], 2))
    with pytest.raises(ValueError, match="rank"):
        shard_range(4, 2, 2)
    with pytest.raises(ValueError, match="local must have the 2 rows"):
        gather_rows(torch.zeros(3, 1), 4, 0, 2, all_gather=None)
    with pytest.raises(ValueError, match="owners"):
        combine_owned(torch.zeros(2), [0, 2], 0, 2, all_gather=None)

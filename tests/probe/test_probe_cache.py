import pytest
import torch
from torch.utils.data import Dataset

from dse_callback.probe.cache import ProbeCache, available_memory, default_num_workers, split_pair


class CountingDataset(Dataset):
    """(x, y) items whose 'transform' counts its calls (workers=0 keeps the count here)."""

    def __init__(self, n: int, dim: int = 3):
        self.data = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        self.calls = 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.calls += 1
        return self.data[index] * 2.0, index % 4


def collect(cache, batch_size):
    xs, ys = zip(*cache.batches(batch_size))
    return torch.cat(xs), torch.cat(ys)


def test_the_transform_runs_once_per_sample_while_the_probe_fits():
    dataset = CountingDataset(50)
    indices = list(range(3, 50, 2))  # 24 samples, not in dataset order from 0
    cache = ProbeCache(dataset, indices, device="cpu", num_workers=0)
    first_x, first_y = collect(cache, 7)
    assert dataset.calls == len(indices)
    assert cache.mode == "device" and "budget" in cache.reason
    for batch_size in (7, 5, 100):  # any forward batch size is served from memory
        x, y = collect(cache, batch_size)
        torch.testing.assert_close(x, first_x, rtol=0, atol=0)
        assert torch.equal(y, first_y)
    assert dataset.calls == len(indices)
    torch.testing.assert_close(first_x, dataset.data[indices] * 2.0, rtol=0, atol=0)
    assert torch.equal(cache.labels, torch.tensor(indices) % 4)


def test_a_probe_over_the_budget_is_read_again_every_pass():
    dataset = CountingDataset(20)
    cache = ProbeCache(dataset, range(20), device="cpu", num_workers=0, max_bytes=100)  # 20 x 12 bytes needed
    first_x, _ = collect(cache, 8)
    second_x, second_y = collect(cache, 8)
    assert cache.mode == "reread" and "0.00 GB over" in cache.describe()
    assert dataset.calls == 40
    torch.testing.assert_close(second_x, first_x, rtol=0, atol=0)
    assert torch.equal(second_y, torch.arange(20) % 4) and torch.equal(cache.labels, second_y)


def test_nested_inputs_are_cached_leaf_by_leaf():
    class DictItems(CountingDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return {"image": x, "extra": (x.sum(), index)}, y

    dataset = DictItems(10)
    cache = ProbeCache(dataset, range(10), device="cpu", num_workers=0)
    first = list(cache.batches(4))
    second = list(cache.batches(4))
    assert dataset.calls == 10 and cache.mode == "device"
    for (a, _), (b, _) in zip(first, second):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["extra"][1], b["extra"][1])


def test_samples_of_varying_shape_fall_back_to_reading_again():
    class Ragged(CountingDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return x[: 1 + index // 4], y  # each batch of 4 has its own width

    dataset = Ragged(12)
    cache = ProbeCache(dataset, range(12), device="cpu", num_workers=0)
    widths = [x.shape[1] for x, _ in cache.batches(4)]
    assert widths == [1, 2, 3] and cache.mode == "reread"
    assert [x.shape[1] for x, _ in cache.batches(4)] == [1, 2, 3] and dataset.calls == 24


def test_workers_read_the_same_values_and_time_is_accounted():
    dataset = CountingDataset(16)
    cache = ProbeCache(dataset, range(16), device="cpu", num_workers=2)
    x, y = collect(cache, 5)
    torch.testing.assert_close(x, dataset.data * 2.0, rtol=0, atol=0)
    assert cache.seconds["data"] > 0 and set(cache.seconds) == {"data", "transfer"}


def test_memory_and_workers_defaults():
    assert available_memory("cpu") > 2**20
    assert 0 <= default_num_workers() <= 8
    assert split_pair(torch.ones(2))[1] is None


def test_arguments_are_validated_with_their_names():
    with pytest.raises(ValueError, match="memory_fraction"):
        ProbeCache(CountingDataset(4), range(4), device="cpu", memory_fraction=1.5)
    with pytest.raises(ValueError, match="num_workers"):
        ProbeCache(CountingDataset(4), range(4), device="cpu", num_workers=-1)
    with pytest.raises(ValueError, match="batch_size"):
        next(ProbeCache(CountingDataset(4), range(4), device="cpu", num_workers=0).batches(0))

import random

import pytest
import torch

from dse_callback.kernel.reference.sampling import random_subsets, subsample_rows


def test_python_random_sampler_reproduces_seeded_random_sample():
    random_state = random.getstate()
    random.seed(7)
    expected = [random.sample(range(100), k=10) for _ in range(5)]
    random.setstate(random_state)
    assert random_subsets(100, 10, 5, seed=7, sampler="python_random").tolist() == expected


@pytest.mark.parametrize("sampler", ["torch", "python_random"])
def test_subsets_hold_distinct_in_range_indices_and_depend_on_the_seed(sampler):
    subsets = random_subsets(50, 20, 4, seed=1, sampler=sampler)
    assert subsets.shape == (4, 20) and subsets.dtype == torch.long
    for subset in subsets:
        assert len(set(subset.tolist())) == 20
        assert 0 <= int(subset.min()) and int(subset.max()) < 50
    assert torch.equal(subsets, random_subsets(50, 20, 4, seed=1, sampler=sampler))
    assert not torch.equal(subsets, random_subsets(50, 20, 4, seed=2, sampler=sampler))


def test_subsample_rows_keeps_everything_at_or_under_the_cap():
    assert subsample_rows(10, None, seed=0) is None
    assert subsample_rows(10, 10, seed=0) is None
    assert subsample_rows(10, 4, seed=0).shape == (4,)


def test_unknown_sampler_is_named():
    with pytest.raises(ValueError, match="sampler must be one of"):
        random_subsets(10, 2, 1, seed=0, sampler="numpy")

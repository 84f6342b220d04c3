import math

import numpy as np
import pytest
import torch

from dse_callback import diffusion_operator
from dse_callback.kernel.geometry import scales
from dse_callback.kernel.geometry.affinity import check_matrix_fits, diffusion_affinity_
from dse_callback.kernel.geometry.bandwidth import median_bandwidth
from dse_callback.kernel.geometry.distances import full_precision_matmul, pairwise_squared_distances_


def test_squared_distances_match_cdist_with_exact_zero_diagonal():
    z = torch.randn(50, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 4 + 3
    d2 = pairwise_squared_distances_(z)
    expected = torch.cdist(z, z) ** 2
    torch.testing.assert_close(d2, expected, rtol=1e-10, atol=1e-10)
    assert torch.equal(d2.diagonal(), torch.zeros(50, dtype=torch.float64))
    assert (d2 >= 0).all()


def test_centering_keeps_float32_distances_accurate_far_from_origin():
    # Without centering, |x|^2 ~ 1e8 swamps a distance of ~1 in float32.
    base = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z = (base + 1e4).float()
    d2 = pairwise_squared_distances_(z).double()
    expected = torch.cdist(z.double(), z.double()) ** 2  # exact distances of the rounded points
    assert (d2 - expected).abs().max() < 1e-4


def test_batched_distances_equal_one_by_one():
    z = torch.randn(3, 20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    batched = pairwise_squared_distances_(z)
    for i in range(3):
        torch.testing.assert_close(batched[i], pairwise_squared_distances_(z[i]))


def test_affinity_is_the_symmetric_normalization_of_the_gaussian_kernel():
    z = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 5
    sigma = 2.5
    kernel = torch.exp(-(torch.cdist(z, z) ** 2) / (2 * sigma**2))
    degree = kernel.sum(1)
    expected = kernel / torch.sqrt(degree[:, None] * degree[None, :])
    affinity = diffusion_affinity_(pairwise_squared_distances_(z), sigma)
    torch.testing.assert_close(affinity, expected)
    # Same spectrum as the random-walk operator P = D^-1 G, whose largest eigenvalue is 1.
    walk = kernel / degree[:, None]
    walk_eigenvalues = torch.linalg.eigvals(walk).real.sort().values
    torch.testing.assert_close(torch.linalg.eigvalsh(affinity), walk_eigenvalues, rtol=1e-8, atol=1e-8)
    assert walk_eigenvalues[-1] == pytest.approx(1.0, abs=1e-12)


def test_diffusion_operator_accepts_numpy_and_runs_on_cpu_in_float64():
    a = diffusion_operator(np.random.default_rng(0).normal(size=(10, 2)), sigma=1.0)
    assert a.dtype == torch.float64 and a.device.type == "cpu"
    torch.testing.assert_close(a, a.T)


def test_full_precision_matmul_disables_tf32_and_restores_settings():
    torch.set_float32_matmul_precision("high")
    try:
        with full_precision_matmul():
            assert torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_median_bandwidth_is_the_median_pairwise_distance():
    z = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    distances = [1, 3, 7, 2, 6, 4]  # each pair once; the matrix holds each twice
    assert median_bandwidth(z) == pytest.approx(float(np.median(distances)))
    big = torch.randn(3000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    exact = float(np.median(torch.pdist(big).numpy()))
    assert median_bandwidth(big) == pytest.approx(exact, rel=0.02)  # from 2,048 of 3,000 rows
    assert median_bandwidth(torch.zeros(3, 2)) == 1.0


def _middle_by_one_partition(values: np.ndarray, count: int) -> tuple[float, float]:
    lower_rank, upper_rank = (count + 1) // 2, count // 2 + 1
    ordered = np.partition(values, [lower_rank - 1, upper_rank - 1])
    return float(ordered[lower_rank - 1]), float(ordered[upper_rank - 1])


def _middle_statistics_case(name: str) -> tuple[np.ndarray, int]:
    """Arrays of 2^20 float32 values (large enough for the bracketed path), +inf past `count`."""
    rng = np.random.default_rng(3)
    size = 2**20
    if name == "spread":
        values = rng.standard_normal(size).astype(np.float32)
    elif name == "ties at the middle":  # a quarter of the values equal the median exactly
        values = rng.standard_normal(size).astype(np.float32)
        values[rng.permutation(size)[: size // 4]] = np.median(values)
    elif name == "rows of a distance block":  # each row and each column (point) has its own offset
        offsets = rng.random((256, 1)) * 4 + rng.random((1, size // 256)) * 4
        values = (rng.random((256, size // 256)) + offsets).astype(np.float32).reshape(-1)
    else:  # "sample misses": the seeded sample's positions hold the largest values
        values = rng.random(size).astype(np.float32)
        values[np.random.default_rng(0).integers(0, size, scales._BRACKET_SAMPLE)] = 2.0
    count = size - 1000
    values[np.argsort(values, kind="stable")[count:]] = np.inf
    return values, count


@pytest.mark.parametrize("case", ["spread", "ties at the middle", "rows of a distance block", "sample misses"])
def test_the_median_selection_equals_one_full_partition(case):
    values, count = _middle_statistics_case(case)
    expected = _middle_by_one_partition(values.copy(), count)
    assert scales._middle_order_statistics(torch.from_numpy(values.copy()), count) == expected
    lower_rank, upper_rank = (count + 1) // 2, count // 2 + 1
    candidates, below = scales._bracket(values, lower_rank, upper_rank)
    if case == "sample misses":
        assert candidates is None  # the full partition answers
    else:  # the bracket answers, from a few percent of the values (and the ties)
        assert candidates is not None
        assert candidates.size < values.size // 20 + np.count_nonzero(values == expected[0])
        assert below == int(np.count_nonzero(values < candidates.min()))


def test_a_matrix_too_large_for_memory_fails_before_allocation_and_suggests_max_samples():
    with pytest.raises(MemoryError, match="max_samples"):
        check_matrix_fits(1, 2_000_000, torch.float64, torch.device("cpu"))
    with pytest.raises(MemoryError, match="max_samples"):
        diffusion_operator(torch.zeros(2_000_000, 1))


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), "wide"])
def test_bad_sigma_is_named_in_the_error(sigma):
    with pytest.raises(ValueError, match="sigma"):
        diffusion_operator(torch.zeros(3, 2), sigma=sigma)


def test_affinity_has_unit_top_eigenvalue_for_any_bandwidth():
    z = torch.randn(25, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for sigma in (0.1, 1.0, 100.0):
        values = torch.linalg.eigvalsh(diffusion_operator(z, sigma=sigma))
        assert values[-1] == pytest.approx(1.0, abs=1e-10)
        assert values.abs().max() <= 1 + 1e-10
    assert math.isfinite(float(values.sum()))

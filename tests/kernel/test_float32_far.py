"""float32 distances when ||z|| dwarfs sigma: tight clusters far from the mean (issue 16, item 5).

20 clusters of 25 points, centres drawn from N(0, 1000^2) in 32 dimensions, spread 0.03,
sigma 10: DSE is log2 20 (+0.005 from the spread). The GEMM formula |a|^2 + |b|^2 - 2 a.b
cancels there (its terms are ~3e7, the distances inside a cluster ~0.06), and float32
rounding invents spread inside each cluster (+0.5 bits). Every path must agree with float64
within 0.01 bits: the dense N x N matrix (exact), the row blocks of the slq operator (stored
and blocked), the batched subsets of DSMI and the kNN search. Each case also runs with the
recompute switched off (`naive_formula`: the formula before the fix) and must then miss by
more than 0.01 bits. At spread 0.01 (tail eigenvalues ~4e-6) float32 slq misses by up to
0.0103 bits with exact distances: a limit of the solver's float32 arithmetic, not of the
distances (see the `distances` module docstring).
"""

import math

import numpy as np
import pytest
import torch

import dse_callback.kernel.geometry.distances as distances
from dse_callback import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dse_callback.kernel.geometry.affinity import diffusion_affinity_
from dse_callback.kernel.geometry.distances import (
    centered_with_squared_norms,
    pairwise_squared_distances_,
    squared_distances_from_rows,
)
from dse_callback.kernel.reference.clustering import _knn_neighbours
from dse_callback.kernel.solvers.batched import batched_slq_entropies
from dse_callback.kernel.solvers.estimate import SLQOptions
from dse_callback.kernel.solvers.exact import entropy_of_spectrum, exact_eigenvalues

SIGMA = 10.0
CLUSTERS, PER_CLUSTER = 20, 25
TOLERANCE = 0.01  # bits


def far_clusters(shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    """float32 points (500, 32): 20 clusters of 25, centres ~ N(0, 1000^2), spread 0.03, plus `shift`."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLUSTERS, 32, generator=generator, dtype=torch.float64) * 1e3
    noise = 0.03 * torch.randn(CLUSTERS * PER_CLUSTER, 32, generator=generator, dtype=torch.float64)
    return (centres.repeat_interleave(PER_CLUSTER, dim=0) + noise + shift).float()


CASES = {"centres_around_origin": 0.0, "translated_by_1e4": 1e4}


@pytest.fixture(params=["as_shipped", "entries_only", "naive_formula"])
def compensated(request, monkeypatch, one_torch_thread):
    """True with the recompute on, False with it off (the GEMM formula alone).

    Each point here has 24 cluster mates (4.8% of N > WHOLE_ROW_SHARE), so as shipped every
    row is recomputed whole in float64; "entries_only" forces the other branch, sums of
    squared differences for just the entries that cancel.
    """
    if request.param == "entries_only":
        monkeypatch.setattr(distances, "WHOLE_ROW_SHARE", 1.0)
    if request.param == "naive_formula":
        monkeypatch.setattr(distances, "_compensate_cancellation_", lambda *args: None)
    return request.param != "naive_formula"


def check_error(value: float, reference: float, compensated: bool) -> None:
    error = abs(value - reference)
    if compensated:
        assert error < TOLERANCE, (value, reference)
    else:
        assert error > TOLERANCE, (value, reference)  # the case really exercises the cancellation


def float64_dse(points: torch.Tensor) -> float:
    """Exact float64 DSE of the float32 points as given, and a check of the closed form log2 20."""
    value = diffusion_spectral_entropy(points.double(), sigma=SIGMA, precision="float64", solver="exact")
    assert value == pytest.approx(math.log2(CLUSTERS), abs=0.01)
    return value


@pytest.mark.parametrize("shift", CASES.values(), ids=CASES.keys())
def test_exact_solver_dense_matrix(shift, compensated):
    points = far_clusters(shift)
    value = diffusion_spectral_entropy(points, sigma=SIGMA, precision="float32", solver="exact")
    check_error(value, float64_dse(points), compensated)


@pytest.mark.parametrize("storage", ["stored", "blocked"])
@pytest.mark.parametrize("shift", CASES.values(), ids=CASES.keys())
def test_slq_row_blocks(shift, storage, compensated):
    points = far_clusters(shift)
    budget = None if storage == "stored" else 250 * 500 * 4  # 250 rows: the blocked path recomputes rows
    estimate = diffusion_spectral_entropy(
        points, sigma=SIGMA, precision="float32", solver="slq", memory_budget=budget, return_details=True
    )
    check_error(estimate.value, float64_dse(points), compensated)


def _subsets(points: torch.Tensor) -> torch.Tensor:
    """(3, 250, 32): the first ten clusters, the last ten, and every other point."""
    return torch.stack([points[:250], points[250:], points[::2]])


@pytest.mark.parametrize("shift", CASES.values(), ids=CASES.keys())
def test_batched_subsets_exact_and_slq(shift, compensated):
    subsets = _subsets(far_clusters(shift))
    expected = [math.log2(10), math.log2(10), math.log2(20)]

    def exact(points):
        return entropy_of_spectrum(
            exact_eigenvalues(diffusion_affinity_(pairwise_squared_distances_(points), SIGMA)), 1
        )

    reference = exact(subsets.double())
    assert torch.allclose(reference, torch.tensor(expected, dtype=torch.float64), atol=0.01)
    slq, _ = batched_slq_entropies(subsets, SIGMA, 1.0, torch.float32, torch.Generator().manual_seed(0), SLQOptions())
    for values in (exact(subsets).double(), slq):
        worst = float((values - reference).abs().max())
        assert (worst < TOLERANCE) if compensated else (worst > TOLERANCE), (values, reference)


def test_dsmi_float32_matches_float64(compensated):
    points = far_clusters()
    labels = np.arange(len(points)) // 250  # two classes of ten clusters each: DSMI ~ 1 bit
    kwargs = dict(sigma=SIGMA, n_repetitions=2, max_samples=None)
    reference = diffusion_spectral_mutual_information(points.double(), labels, precision="float64", **kwargs)
    for solver in ("exact", "slq"):
        value = diffusion_spectral_mutual_information(points, labels, precision="float32", solver=solver, **kwargs)
        check_error(value, reference, compensated)  # the formula alone: 0.19 bits low


def test_row_block_distances_inside_a_cluster_have_float32_relative_accuracy(compensated):
    points = far_clusters(1e4)
    exact = squared_distances_from_rows(*centered_with_squared_norms(points.double()), slice(0, 100))
    block = squared_distances_from_rows(*centered_with_squared_norms(points), slice(0, 100)).double()
    same_cluster = torch.arange(100)[:, None] // PER_CLUSTER == torch.arange(500)[None, :] // PER_CLUSTER
    same_cluster[torch.arange(100), torch.arange(100)] = False
    relative = ((block - exact).abs() / exact)[same_cluster]
    assert (relative.max() < 1e-5) if compensated else (relative.max() > 1.0)
    # The nearest neighbours (the kNN graph of `spectral_clusters`) come from these distances.
    neighbours = _knn_neighbours(points, 5)
    same = torch.equal(neighbours.sort(dim=1).values, _knn_neighbours(points.double(), 5).sort(dim=1).values)
    assert same == compensated


def _formula_before_the_fix(z: torch.Tensor) -> torch.Tensor:
    """`pairwise_squared_distances_` before the fix, operation for operation (so the rounding is the same)."""
    centered, squared_norms = centered_with_squared_norms(z)
    d2 = torch.matmul(centered, centered.transpose(-1, -2))
    d2.mul_(-2.0)
    d2.add_(squared_norms.unsqueeze(-1)).add_(squared_norms.unsqueeze(-2))
    d2.clamp_(min=0.0)
    d2.diagonal(dim1=-2, dim2=-1).zero_()
    return d2


def _rows_before_the_fix(centered: torch.Tensor, squared_norms: torch.Tensor, rows: slice) -> torch.Tensor:
    """`squared_distances_from_rows` before the fix."""
    block = torch.addmm(squared_norms[None, :], centered[rows], centered.T, alpha=-2.0)
    return block.add_(squared_norms[rows, None]).clamp_(min=0.0)


@pytest.mark.parametrize("broken", [False, True], ids=["as_shipped", "every_float32_row_recomputed"])
def test_float64_and_ordinary_float32_distances_are_bit_identical_to_the_formula_before_the_fix(broken, monkeypatch):
    if broken:  # the check below must notice a recompute where none is needed
        monkeypatch.setattr(distances, "CANCELLATION", 0.5)
    generator = torch.Generator().manual_seed(3)
    ordinary = torch.randn(2, 300, 64, generator=generator, dtype=torch.float64) * 5 + 2
    for z in (ordinary, ordinary.float(), far_clusters().double(), far_clusters(1e4).double()):
        centered, squared_norms = centered_with_squared_norms(z[0] if z.dim() == 3 else z)
        old = _rows_before_the_fix(centered, squared_norms, slice(10, 60))
        new = squared_distances_from_rows(centered, squared_norms, slice(10, 60))
        if z.dtype == torch.float32:  # below float64 the self-pairs are set to their exact 0
            old[torch.arange(50), torch.arange(10, 60)] = 0.0
        same = torch.equal(pairwise_squared_distances_(z), _formula_before_the_fix(z)) and torch.equal(new, old)
        assert same != (broken and z.dtype == torch.float32)


def test_only_the_entries_that_cancel_are_recomputed():
    generator = torch.Generator().manual_seed(4)
    ordinary = torch.randn(200, 16, generator=generator)
    tight_pairs = 1e3 * torch.tensor([[1.0], [1.0], [-1.0], [-1.0]]).expand(4, 16)  # the mean stays near 0
    z = torch.cat([ordinary, tight_pairs + 1e-3 * torch.randn(4, 16, generator=generator)])
    d2 = pairwise_squared_distances_(z)
    old = _formula_before_the_fix(z)
    assert (d2 != old).nonzero().tolist() == [[200, 201], [201, 200], [202, 203], [203, 202]]
    centered = centered_with_squared_norms(z)[0].double()  # recomputed: exact for the centered points
    for i, j in ((200, 201), (202, 203)):
        exact = float((centered[i] - centered[j]).square().sum())
        assert float(d2[i, j]) == pytest.approx(exact, rel=1e-6)
        assert float(old[i, j]) != pytest.approx(exact, rel=0.1)


def test_rows_with_many_entries_that_cancel_are_recomputed_whole_in_float64(monkeypatch):
    generator = torch.Generator().manual_seed(6)
    z = torch.cat([torch.full((40, 8), 1e3), torch.full((40, 8), -1e3)]) + 1e-2 * torch.randn(
        80, 8, generator=generator
    )
    recomputed_rows = []
    original = distances._recompute_rows_float64_
    monkeypatch.setattr(
        distances,
        "_recompute_rows_float64_",
        lambda block, centered, row_index, positions: (
            recomputed_rows.extend(positions.tolist()),
            original(block, centered, row_index, positions),
        ),
    )
    d2 = pairwise_squared_distances_(z).double()
    assert sorted(recomputed_rows) == list(range(80))  # 39 of 80 entries per row cancel
    centered = centered_with_squared_norms(z)[0].double()
    exact = (centered[:, None, :] - centered[None, :, :]).square().sum(dim=-1)
    assert torch.allclose(d2, exact, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("broken", [False, True], ids=["as_shipped", "screen_ignores_partner_norms"])
def test_the_screen_finds_every_row_the_exact_test_finds(broken, monkeypatch):
    if broken:  # a screen that only looks at |z_i|^2 lets pairs with a larger partner through
        monkeypatch.setattr(distances, "_partner_ratio", lambda share: 0.0)
    generator = torch.Generator().manual_seed(5)
    directions = torch.nn.functional.normalize(torch.randn(200, 8, generator=generator), dim=1)
    base = directions * torch.logspace(0, 2, 200)[:, None]  # norms from 1 to 100
    stretch = 1.0 + 0.2 * torch.rand(200, 1, generator=generator)  # partners up to 1.2x longer ...
    partners = base * stretch + 0.05 * base.norm(dim=1, keepdim=True) * torch.randn(200, 8, generator=generator)
    centered, squared_norms = centered_with_squared_norms(torch.cat([base, partners]))
    block = _rows_before_the_fix(centered, squared_norms, slice(None))
    threshold = distances.CANCELLATION * (squared_norms[:, None] + squared_norms[None, :])
    close = (block < threshold).fill_diagonal_(False)
    expected = set(close.any(dim=1).nonzero().flatten().tolist())
    sure = set(
        (block.fill_diagonal_(math.inf).amin(dim=1) < distances.CANCELLATION * squared_norms)
        .nonzero()
        .flatten()
        .tolist()
    )
    assert 20 < len(expected - sure) and len(sure) > 20  # ... so both branches of the screen are used
    found = set(distances._cancelled_rows(block, squared_norms, torch.arange(400)).tolist())
    assert (found == expected) != broken

"""The bandwidth presets: their statistics against brute force, the knn kernel's formula, its
agreement across every kernel builder, and the rules (validation, duplicates, reuse)."""

import math

import numpy as np
import pytest
import torch

from dse_callback import (
    Bandwidth,
    ResolvedBandwidth,
    diffusion_operator,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    resolve_bandwidth,
)
from dse_callback.kernel.geometry.bandwidth import resolve_sigma
from dse_callback.kernel.geometry.scales import floored_scales, knn_distances, rms_radius
from dse_callback.kernel.reference.sampling import subsample_rows
from dse_callback.kernel.solvers import run, subsets

GENERATOR = torch.Generator().manual_seed(0)
# Three clusters of unequal spreads, so the kNN scales differ from point to point.
LABELS = torch.arange(240) % 3
Z = torch.randn(240, 6, generator=GENERATOR, dtype=torch.float64) * (0.3 + LABELS[:, None]) + 4.0 * LABELS[:, None]


def dse(z, **kwargs):
    return diffusion_spectral_entropy(z, warn_saturation=False, **kwargs)


def test_rms_is_the_root_mean_square_distance_to_the_centroid_times_the_multiplier():
    expected = float((Z - Z.mean(0)).norm(dim=1).square().mean().sqrt())
    assert rms_radius(Z) == pytest.approx(expected, rel=1e-12)
    assert resolve_bandwidth(Z, "rms").value == pytest.approx(expected, rel=1e-12)
    assert resolve_bandwidth(Z, Bandwidth("rms", scale=0.25)).value == pytest.approx(expected / 4, rel=1e-12)
    # The median preset is today's median pairwise distance (times c).
    median = float(np.median(torch.pdist(Z).numpy()))
    assert resolve_bandwidth(Z, Bandwidth("median", scale=2.0)).value == pytest.approx(2 * median, rel=1e-9)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_knn_scales_are_the_distances_to_the_kth_other_point(k):
    distances = torch.cdist(Z, Z)
    distances.fill_diagonal_(math.inf)
    expected = distances.sort(dim=1).values[:, k - 1]
    torch.testing.assert_close(knn_distances(Z, k), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(knn_distances(Z, k, slice(17, 90)), expected[17:90], rtol=1e-12, atol=1e-12)
    resolved = resolve_bandwidth(Z, Bandwidth("knn", k=k, scale=3.0))
    torch.testing.assert_close(resolved.local, 3 * expected, rtol=1e-12, atol=1e-12)
    assert resolved.value == pytest.approx(float(np.median((3 * expected).numpy())), rel=1e-12)


def test_knn_kernel_is_the_self_tuning_kernel_and_stays_symmetric():
    s = resolve_bandwidth(Z, "knn").local
    kernel = torch.exp(-torch.cdist(Z, Z).square() / (2 * s[:, None] * s[None, :]))
    degree = kernel.sum(1)
    expected = kernel / (degree[:, None] * degree[None, :]).sqrt()
    affinity = diffusion_operator(Z, sigma="knn")
    torch.testing.assert_close(affinity, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(affinity, affinity.T, rtol=1e-14, atol=1e-15)
    assert torch.linalg.eigvalsh(affinity)[-1] == pytest.approx(1.0, abs=1e-10)


def test_knn_negative_eigenvalues_are_small_and_none_in_higher_dimensions():
    # The self-tuning kernel is not positive semi-definite: measure the mass DSE takes as |lambda|.
    def negative_mass(z):
        values = torch.linalg.eigvalsh(diffusion_operator(z, sigma="knn"))
        return float(values.clamp(max=0).abs().sum() / values.abs().sum())

    plane = torch.rand(400, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert 0 < negative_mass(plane) < 0.01
    wide = torch.rand(400, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert negative_mass(wide) < 1e-12


def test_duplicates_never_give_a_zero_scale_and_identical_points_give_zero():
    # Every point has 2 copies, so k = 1 and k = 2 find a duplicate at distance exactly 0.
    base = torch.randn(30, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z = base.repeat(3, 1)
    assert float(knn_distances(z, 2).abs().max()) == 0.0  # exact zeros, not GEMM residue
    for k in (1, 2, 3):
        local = resolve_bandwidth(z, Bandwidth("knn", k=k)).local
        assert (local > 0).all()
    # All k-th neighbours are duplicates: the floor is the RMS radius, which scales with Z.
    assert torch.equal(
        resolve_bandwidth(z, Bandwidth("knn", k=2)).local, torch.full((90,), rms_radius(z), dtype=torch.float64)
    )
    mixed = floored_scales(torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64), radius=5.0)
    assert mixed.tolist() == [2.0, 2.0, 3.0]
    for sigma in ("knn", "rms", "median"):
        for z in (torch.zeros(5, 3), torch.full((7, 2), 1e6)):
            value = dse(z, sigma=sigma)
            assert value == pytest.approx(0.0, abs=1e-9) and math.isfinite(value)


def test_presets_resolve_on_points_that_require_grad():
    z = Z.clone().requires_grad_(True)
    for kind in ("median", "rms", "knn"):
        assert dse(z, sigma=kind) == pytest.approx(dse(Z, sigma=kind), abs=1e-12)
        assert resolve_bandwidth(z, kind).value == resolve_bandwidth(Z, kind).value


def test_k_is_clipped_below_n():
    z = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    assert resolve_bandwidth(z, Bandwidth("knn", k=10)).local.tolist() == [3.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "sigma, error, message",
    [
        ("wide", ValueError, "sigma must be a number > 0, one of"),
        (0.0, ValueError, "sigma must be a finite number > 0, got 0.0"),
        (None, TypeError, "sigma must be a number > 0"),
        (True, TypeError, "sigma must be a number > 0"),
    ],
)
def test_bad_sigma_is_named_with_what_is_valid(sigma, error, message):
    with pytest.raises(error, match=message):
        dse(Z, sigma=sigma)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "mean"}, "Bandwidth.kind must be one of"),
        ({"kind": "rms", "scale": -1.0}, "Bandwidth.scale must be a finite number > 0, got -1.0"),
        ({"kind": "knn", "k": 0}, "Bandwidth.k must be an integer >= 1, got 0"),
        ({"kind": "knn", "k": 2.5}, "Bandwidth.k must be an integer >= 1, got 2.5"),
    ],
)
def test_bandwidth_validation_names_the_field(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Bandwidth(**kwargs)


def test_strings_are_shorthands_and_numbers_stay_numbers():
    assert resolve_sigma("knn") == Bandwidth("knn") and resolve_sigma(3) == 3.0
    resolved = resolve_bandwidth(Z, 2.5)
    assert isinstance(resolved, ResolvedBandwidth) and resolved.value == 2.5 and resolved.local is None
    for kind in ("median", "rms", "knn"):
        assert dse(Z, sigma=kind) == dse(Z, sigma=Bandwidth(kind))


def test_a_resolved_bandwidth_is_used_as_it_is_and_recorded():
    for kind in ("median", "rms", "knn"):
        resolved = resolve_bandwidth(Z, kind)
        estimate = dse(Z, sigma=resolved, return_details=True)
        assert estimate.value == dse(Z, sigma=kind)
        assert estimate.sigma == resolved.value
        mi = diffusion_spectral_mutual_information(Z, LABELS, sigma=resolved, return_details=True)
        assert mi.value == diffusion_spectral_mutual_information(Z, LABELS, sigma=kind)
        assert mi.sigma == resolved.value


def test_a_resolved_knn_bandwidth_must_match_the_rows():
    resolved = resolve_bandwidth(Z[:100], "knn")
    with pytest.raises(ValueError, match="100 local scales but z has 240 rows"):
        dse(Z, sigma=resolved)
    # Resolved on the full Z, it follows the max_samples subsample: the rows keep their scales.
    full = resolve_bandwidth(Z, "knn")
    subsampled = dse(Z, sigma=full, max_samples=120, return_details=True)
    rows = subsample_rows(240, 120, seed=0)
    assert subsampled.n == 120
    assert subsampled.value == pytest.approx(dse(Z[rows], sigma=full.take(rows)), abs=1e-12)
    assert subsampled.value != pytest.approx(dse(Z[rows], sigma="knn"), abs=1e-6)  # not re-resolved


@pytest.mark.parametrize("kind", ["median", "rms", "knn"])
def test_every_kernel_builder_agrees_under_each_preset(kind, monkeypatch, one_torch_thread):
    z = torch.randn(600, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z[:300] *= 0.3
    exact = dse(z, sigma=kind, solver="exact")
    stored = dse(z, sigma=kind, solver="slq", precision="float64", return_details=True)
    blocked = dse(z, sigma=kind, solver="slq", precision="float64", memory_budget=2**16, return_details=True)
    assert (stored.storage, blocked.storage) == ("stored", "blocked")
    for estimate in (stored, blocked):
        assert abs(estimate.value - exact) <= max(4 * estimate.stderr, 2e-3)
    assert blocked.value == pytest.approx(stored.value, abs=1e-9)  # the same kernel rows, recomputed
    # t = 2: the top-k certificate is not tried under knn (its kernel is not PSD).
    certified = []
    bounds = run.top_k_bounds
    monkeypatch.setattr(run, "top_k_bounds", lambda *args: certified.append(1) or bounds(*args))
    dse(z, sigma=kind, t=2, solver="slq")
    assert certified == ([] if kind == "knn" else [1])


@pytest.mark.parametrize("kind", ["rms", "knn"])
def test_dsmi_subsets_use_the_full_sets_bandwidth_on_every_path(kind, monkeypatch, one_torch_thread):
    z = torch.randn(1200, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    labels = torch.arange(1200) % 2
    z[labels == 1] *= 0.2  # class 1 is compact: a per-class bandwidth would hide it
    seen = []
    original = subsets.DiffusionSubsetEntropies.__init__
    monkeypatch.setattr(
        subsets.DiffusionSubsetEntropies, "__init__", lambda self, plan: (seen.append(plan), original(self, plan))[1]
    )
    exact = diffusion_spectral_mutual_information(z, labels, sigma=kind, n_repetitions=2)
    full = resolve_bandwidth(z, kind)
    assert seen[0].bandwidth.value == full.value
    if kind == "knn":
        assert torch.equal(seen[0].bandwidth.local, full.local)
    kwargs = dict(sigma=kind, n_repetitions=2, solver="slq", precision="float32", return_details=True)
    batched = diffusion_spectral_mutual_information(z, labels, **kwargs)
    one_by_one = diffusion_spectral_mutual_information(z, labels, memory_budget=2**20, **kwargs)
    for estimate in (batched, one_by_one):
        assert abs(estimate.value - exact) <= max(4 * estimate.stderr, 0.02)
    assert exact > 0.3  # the compact class shows

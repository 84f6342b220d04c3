"""The entropy profile: DSE at c * s for each multiplier, on the subsample, s from the full Z."""

import math

import pytest
import torch

from dse_callback import (
    Bandwidth,
    EntropyProfile,
    diffusion_entropy_profile,
    diffusion_spectral_entropy,
    resolve_bandwidth,
)
from dse_callback.kernel.profile import DEFAULT_PROFILE_SCALES, PROFILE_MAX_SAMPLES
from dse_callback.kernel.reference.sampling import subsample_rows

Z = torch.randn(300, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 7 + 100


def dse(z, **kwargs):
    return diffusion_spectral_entropy(z, warn_saturation=False, solver="exact", **kwargs)


@pytest.mark.parametrize("sigma", [3.0, "median", "rms", Bandwidth("knn", k=5, scale=0.5)])
def test_each_value_is_the_dse_at_the_multiplied_bandwidth(sigma):
    scales = (0.1, 1.0, 4.0)
    profile = diffusion_entropy_profile(Z, scales=scales, sigma=sigma, max_samples=None)
    resolved = resolve_bandwidth(Z, sigma)
    assert profile.scales == scales and profile.n == 300
    for c, bandwidth, value in zip(scales, profile.bandwidths, profile.values):
        assert bandwidth == pytest.approx(c * resolved.value, rel=1e-12)
        assert value == pytest.approx(dse(Z, sigma=resolved.scaled(c)), abs=1e-12)
    if isinstance(sigma, float):  # a number is its own s
        assert profile.values[0] == pytest.approx(dse(Z, sigma=0.3), abs=1e-12)


def test_the_subsample_keeps_the_full_sets_bandwidth():
    profile = diffusion_entropy_profile(Z, scales=(0.5, 2.0), sigma="knn", max_samples=120, seed=3)
    rows = subsample_rows(300, 120, seed=3)
    full = resolve_bandwidth(Z, "knn")
    assert profile.n == 120
    for c, value in zip(profile.scales, profile.values):
        assert value == pytest.approx(dse(Z[rows], sigma=full.take(rows).scaled(c)), abs=1e-12)
    # Re-resolving on the subsample would give other (wider) kNN scales.
    assert profile.values[0] != pytest.approx(dse(Z[rows], sigma=Bandwidth("knn", scale=0.5)), abs=1e-6)


def test_defaults_and_normalization():
    big = torch.randn(PROFILE_MAX_SAMPLES + 200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    profile = diffusion_entropy_profile(big)
    assert isinstance(profile, EntropyProfile)
    assert profile.n == PROFILE_MAX_SAMPLES and profile.scales == DEFAULT_PROFILE_SCALES
    assert DEFAULT_PROFILE_SCALES[0] == 1 / 16 and DEFAULT_PROFILE_SCALES[-1] == 16 and len(DEFAULT_PROFILE_SCALES) == 9
    assert profile.normalized == tuple(value / math.log2(PROFILE_MAX_SAMPLES) for value in profile.values)
    assert all(-1e-9 <= value <= 1 + 1e-9 for value in profile.normalized)
    # Over the default grid the profile spans the range: near log2 n at 1/16, near 0 at 16.
    assert profile.normalized[0] > 0.95 and profile.normalized[-1] < 0.05


def test_closed_forms_hold_at_every_multiplier():
    same = diffusion_entropy_profile(torch.full((6, 2), 3.0), sigma="rms")
    assert all(value == pytest.approx(0.0, abs=1e-9) for value in same.values)
    far = diffusion_entropy_profile(torch.eye(8, dtype=torch.float64) * 1e3, scales=(1e-3,), sigma=1.0)
    assert far.values[0] == pytest.approx(3.0, abs=1e-9) and far.normalized[0] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    "scales, error, message",
    [
        ((), ValueError, "scales must hold at least one multiplier"),
        ((1.0, -2.0), ValueError, r"scales\[1\] must be a finite number > 0, got -2.0"),
        (2.0, TypeError, "scales must be a sequence of multipliers > 0, got 2.0"),
    ],
)
def test_bad_scales_are_named(scales, error, message):
    with pytest.raises(error, match=message):
        diffusion_entropy_profile(Z, scales=scales)

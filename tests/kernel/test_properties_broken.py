"""Each invariance property of `test_properties.py` fails on a deliberately broken variant.

Every test here patches one plausible mistake into the kernel and checks that the property's
own measure (the same function the property test asserts on) now exceeds its tolerance.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dse_callback import Bandwidth
from dse_callback.kernel.geometry import affinity, bandwidth
from dse_callback.kernel.solvers import run, subsets

pytest.importorskip("hypothesis")

from test_properties import (  # noqa: E402  (the properties under test; hypothesis needed first)
    bounds_gap,
    full_set_bandwidth_gap,
    padding_gap,
    permutation_gap,
    relu_rescaling_gap,
    rotation_gap,
    scaling_gap,
    translation_gap,
)

LABELS = torch.arange(24) % 3
CLOUD = (
    torch.randn(24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * (0.3 + LABELS[:, None])
    + 3.0 * LABELS[:, None]
)


def test_a_kernel_that_is_not_symmetric_breaks_permutation_invariance(monkeypatch):
    assert permutation_gap(CLOUD, "knn", seed=1) <= 1e-9

    def row_scales_only(d2, sigma, row_scales=None, column_scales=None):  # exp(-d2_ij / (2 s_i^2))
        return d2.mul_((-0.5 / row_scales.square()).unsqueeze(-1)).exp_()

    monkeypatch.setattr(affinity, "gaussian_kernel_", row_scales_only)
    assert permutation_gap(CLOUD, "knn", seed=1) > 1e-3


def test_an_rms_that_forgets_to_centre_breaks_translation_invariance(monkeypatch):
    monkeypatch.setattr(bandwidth, "rms_radius", lambda points: float(points.double().square().sum(1).mean().sqrt()))
    assert translation_gap(CLOUD, "rms", shift=100.0) > 1e-3


def test_knn_on_city_block_distances_breaks_rotation_invariance(monkeypatch):
    def city_block_knn(points, k, rows=None):
        distances = torch.cdist(points.double(), points.double(), p=1).fill_diagonal_(float("inf"))
        return distances.kthvalue(k, dim=1).values[rows or slice(None)]

    monkeypatch.setattr(bandwidth, "knn_distances", city_block_knn)
    assert rotation_gap(CLOUD, LABELS, "knn", seed=2) > 1e-3


def test_an_rms_per_coordinate_breaks_zero_padding_invariance(monkeypatch):
    # sqrt(mean over N and D of (z - mean)^2): the sqrt(D) of the paper's sigma = sqrt(dim Z) in disguise.
    monkeypatch.setattr(bandwidth, "rms_radius", lambda points: float((points - points.mean(0)).square().mean().sqrt()))
    assert padding_gap(CLOUD, LABELS, "rms", extra=3) > 1e-3


def test_signed_spectrum_weights_break_the_bounds(monkeypatch):
    # Without |lambda|, the negative eigenvalues of knn's kernel make p negative and DSE NaN.
    plane = torch.rand(60, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert bounds_gap(plane, "knn") <= 1e-9

    def signed(eigenvalues, t=1):
        weights = eigenvalues.to(torch.float64).pow(t)
        p = weights / weights.sum(dim=-1, keepdim=True)
        return -torch.special.xlogy(p, p).sum(dim=-1) / torch.log(torch.tensor(2.0, dtype=torch.float64))

    monkeypatch.setattr(run, "entropy_of_spectrum", signed)
    assert bounds_gap(plane, "knn") > 1e-3


def test_a_preset_that_ignores_the_scale_breaks_scale_invariance(monkeypatch):
    monkeypatch.setattr(bandwidth, "rms_radius", lambda points: 1.0)
    assert scaling_gap(CLOUD, LABELS, "rms", factor=10.0) > 1e-3


@pytest.mark.parametrize("sigma", [1.5, 10.0])
def test_a_fixed_sigma_breaks_the_relu_rescaling(sigma):
    # The paper's setting: the same function, other values once the hidden layer is rescaled.
    assert relu_rescaling_gap(CLOUD, Bandwidth("rms"), a=10.0, seed=4) <= 1e-6
    assert relu_rescaling_gap(CLOUD, sigma, a=10.0, seed=4) > 1e-3


def test_a_per_class_bandwidth_breaks_dsmis_full_set_bandwidth(monkeypatch):
    compact = CLOUD.clone()
    compact[LABELS == 0] *= 0.1  # a compact class: a per-class bandwidth blows it up to the others' spread
    original = subsets.DiffusionSubsetEntropies.__call__

    def per_class(self, index_sets):
        plan = self.plan
        own = bandwidth.bandwidth_for(plan.points[index_sets[0]], plan.bandwidth.spec)
        self.plan = dataclasses.replace(plan, bandwidth=own)
        try:
            return original(self, index_sets)
        finally:
            self.plan = plan

    assert full_set_bandwidth_gap(compact, LABELS, "rms") <= 1e-9
    monkeypatch.setattr(subsets.DiffusionSubsetEntropies, "__call__", per_class)
    assert full_set_bandwidth_gap(compact, LABELS, "rms") > 1e-3

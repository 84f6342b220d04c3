import math
import random
import warnings

import dse_dsmi
import numpy as np
import pytest
import torch

from dse_callback import (
    BandwidthWarning,
    EigensolverFallbackWarning,
    classic_shannon_entropy,
    diffusion_spectral_entropy,
    diffusion_spectrum,
)
from dse_callback.kernel.solvers import exact as spectrum_module

from conftest import make_blobs, requires_cuda


def dse(z, **kwargs):
    kwargs.setdefault("warn_saturation", False)
    return diffusion_spectral_entropy(z, **kwargs)


PARAMETERS = [(10.0, 1), (3.0, 1), (3.0, 2), (25.0, 3)]


@pytest.mark.parametrize("sigma,t", PARAMETERS)
def test_dse_matches_the_reference_on_uniform_noise(uniform_noise, sigma, t):
    ours = dse(uniform_noise, sigma=sigma, t=t)
    reference = dse_dsmi.diffusion_spectral_entropy(uniform_noise, gaussian_kernel_sigma=sigma, t=t)
    assert abs(ours - reference) <= 1e-6


@pytest.mark.parametrize("sigma,t", PARAMETERS)
def test_dse_matches_the_reference_on_blobs(blobs, sigma, t):
    points, _ = blobs
    ours = dse(points, sigma=sigma, t=t)
    reference = dse_dsmi.diffusion_spectral_entropy(points, gaussian_kernel_sigma=sigma, t=t)
    assert abs(ours - reference) <= 1e-6


@pytest.mark.parametrize("sigma,t", [(10.0, 1), (5.0, 1), (5.0, 2)])
def test_dse_matches_the_reference_on_real_mnist(mnist_test_images, sigma, t):
    images = mnist_test_images[0][:1000]
    ours = dse(images, sigma=sigma, t=t)
    reference = dse_dsmi.diffusion_spectral_entropy(images, gaussian_kernel_sigma=sigma, t=t)
    assert abs(ours - reference) <= 1e-6


def test_float32_stays_within_1e_5_bits_of_the_reference(uniform_noise, blobs):
    for points in (uniform_noise, blobs[0]):
        ours = dse(torch.as_tensor(points, dtype=torch.float32), precision="float32")
        reference = dse_dsmi.diffusion_spectral_entropy(points)
        assert abs(ours - reference) <= 1e-5


def test_python_random_subsample_reproduces_the_reference_max_n(uniform_noise):
    ours = dse(uniform_noise, max_samples=600, seed=3, sampler="python_random")
    reference = dse_dsmi.diffusion_spectral_entropy(uniform_noise, max_N=600, random_seed=3)
    assert abs(ours - reference) <= 1e-6


def test_identical_points_give_zero():
    assert dse(np.ones((50, 8))) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("n", [2, 16, 100])
def test_far_apart_points_give_log2_n(n):
    points = np.eye(n) * 1e3  # pairwise distance 1414 >> sigma = 10
    assert dse(points) == pytest.approx(math.log2(n), abs=1e-9)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_k_tight_well_separated_equal_clusters_give_log2_k(k):
    points, _ = make_blobs(n_per_cluster=40, n_clusters=k, dim=k, spread=0.001, separation=500.0, seed=k)
    assert dse(points) == pytest.approx(math.log2(k), abs=1e-3)


def test_dse_stays_within_its_bounds():
    rng = np.random.default_rng(5)
    for sigma in (0.01, 0.5, 2.0, 50.0, 1e4):
        for t in (1, 2, 0.5):
            points = rng.normal(size=(60, 3)) * rng.uniform(0.1, 10)
            value = dse(points, sigma=sigma, t=t)
            assert -1e-12 <= value <= math.log2(60) + 1e-12


def test_dse_is_invariant_to_permutation_rotation_and_translation(blobs):
    points = torch.as_tensor(blobs[0])
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=generator))
    permutation = torch.randperm(len(points), generator=generator)
    moved = (points @ rotation + 123.0)[permutation]
    assert dse(moved) == pytest.approx(dse(points), abs=1e-9)


def test_numpy_and_tensor_inputs_agree(blobs):
    assert dse(blobs[0]) == dse(torch.as_tensor(blobs[0]))


def test_median_sigma_makes_dse_scale_free_where_a_fixed_sigma_does_not(blobs):
    points = blobs[0]
    assert dse(points, sigma="median") == pytest.approx(dse(points * 1000.0, sigma="median"), abs=1e-9)
    assert abs(dse(points) - dse(points * 1000.0)) > 1.0


def test_saturation_warns_at_both_ends_and_not_in_between(blobs):
    with pytest.warns(BandwidthWarning, match="floor"):
        diffusion_spectral_entropy(np.ones((30, 2)))
    with pytest.warns(BandwidthWarning, match="ceiling"):
        diffusion_spectral_entropy(np.eye(30) * 1e3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BandwidthWarning)
        diffusion_spectral_entropy(blobs[0], sigma=10.0)


def test_no_global_random_state_is_touched(uniform_noise):
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    dse(uniform_noise, max_samples=300, sampler="torch")
    dse(uniform_noise, max_samples=300, sampler="python_random")
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])


def test_subsampling_is_seeded(uniform_noise):
    first = dse(uniform_noise, max_samples=200, seed=1)
    assert dse(uniform_noise, max_samples=200, seed=1) == first
    assert dse(uniform_noise, max_samples=200, seed=2) != first


def test_nan_rows_are_counted_in_the_error():
    points = np.zeros((10, 3))
    points[[2, 7], 1] = np.nan
    points[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"z has 3 of 10 rows with NaN or Inf \(first at row 2\)"):
        diffusion_spectral_entropy(points)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(z=np.zeros((1, 3))), "at least 2 samples"),
        (dict(z=np.zeros(5)), r"shape \(N, D\)"),
        (dict(z=np.zeros((4, 2, 2))), r"shape \(N, D\)"),
        (dict(z=np.zeros((4, 2)), sigma=0), "sigma"),
        (dict(z=np.zeros((4, 2)), t=0), "t must be"),
        (dict(z=np.zeros((4, 2)), t=-1), "t must be"),
        (dict(z=np.zeros((4, 2)), sampler="numpy"), "sampler"),
        (dict(z=np.zeros((4, 2)), precision="float16"), "precision"),
        (dict(z=np.zeros((4, 2)), max_samples=1), "max_samples"),
        (dict(z=np.zeros((4, 2)), solver="magic"), "solver"),
    ],
)
def test_bad_input_gets_an_error_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        diffusion_spectral_entropy(**kwargs)


def test_non_array_input_is_a_type_error():
    with pytest.raises(TypeError, match="z must be a torch.Tensor or numpy.ndarray"):
        diffusion_spectral_entropy("points")


def test_failed_float32_eigensolve_is_retried_in_float64_with_a_warning(monkeypatch, blobs):
    real_eigvalsh = torch.linalg.eigvalsh

    def eigvalsh_failing_in_float32(matrix):
        if matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("simulated: the algorithm failed to converge")
        return real_eigvalsh(matrix)

    monkeypatch.setattr(spectrum_module.torch.linalg, "eigvalsh", eigvalsh_failing_in_float32)
    with pytest.warns(EigensolverFallbackWarning, match="retrying in float64"):
        value = dse(blobs[0], precision="float32")
    assert value == pytest.approx(dse(blobs[0], precision="float64"), abs=1e-5)


def test_an_eigensolver_failure_without_fallback_propagates(monkeypatch):
    def always_failing(matrix):
        raise torch.linalg.LinAlgError("simulated")

    monkeypatch.setattr(spectrum_module.torch.linalg, "eigvalsh", always_failing)
    with pytest.raises(torch.linalg.LinAlgError):
        dse(np.random.default_rng(0).normal(size=(10, 2)))


def test_spectrum_is_ascending_with_top_eigenvalue_one_and_numpy_in_numpy_out(blobs):
    values = diffusion_spectrum(blobs[0])
    assert isinstance(values, np.ndarray) and values.shape == (500,)
    assert np.all(np.diff(values) >= 0)
    assert values[-1] == pytest.approx(1.0, abs=1e-10)
    tensor_values = diffusion_spectrum(torch.as_tensor(blobs[0]))
    assert isinstance(tensor_values, torch.Tensor)


@requires_cuda
def test_gpu_matches_cpu(blobs):
    points = torch.as_tensor(blobs[0])
    cpu = dse(points)
    assert dse(points.cuda(), precision="float64") == pytest.approx(cpu, abs=1e-9)
    assert dse(points.cuda()) == pytest.approx(cpu, abs=1e-5)


def test_cse_matches_the_reference(uniform_noise, blobs, mnist_test_images):
    for points in (uniform_noise[:, :6], blobs[0], mnist_test_images[0][:500]):
        for bins in (2, 3):
            reference = dse_dsmi.diffusion_spectral_entropy(points, classic_shannon_entropy=True, num_bins_per_dim=bins)
            assert abs(classic_shannon_entropy(points, bins_per_dim=bins) - reference) <= 1e-6


def test_cse_closed_forms():
    assert classic_shannon_entropy(np.ones((20, 4))) == 0.0
    corners = np.array([[i >> d & 1 for d in range(3)] for i in range(8)], dtype=float)
    assert classic_shannon_entropy(np.repeat(corners, 5, axis=0)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="bins_per_dim"):
        classic_shannon_entropy(corners, bins_per_dim=1)

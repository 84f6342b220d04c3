import dse_dsmi
import numpy as np
import pytest
import torch
from sklearn.cluster import SpectralClustering

from dse_callback import (
    SkippedClassWarning,
    classic_shannon_mutual_information,
    diffusion_spectral_mutual_information,
    spectral_clusters,
)


def dsmi(z, reference, **kwargs):
    return diffusion_spectral_mutual_information(z, reference, **kwargs)


def reference_dsmi(z, reference, **kwargs):
    value, _clusters = dse_dsmi.diffusion_spectral_mutual_information(z, reference, **kwargs)
    return value


@pytest.mark.parametrize("sigma,t", [(10.0, 1), (3.0, 2), (1.0, 1)])
def test_dsmi_with_labels_matches_the_reference(uniform_noise, blobs, sigma, t):
    for points, labels in ((uniform_noise[:600], np.random.default_rng(1).integers(0, 10, 600)), blobs):
        ours = dsmi(points, labels, sigma=sigma, t=t, sampler="python_random")
        theirs = reference_dsmi(points, labels.reshape(-1, 1), gaussian_kernel_sigma=sigma, t=t)
        assert abs(ours - theirs) <= 1e-6


def test_dsmi_with_continuous_scalars_matches_the_reference(blobs):
    points, labels = blobs
    scalars = labels + np.random.default_rng(2).uniform(-0.4, 0.4, len(labels))
    ours = dsmi(points, scalars, n_clusters=7, sampler="python_random")
    theirs = reference_dsmi(points, scalars.reshape(-1, 1), n_clusters=7)
    assert abs(ours - theirs) <= 1e-6


def test_dsmi_with_precomputed_clusters_of_real_images_matches_the_reference(mnist_test_images):
    images, _ = mnist_test_images
    images = images[:800]
    clusters = (
        SpectralClustering(10, affinity="nearest_neighbors", assign_labels="cluster_qr", random_state=0)
        .fit(images)
        .labels_
    )
    representation = images @ np.random.default_rng(3).normal(size=(784, 32))  # a random linear "layer"
    for sigma in (10.0, 30.0):
        ours = dsmi(representation, clusters, sigma=sigma, sampler="python_random")
        theirs = reference_dsmi(representation, images, precomputed_clusters=clusters, gaussian_kernel_sigma=sigma)
        assert abs(ours - theirs) <= 1e-6


def test_csmi_matches_the_reference(blobs, uniform_noise):
    labels = np.random.default_rng(4).integers(0, 5, 1000)
    for points, reference in ((blobs[0], blobs[1]), (uniform_noise[:, :8], labels)):
        ours = classic_shannon_mutual_information(points, reference, sampler="python_random")
        theirs = reference_dsmi(points, reference.reshape(-1, 1), classic_shannon_entropy=True)
        assert abs(ours - theirs) <= 1e-6


def test_dsmi_is_high_for_true_blob_labels_and_about_zero_for_random_labels(blobs):
    points, labels = blobs
    shuffled = np.random.default_rng(5).permutation(labels)
    # Blobs of spread 3 in 16-D overlap a kernel of sigma 10, so the true value is below log2 5.
    assert dsmi(points, labels) > 0.5
    assert abs(dsmi(points, shuffled)) < 0.1


def test_reference_vectors_are_clustered_like_precomputed_spectral_clusters(blobs):
    points, _ = blobs
    inputs = points @ np.random.default_rng(6).normal(size=(16, 40))
    clusters = spectral_clusters(inputs, n_clusters=5)
    assert dsmi(points, inputs, n_clusters=5) == dsmi(points, clusters)


def test_torch_sampler_is_deterministic_per_seed_and_close_to_python_random(blobs):
    points, labels = blobs
    first = dsmi(points, labels, seed=1)
    assert dsmi(points, labels, seed=1) == first
    assert dsmi(points, labels, seed=2) != first
    assert dsmi(points, labels, sampler="python_random") == pytest.approx(first, abs=0.05)


def test_a_singleton_class_is_skipped_with_a_warning_and_matches_the_reference(blobs):
    points, labels = blobs
    labels = labels.copy()
    labels[0] = 99
    with pytest.warns(SkippedClassWarning, match="class 99 .* 1 member"):
        ours = dsmi(points, labels, sampler="python_random")
    theirs = reference_dsmi(points, labels.reshape(-1, 1))
    assert abs(ours - theirs) <= 1e-6


def test_float32_dsmi_stays_close_to_float64(blobs):
    points, labels = blobs
    assert dsmi(points, labels, precision="float32") == pytest.approx(dsmi(points, labels), abs=1e-4)


def test_mismatched_lengths_are_an_error_naming_both():
    with pytest.raises(ValueError, match="reference has 9 rows but z has 10"):
        dsmi(np.zeros((10, 2)), np.zeros(9, dtype=int))


def test_bad_options_are_named():
    z, labels = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match="n_repetitions"):
        dsmi(z, labels, n_repetitions=0)
    with pytest.raises(ValueError, match="seed"):
        dsmi(z, labels, seed=-1)
    with pytest.raises(ValueError, match="reference_type"):
        dsmi(z, labels, reference_type="images")
    with pytest.raises(ValueError, match="labels must have shape"):
        dsmi(z, np.zeros((10, 3), dtype=int), reference_type="labels")


def test_joint_subsampling_keeps_points_and_labels_paired(blobs):
    points, labels = blobs
    # Labels that follow the points stay informative after subsampling.
    subsampled = dsmi(torch.as_tensor(points), torch.as_tensor(labels), max_samples=200)
    shuffled = dsmi(
        torch.as_tensor(points), torch.as_tensor(np.random.default_rng(0).permutation(labels)), max_samples=200
    )
    assert subsampled > 0.4 and abs(shuffled) < 0.15


@pytest.mark.parametrize("t,seed", [(1, 0), (3, 1)])
def test_dsmi_with_slq_is_within_0_02_bits_of_exact_float64(t, seed):
    rng = np.random.default_rng(11)
    centres = rng.normal(0.0, 6.0, size=(3, 24))
    labels = np.arange(600) % 3
    points = centres[labels] + rng.normal(0.0, 3.0, size=(600, 24))
    exact = dsmi(points, labels, t=t, solver="exact", precision="float64", seed=seed, n_repetitions=2)
    estimate = dsmi(points, labels, t=t, solver="slq", seed=seed, n_repetitions=2, return_details=True)
    assert estimate.solver == "slq" and estimate.stderr > 0
    assert abs(estimate.value - exact) <= 0.02
    assert abs(exact) > 0.1  # the labels carry information, so the comparison means something


def test_dsmi_auto_stays_exact_for_small_classes_and_reports_it():
    points, labels = np.random.default_rng(12).normal(size=(300, 8)), np.arange(300) % 3
    estimate = dsmi(points, labels, return_details=True)
    assert (estimate.solver, estimate.stderr) == ("exact", 0.0)
    assert estimate.value == dsmi(points, labels, solver="exact")

import numpy as np
import pytest
import torch
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score

from dse_callback import discretize_reference, downsample_images, spectral_clusters
from dse_callback.kernel.reference.binning import bin_rows

from conftest import make_blobs, requires_cuda


def sklearn_clusters(points, k):
    return (
        SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10, assign_labels="cluster_qr", random_state=0)
        .fit(points)
        .labels_
    )


def test_blobs_agree_with_scikit_learn_and_the_truth():
    points, truth = make_blobs(n_per_cluster=150, n_clusters=6, dim=20, spread=1.0, separation=12.0, seed=0)
    ours = spectral_clusters(points, n_clusters=6)
    assert adjusted_rand_score(ours, sklearn_clusters(points, 6)) >= 0.9
    assert adjusted_rand_score(ours, truth) >= 0.9


def test_disconnected_knn_graph_still_finds_every_component():
    # Far-apart blobs make one graph component each: eigenvalue 1 repeats k times.
    points, truth = make_blobs(n_per_cluster=100, n_clusters=5, dim=10, spread=1.0, separation=100.0, seed=1)
    assert adjusted_rand_score(spectral_clusters(points, n_clusters=5), truth) == 1.0


def test_real_mnist_agrees_with_scikit_learn(mnist_test_images):
    images, _ = mnist_test_images
    assert adjusted_rand_score(spectral_clusters(images, 10), sklearn_clusters(images, 10)) >= 0.9


def test_clusters_are_deterministic_and_numpy_or_tensor_agree():
    points, _ = make_blobs(n_per_cluster=50, n_clusters=3, dim=5, spread=1.0, separation=8.0, seed=2)
    first = spectral_clusters(points, 3)
    assert np.array_equal(first, spectral_clusters(points, 3))
    as_tensor = spectral_clusters(torch.as_tensor(points), 3)
    assert isinstance(as_tensor, torch.Tensor) and np.array_equal(as_tensor.numpy(), first)
    assert set(first.tolist()) == {0, 1, 2}


@requires_cuda
def test_gpu_clusters_equal_cpu_clusters():
    points, _ = make_blobs(n_per_cluster=50, n_clusters=3, dim=5, spread=1.0, separation=8.0, seed=2)
    cpu = spectral_clusters(torch.as_tensor(points), 3)
    assert torch.equal(spectral_clusters(torch.as_tensor(points).cuda(), 3).cpu(), cpu)


def test_bad_cluster_arguments_are_named():
    points = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match="n_clusters must be smaller than the number of points N=5"):
        spectral_clusters(points, 5)
    with pytest.raises(ValueError, match="n_neighbors must be at most N=5"):
        spectral_clusters(points, 2, n_neighbors=6)
    with pytest.raises(ValueError, match="n_clusters"):
        spectral_clusters(points, 1)


def test_binning_matches_numpy_digitize_as_the_reference_uses_it():
    values = np.random.default_rng(3).normal(size=(500, 3))
    values[:5] = values.min(axis=0)  # the minimum and
    values[5:10] = values.max(axis=0)  # the maximum must land in the end bins
    for n_bins in (2, 3, 10):
        scaled = (values - values.min(0)) / (values.max(0) - values.min(0))
        expected = np.digitize(scaled, np.linspace(0, 1, n_bins + 1)[:-1]) - 1
        assert np.array_equal(bin_rows(torch.as_tensor(values), n_bins).numpy(), expected)


def test_reference_types_are_inferred():
    labels = np.array([3, 1, 3, 2])
    assert discretize_reference(labels).tolist() == [3, 1, 3, 2]
    assert discretize_reference(np.array([0.0, 0.5, 1.0, 0.2]), n_clusters=2).tolist() == [0, 1, 1, 0]
    assert discretize_reference(np.array([[0.0], [1.0]]), n_clusters=2).tolist() == [0, 1]
    images = np.random.default_rng(0).normal(size=(30, 1, 4, 4))
    assert discretize_reference(images, n_clusters=3).shape == (30,)


def test_downsample_images_shrinks_only_large_images():
    large = torch.rand(2, 3, 224, 224)
    assert downsample_images(large).shape == (2, 3 * 64 * 64)
    small = torch.rand(2, 1, 28, 28)
    assert torch.equal(downsample_images(small), small.reshape(2, -1))
    # A constant image stays constant: the resize averages, it does not invent detail.
    assert torch.allclose(downsample_images(torch.full((1, 1, 128, 128), 0.3)), torch.tensor(0.3))
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\)"):
        downsample_images(torch.rand(2, 28, 28))

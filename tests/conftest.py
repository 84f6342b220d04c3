"""Shared fixtures: small synthetic point clouds and the real MNIST copy where present."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

# The tests mirror the package (tests/kernel, tests/probe, ...); their shared helpers
# (lightning_helpers, fake_datasets, this file's make_blobs) sit here, at the top.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: tiny networks and matrices run faster on one, and far
    faster on a busy shared CPU; the previous count is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> pathlib.Path:
    """A torchvision MNIST root unpacked from ../shared/data/mnist (skips where absent)."""
    if not (SHARED_MNIST / "unpack.sh").exists():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    root = tmp_path_factory.mktemp("mnist")
    subprocess.run(["bash", str(SHARED_MNIST / "unpack.sh"), str(root)], check=True, capture_output=True)
    return root


@pytest.fixture(scope="session")
def mnist_test_images(mnist_root):
    """The first 2,000 MNIST test images as (N, 784) floats in [0, 1], and their labels."""
    import torchvision

    dataset = torchvision.datasets.MNIST(str(mnist_root), train=False, download=False)
    images = dataset.data[:2000].reshape(2000, -1).double().numpy() / 255.0
    return images, dataset.targets[:2000].numpy()


def make_blobs(n_per_cluster: int, n_clusters: int, dim: int, spread: float, separation: float, seed: int):
    """Gaussian blobs with centres `separation` apart along distinct axes, and their labels."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_clusters, dim))
    centres[np.arange(n_clusters), np.arange(n_clusters) % dim] = separation
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    points = centres[labels] + rng.normal(scale=spread, size=(len(labels), dim))
    return points, labels


@pytest.fixture(scope="session")
def uniform_noise():
    return np.random.default_rng(0).uniform(0.0, 1.0, size=(1000, 256))


@pytest.fixture(scope="session")
def blobs():
    return make_blobs(n_per_cluster=100, n_clusters=5, dim=16, spread=3.0, separation=30.0, seed=1)

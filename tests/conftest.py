"""Shared fixtures: small synthetic point clouds, and real handwritten digits for the reference checks.

`mnist_test_images` is real MNIST from ../shared/data/mnist where it is present, and scikit-learn's
handwritten digits (shipped with scikit-learn, so every checkout has them) upsampled to 28 x 28
where it is not, so the checks against the reference never skip. `DSE_MNIST_DIR` points
elsewhere (a missing folder forces the fallback).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

# The tests mirror the package (tests/kernel, tests/probe, ...); their shared helpers
# (lightning_helpers, fake_datasets, this file's make_blobs) sit here, at the top.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

SHARED_MNIST = pathlib.Path(
    os.environ.get("DSE_MNIST_DIR", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
)

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: tiny networks and matrices run faster on one, and far
    faster on a busy shared CPU; the previous count is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class DigitImages(tuple):
    """(images, labels), and `source`: "mnist" or "sklearn_digits"."""

    source: str


@pytest.fixture(scope="session")
def mnist_test_images(tmp_path_factory) -> DigitImages:
    """2,000 (or, from the fallback, 1,797) real digit images as (N, 784) float64 in [0, 1], and their labels.

    MNIST's first 2,000 test images where ../shared/data/mnist is present; else scikit-learn's 8 x 8
    handwritten digits, bilinearly upsampled to 28 x 28 so sizes and scales stay MNIST-like
    (median pairwise distance 8.5 against MNIST's 10.0).
    """
    if (SHARED_MNIST / "unpack.sh").exists():
        import torchvision

        root = tmp_path_factory.mktemp("mnist")
        subprocess.run(["bash", str(SHARED_MNIST / "unpack.sh"), str(root)], check=True, capture_output=True)
        dataset = torchvision.datasets.MNIST(str(root), train=False, download=False)
        images = dataset.data[:2000].reshape(2000, -1).double().numpy() / 255.0
        return _digit_images(images, dataset.targets[:2000].numpy(), "mnist")
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.as_tensor(digits.images, dtype=torch.float64).unsqueeze(1) / 16.0
    images = torch.nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)
    return _digit_images(images.reshape(len(images), -1).clamp(0, 1).numpy(), digits.target, "sklearn_digits")


def _digit_images(images, labels, source: str) -> DigitImages:
    pair = DigitImages((images, labels))
    pair.source = source
    return pair


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

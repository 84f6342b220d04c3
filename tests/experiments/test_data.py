import numpy as np
import pytest
import torch

from dse_experiments.data import PaperData, dataset_labels, permuted_labels

from fake_datasets import accept_tiny_files, write_cifar10, write_mnist, write_stl10


def data(tmp_path, dataset, **kwargs):
    module = PaperData(dataset=dataset, data_dir=str(tmp_path), **kwargs)
    module.setup("fit")
    return module


def test_mnist_loader_reads_idx_files_and_repeats_to_three_channels(tmp_path):
    labels = write_mnist(tmp_path)
    module = data(tmp_path, "mnist", image_size=32)
    image, label = module.val_set[3]
    assert image.shape == (3, 32, 32) and label == labels["t10k"][3]
    assert len(module.train_set) == 40 and len(module.val_set) == 20


def test_cifar10_loader_reads_pickled_batches(tmp_path, monkeypatch):
    labels = write_cifar10(tmp_path)
    accept_tiny_files(monkeypatch)
    module = data(tmp_path, "cifar10", image_size=32, regime="overfit")
    assert len(module.train_set) == 40 and len(module.val_set) == 20
    image, label = module.val_set[5]
    assert image.shape == (3, 32, 32) and label == labels["test_batch"][5]
    assert dataset_labels(module.val_set).tolist() == labels["test_batch"]


def test_stl10_loader_reads_binary_files_and_repeats_the_training_set(tmp_path, monkeypatch):
    labels = write_stl10(tmp_path)
    accept_tiny_files(monkeypatch)
    module = data(tmp_path, "stl10", image_size=64, train_repeats=10)
    assert len(module.train_set) == 300 and len(module.val_set) == 20
    image, label = module.val_set[7]
    assert image.shape == (3, 64, 64) and label == labels["test"][7]


def test_contrastive_regime_gives_two_different_views(tmp_path):
    write_mnist(tmp_path)
    module = data(tmp_path, "mnist", image_size=32, regime="contrastive")
    (first, second), _ = module.train_set[0]
    assert first.shape == second.shape == (3, 32, 32) and not torch.equal(first, second)


def test_label_permutation_is_deterministic_and_keeps_the_histogram():
    labels = np.repeat(np.arange(10), 50)
    permuted = permuted_labels(labels, seed=3)
    assert np.array_equal(permuted, permuted_labels(labels, seed=3))
    assert not np.array_equal(permuted, permuted_labels(labels, seed=4))
    assert np.array_equal(np.bincount(permuted), np.bincount(labels))
    assert (permuted != labels).mean() > 0.8


def test_overfit_regime_permutes_training_labels_only(tmp_path):
    labels = write_mnist(tmp_path, n_train=200)
    module = data(tmp_path, "mnist", image_size=28, three_channels=False, regime="overfit", label_seed=7)
    train_labels = np.array([int(module.train_set[i][1]) for i in range(200)])
    assert np.array_equal(train_labels, permuted_labels(labels["train"], 7))
    assert np.array_equal(np.bincount(train_labels), np.bincount(labels["train"]))
    assert [module.val_set[i][1] for i in range(20)] == labels["t10k"].tolist()  # probe labels stay true
    # No augmentation: the same image twice is the same tensor.
    assert torch.equal(module.train_set[0][0], module.train_set[0][0])


def test_digits_quickstart_data_is_offline_and_split(tmp_path):
    module = data(tmp_path, "digits", image_size=8, three_channels=False)
    assert len(module.train_set) + len(module.val_set) == 1797
    image, label = module.val_set[0]
    assert image.shape == (1, 8, 8) and 0 <= label < 10
    assert abs(float(torch.stack([module.val_set[i][0] for i in range(300)]).mean())) < 0.2  # normalized


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dataset must be one of"):
        PaperData(dataset="imagenet")
    with pytest.raises(ValueError, match="regime must be one of"):
        PaperData(regime="unsupervised")

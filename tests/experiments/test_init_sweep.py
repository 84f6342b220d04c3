"""`dse-experiment init-sweep` end to end on tiny generated MNIST files, under several bandwidths."""

import csv
import math

import pytest

from dse_experiments.cli import main

from fake_datasets import write_mnist


def read_rows(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_init_sweep_measures_each_std_under_each_bandwidth(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=4, n_test=12)
    main(
        ["init-sweep", "--data-dir", str(tmp_path / "data"), "--n-images", "12", "--image-size", "32",
         "--stds", "0.001", "0.1", "--sigma", "10", "sqrt_dim", "rms", "knn", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    rows = read_rows(tmp_path / "out" / "init_sweep.csv")
    assert [(float(row["conv_std"]), row["sigma"]) for row in rows] == [
        (std, sigma) for std in (0.001, 0.1) for sigma in ("10", "sqrt_dim", "rms", "knn")
    ]
    by = {(float(row["conv_std"]), row["sigma"]): row for row in rows}
    assert by[0.001, "10"]["n"] == "12" and float(by[0.001, "10"]["sigma_value"]) == 10.0
    assert float(by[0.1, "sqrt_dim"]["sigma_value"]) == pytest.approx(math.sqrt(2048))
    assert float(by[0.001, "10"]["dse"]) < 0.1  # Z shrinks to a point far inside sigma = 10
    assert float(by[0.1, "10"]["dse"]) > 0.95 * math.log2(12)  # and spreads far beyond it
    radius_small, radius_large = (float(by[std, "10"]["rms_radius"]) for std in (0.001, 0.1))
    assert radius_large > 1e6 * radius_small  # the layer gains multiply Z's scale
    for std in (0.001, 0.1):
        mine = [by[std, sigma] for sigma in ("10", "sqrt_dim", "rms", "knn")]
        assert len({row["rms_radius"] for row in mine}) == 1  # Z computed once per std
        # rms sets sigma to Z's RMS radius: the ratio logged as dse/{name}_scale is 1 at every std.
        assert float(by[std, "rms"]["scale"]) == pytest.approx(1.0, rel=1e-6)
        for row in mine:
            assert float(row["scale"]) == pytest.approx(float(row["rms_radius"]) / float(row["sigma_value"]))
            assert 0.0 <= float(row["dse"]) <= math.log2(12) + 1e-9
    assert (tmp_path / "out" / "init_sweep.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "conv std 0.1: RMS radius" in printed and "knn" in printed


def test_init_sweep_refuses_an_unknown_bandwidth(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["init-sweep", "--data-dir", str(tmp_path), "--sigma", "10", "wide"])
    assert "--sigma: sigma must be a number > 0, 'sqrt_dim' or one of" in capsys.readouterr().err

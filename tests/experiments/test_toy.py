"""The toy studies: data generators, and each study's quick grid end to end at a tiny size."""

import csv
import math

import numpy as np
import pytest

from dse_callback.kernel.solvers.run import SOLVERS
from dse_experiments.cli import main
from dse_experiments.toy import run_study
from dse_experiments.toy.data import corrupt_labels, gaussian_blobs, random_walk_tree, subspace_points
from dse_experiments.toy.dimension import DimensionGrid

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _read(path):
    with open(path) as stream:
        reader = csv.DictReader(stream)
        return reader.fieldnames, list(reader)


def _values(rows, **match):
    return [float(row["value"]) for row in rows if all(row[key] == str(value) for key, value in match.items())]


@pytest.mark.parametrize("branches", [1, 2, 5, 10])
def test_tree_has_the_right_branch_counts_and_is_seeded(branches):
    points, labels = random_walk_tree(branches, 30, 4, np.random.default_rng(5))
    assert points.shape == (branches * 30, 4)
    assert np.bincount(labels).tolist() == [30] * branches
    assert (labels == np.repeat(np.arange(branches), 30)).all()  # branch ids in order
    again, _ = random_walk_tree(branches, 30, 4, np.random.default_rng(5))
    other, _ = random_walk_tree(branches, 30, 4, np.random.default_rng(6))
    assert np.array_equal(points, again) and not np.array_equal(points, other)


def test_each_branch_starts_at_the_end_of_an_earlier_one():
    # With one coordinate of huge steps, every branch's first point is one step from its parent's end.
    points, _ = random_walk_tree(6, 50, 3, np.random.default_rng(0))
    ends = points[49::50]
    for branch in range(1, 6):
        gaps = np.linalg.norm(ends[:branch] - points[branch * 50], axis=1)
        assert gaps.min() < 6.0  # one N(0, I_3) step; the walks themselves wander ~sqrt(50 * 3) apart
        assert gaps.min() < np.linalg.norm(points[branch * 50])  # nearer its parent than the origin


def test_corruption_permutes_a_fraction_among_itself():
    labels = np.repeat(np.arange(4), 25)
    assert np.array_equal(corrupt_labels(labels, 0.0, np.random.default_rng(0)), labels)
    for fraction in (0.3, 1.0):
        corrupted = corrupt_labels(labels, fraction, np.random.default_rng(0))
        assert np.bincount(corrupted).tolist() == [25] * 4
        assert 0 < (corrupted != labels).sum() <= int(fraction * 100)
    with pytest.raises(ValueError, match="fraction"):
        corrupt_labels(labels, 1.5, np.random.default_rng(0))


def test_subspace_and_blob_generators():
    points = subspace_points(20, 10, 3, "normal", np.random.default_rng(0))
    assert np.ptp(points[:, 3:], axis=0).max() == 0 and len(np.unique(points[:, 3:])) == 1
    assert np.ptp(points[:, :3], axis=0).min() > 0
    points, labels = gaussian_blobs(30, 5, np.random.default_rng(0))
    assert points.shape == (30, 5) and np.bincount(labels).tolist() == [10, 10, 10]
    with pytest.raises(ValueError, match="distribution"):
        subspace_points(5, 4, 2, "cauchy", np.random.default_rng(0))


def test_dimension_quick_grid_through_the_cli(tmp_path, monkeypatch):
    tiny = DimensionGrid(
        n=40,
        dim=64,
        intrinsic_dims=(2, 64),
        distributions=("uniform",),
        noises=(0.01,),
        sigma=2.0,
        repetitions=1,
        mix_sizes=(16,),
        mix_weights=(0.0, 1.0),
    )
    monkeypatch.setattr(DimensionGrid, "quick", classmethod(lambda cls: tiny))
    main(["toy", "dimension", "--out", str(tmp_path), "--quick"])
    columns, rows = _read(tmp_path / "dimension.csv")
    assert columns == ["distribution", "D", "d", "n", "a", "noise", "t", "repetition", "estimator", "value"]
    assert len(rows) == 2 * (4 + 1) + 2  # 2 d x (4 t + CSE) + 2 matrix-mix weights
    assert (tmp_path / "dimension.png").stat().st_size > 0
    low, high = _values(rows, d=2, t=1, estimator="DSE"), _values(rows, d=64, t=1, estimator="DSE")
    assert low[0] < high[0] <= math.log2(40) + 1e-9
    assert _values(rows, estimator="CSE", d=64)[0] == pytest.approx(math.log2(40))
    assert _values(rows, a="1.0", estimator="DSE")[0] == pytest.approx(math.log2(16))  # the identity


def test_corruption_quick_grid(tmp_path):
    run_study("corruption", tmp_path, quick=True, branch_counts=(2,), points_per_branch=25, fractions=(0.0, 1.0))
    columns, rows = _read(tmp_path / "corruption.csv")
    assert columns == ["branches", "D", "r", "noise", "t", "repetition", "estimator", "value"]
    assert len(rows) == 2 * (2 + 1)  # 2 r x (2 t + CSMI)
    assert (tmp_path / "corruption.png").stat().st_size > 0
    clean, shuffled = _values(rows, r="0.0", t=1, estimator="DSMI")[0], _values(rows, r="1.0", t=1, estimator="DSMI")[0]
    assert clean > 0.5 and abs(shuffled) < 0.25 and clean > shuffled


def test_blobs_quick_grid(tmp_path):
    run_study(
        "blobs", tmp_path, quick=True, n=90, corruption_dims=(5,), fractions=(0.0, 1.0), dims=(5, 200), mine_epochs=2
    )
    columns, rows = _read(tmp_path / "blobs.csv")
    assert columns == ["sweep", "D", "n", "r", "repetition", "estimator", "solver", "epochs", "value", "seconds"]
    estimators = ["DSMI", "CSMI_5", "CSMI_10", "CSMI_100", "KSG", "MINE"]
    assert [row["estimator"] for row in rows] == estimators * 4
    assert all(float(row["seconds"]) >= 0 for row in rows)
    assert (tmp_path / "blobs.png").stat().st_size > 0
    # Well-separated blobs: DSMI finds much of log2 3 bits with true labels, none with shuffled ones.
    dsmi = _values(rows, sweep="corruption", estimator="DSMI")
    assert dsmi[0] > 0.7 and abs(dsmi[1]) < 0.3


def test_runtime_quick_grid_lists_every_solver(tmp_path):
    run_study("runtime", tmp_path, quick=True, n=60, dims=(5, 50), mine_epochs=1)
    columns, rows = _read(tmp_path / "runtime.csv")
    assert columns == ["D", "n", "estimator", "solver", "epochs", "value", "seconds"]
    for estimator in ("DSE", "DSMI"):
        assert {row["solver"] for row in rows if row["estimator"] == estimator} == set(SOLVERS)
    assert {row["estimator"] for row in rows} == {"DSE", "CSE", "DSMI", "CSMI_5", "CSMI_10", "CSMI_100", "KSG", "MINE"}
    assert (tmp_path / "runtime.png").stat().st_size > 0


def test_unknown_study_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="study must be one of"):
        run_study("nonsense", tmp_path)

"""The training studies' commands end to end on tiny generated data: population, init sweep, ImageNet."""

import csv
import math
import pathlib

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from experiments.cli import main
from experiments.population.imagenet import PAPER_CLASSES, crop_boxes, model_family, run_study, write_outputs
from experiments.population.metrics import MEASURES, correlations
from experiments.population.models import ModelSpec, build_model, representations_and_accuracy, train_model
from experiments.population.study import load_config, model_specs

from fake_datasets import write_mnist

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "population" / "mnist_cpu.yaml"


def read_rows(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_the_population_config_spans_families_depths_lengths_seeds_and_weak_models():
    specs = model_specs(load_config(CONFIG))
    assert len(specs) >= 24 and len(set(specs)) == len(specs)
    for attribute in ("family", "width", "depth", "steps", "seed"):
        assert len({getattr(spec, attribute) for spec in specs}) >= 2, attribute
    assert sum(spec.steps <= 30 or spec.width <= 2 for spec in specs) >= 4  # weak on purpose


def test_population_runs_end_to_end_on_three_tiny_models(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=64, n_test=40)
    config = {
        "data_dir": str(tmp_path / "data"),
        "train_images": 64,
        "probe_size": 30,
        "out": str(tmp_path / "out"),
        "name": "tiny",
        "models": [
            {"family": "mlp", "width": 8, "depth": 1, "steps": 2},
            {"family": "mlp", "width": 16, "depth": 2, "steps": 3, "seed": 1},
            {"family": "cnn", "width": 2, "depth": 2, "steps": 2},
        ],
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    main(["population", "--config", str(tmp_path / "tiny.yaml")])
    printed = capsys.readouterr().out
    assert "[3/3] cnn-w2-d2-s2-seed0" in printed and "Spearman" in printed
    rows = read_rows(tmp_path / "out" / "tiny_models.csv")
    assert [row["family"] for row in rows] == ["mlp", "mlp", "cnn"]
    for row in rows:
        assert 0.0 <= float(row["accuracy"]) <= 1.0
        assert 0.0 <= float(row["dse"]) <= math.log2(30) + 1e-9
        assert float(row["sigma"]) == pytest.approx(math.sqrt(int(row["dim_z"])))  # sigma = sqrt(dim Z)
        assert all(math.isfinite(float(row[key])) for key in MEASURES)
    table = read_rows(tmp_path / "out" / "tiny_correlations.csv")
    assert [(row["group"], row["measure"]) for row in table] == [
        (g, m) for g in ("all", "cnn", "mlp") for m in MEASURES
    ]
    assert {row["group"]: row["n"] for row in table} == {"all": "3", "cnn": "1", "mlp": "2"}
    assert (tmp_path / "out" / "tiny.png").stat().st_size > 10_000


def test_correlations_follow_a_known_relation_and_refuse_constant_columns():
    accuracy = np.linspace(0.1, 0.9, 8)
    rows = [
        {"accuracy": a, "dse": a**3, "dsmi_y": 2.0, "dsmi_x": -a, "cse": math.nan, "csmi_y": a, "rankme": a}
        for a in accuracy
    ]
    table = {entry["measure"]: entry for entry in correlations(rows)}
    assert table["dse"]["spearman_rho"] == pytest.approx(1.0) and 0.9 < table["dse"]["pearson_r"] < 1.0
    assert table["dse"]["spearman_p"] < 1e-3
    assert table["dsmi_x"]["pearson_r"] == pytest.approx(-1.0)
    assert math.isnan(table["dsmi_y"]["pearson_r"]) and table["cse"]["n"] == 0


def test_correlations_within_each_family_expose_a_relation_made_by_the_families_alone():
    # Within each family the measure falls with accuracy; pooled, it rises, because one family
    # is low on both. The per-family rows must show what the pooled row hides.
    rows = [{"family": "cnn", "accuracy": 0.2 + 0.01 * i, "dse": 1.0 - 0.1 * i} for i in range(5)]
    rows += [{"family": "mlp", "accuracy": 0.8 + 0.01 * i, "dse": 5.0 - 0.1 * i} for i in range(5)]
    for row in rows:
        row.update({key: row["dse"] for key in MEASURES if key != "dse"})
    table = {(entry["group"], entry["measure"]): entry for entry in correlations(rows)}
    assert table["all", "dse"]["pearson_r"] > 0.8 and table["all", "dse"]["n"] == 10
    assert table["cnn", "dse"]["spearman_rho"] == pytest.approx(-1.0)
    assert table["mlp", "dse"]["spearman_rho"] == pytest.approx(-1.0) and table["mlp", "dse"]["n"] == 5


def test_a_trained_model_beats_its_untrained_twin_on_separable_data():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.randn(200, 1, 8, 8, generator=generator) + 3.0 * labels.view(-1, 1, 1, 1)
    spec = ModelSpec("cnn", width=4, depth=1, steps=40)
    untrained, trained = build_model(spec, (1, 8, 8), 2), build_model(spec, (1, 8, 8), 2)
    assert torch.equal(untrained.head.weight, trained.head.weight)  # the seed fixes the init
    rng_state = torch.get_rng_state()
    train_model(trained, images, labels, spec.steps, spec.seed, batch_size=32, lr=1e-2)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is untouched
    z, accuracy = representations_and_accuracy(trained, images, labels)
    assert z.shape == (200, 4) and accuracy > 0.95
    assert accuracy > representations_and_accuracy(untrained, images, labels)[1]


def test_model_specs_are_validated():
    with pytest.raises(ValueError, match="family must be one of"):
        ModelSpec("rnn", 4, 1, 1)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        ModelSpec("mlp", 4, 0, 1)
    with pytest.raises(ValueError, match="halves 4x4 images 3 times"):
        build_model(ModelSpec("cnn", 4, 3, 1), (1, 4, 4))


def test_init_sweep_runs_from_tiny_mnist_files_and_dse_rises_with_the_std(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=4, n_test=12)
    main(
        [
            "init-sweep",
            "--data-dir",
            str(tmp_path / "data"),
            "--n-images",
            "12",
            "--image-size",
            "32",
            "--stds",
            "0.001",
            "0.1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    rows = read_rows(tmp_path / "out" / "init_sweep.csv")
    assert [float(row["conv_std"]) for row in rows] == [0.001, 0.1] and rows[0]["n"] == "12"
    assert float(rows[0]["dse"]) < 0.1  # Z shrinks to a point
    assert float(rows[1]["dse"]) > 0.95 * math.log2(12)  # Z spreads far beyond sigma
    assert (tmp_path / "out" / "init_sweep.png").stat().st_size > 10_000
    assert "conv std 0.1" in capsys.readouterr().out


@pytest.fixture
def tiny_imagenet_val(tmp_path):
    rng = np.random.default_rng(0)
    for label, wnid in enumerate(PAPER_CLASSES):
        (tmp_path / "val" / wnid).mkdir(parents=True)
        for index in range(2):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) // (1 + label % 3)
            Image.fromarray(pixels).save(tmp_path / "val" / wnid / f"ILSVRC2012_val_{index:08d}.JPEG")
    return tmp_path / "val"


def _plain_model(name, pretrained):
    """A timm-free stand-in: the study's code path without the optional dependency."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(len(name))
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    return model, (24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_imagenet_study_pipeline_without_timm(tiny_imagenet_val, tmp_path):
    accuracies = {"a": 0.5, "bb": 0.6, "ccc": 0.7}
    rows = run_study(
        tiny_imagenet_val, ["a", "bb", "ccc", "dddd"], accuracies, factory=_plain_model, per_class=2, copies=2
    )
    assert [row["model"] for row in rows] == ["a", "bb", "ccc", "dddd"] and math.isnan(rows[3]["accuracy"])
    assert all(row["family"] == "cnn" and row["sigma"] == pytest.approx(math.sqrt(8)) for row in rows)
    assert all(0.0 <= row["dse"] <= math.log2(80) for row in rows)
    paths = write_outputs(rows, tmp_path / "out")
    assert len(read_rows(paths["models"])) == 4 and len(read_rows(paths["correlations"])) == len(MEASURES)
    with pytest.raises(FileNotFoundError, match="3 needed"):
        run_study(tiny_imagenet_val, ["a"], {}, factory=_plain_model, per_class=3)


def test_imagenet_copies_are_fixed_by_the_seed(tiny_imagenet_val):
    images = [Image.open(next((tiny_imagenet_val / wnid).glob("*"))) for wnid in PAPER_CLASSES[:2]]
    assert crop_boxes(images, 3, seed=1) == crop_boxes(images, 3, seed=1) != crop_boxes(images, 3, seed=2)
    assert len(crop_boxes(images, 3)) == 6


def test_imagenet_study_with_random_timm_models(tiny_imagenet_val, tmp_path, capsys):
    timm = pytest.importorskip("timm")
    (tmp_path / "acc.csv").write_text("model,top1\ntest_resnet,61.0\ntest_vit,55.5\ntest_efficientnet,70.25\n")
    main_args = [
        "--imagenet-val",
        str(tiny_imagenet_val),
        "--accuracy-csv",
        str(tmp_path / "acc.csv"),
        "--all-from-csv",
        "--no-pretrained",
        "--per-class",
        "2",
        "--copies",
        "1",
        "--out",
        str(tmp_path / "out"),
    ]
    from experiments.population.imagenet import main as imagenet_main

    imagenet_main(main_args)
    rows = {row["model"]: row for row in read_rows(tmp_path / "out" / "imagenet_models.csv")}
    assert rows["test_vit"]["family"] == "transformer" and rows["test_resnet"]["family"] == "cnn"
    assert float(rows["test_efficientnet"]["accuracy"]) == pytest.approx(0.7025)
    assert model_family(timm.create_model("test_vit", pretrained=False)) == "transformer"
    assert (tmp_path / "out" / "imagenet.png").stat().st_size > 10_000
    assert "Pearson" in capsys.readouterr().out

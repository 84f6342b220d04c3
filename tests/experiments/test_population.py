"""The population studies end to end on tiny generated data (MNIST and ImageNet), their statistics and the rule."""

import csv
import math
import pathlib

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy import stats

from dse_experiments.cli import main
from dse_experiments.population import statistics
from dse_experiments.population.choice import choose_default, format_choice
from dse_experiments.population.imagenet import PAPER_CLASSES, crop_boxes, model_family, run_study, write_outputs
from dse_experiments.population.metrics import (
    BANDWIDTHS,
    CORRELATION_COLUMNS,
    MEASURES,
    bandwidth_label,
    correlation_table,
)
from dse_experiments.population.models import (
    FAMILIES,
    ModelSpec,
    build_model,
    representations_and_accuracy,
    train_model,
)
from dse_experiments.population.statistics import bootstrap_interval, partial_spearman, spearman
from dse_experiments.population.study import load_config, model_specs

from fake_datasets import write_mnist

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "population" / "mnist_cpu.yaml"


def read_rows(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_the_population_config_has_three_families_of_fifteen_and_every_bandwidth():
    config = load_config(CONFIG)
    specs = model_specs(config)
    assert len(set(specs)) == len(specs)
    assert {family: sum(spec.family == family for spec in specs) >= 15 for family in FAMILIES} == dict.fromkeys(
        FAMILIES, True
    )
    for family in FAMILIES:
        members = [spec for spec in specs if spec.family == family]
        for attribute in ("width", "depth", "steps", "seed"):
            assert len({getattr(spec, attribute) for spec in members}) >= 2, (family, attribute)
    assert sum(spec.steps <= 30 or spec.width <= 2 for spec in specs) >= 6  # weak on purpose
    assert config["sigmas"] == ["sqrt_dim", "10", "median", "rms", "knn"] and config["bootstrap"] >= 2000


def test_population_config_errors_name_the_key(tmp_path):
    (tmp_path / "old.yaml").write_text("sigma: sqrt_dim\n")
    with pytest.raises(ValueError, match=r"unknown keys \['sigma'\]"):
        load_config(tmp_path / "old.yaml")
    (tmp_path / "bad.yaml").write_text("sigmas: [sqrt_dim, -1]\n")
    with pytest.raises(ValueError, match="sigma must be a number > 0, 'sqrt_dim' or one of"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "threads.yaml").write_text("threads: 0\n")
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        load_config(tmp_path / "threads.yaml")
    (tmp_path / "few.yaml").write_text("bootstrap: 10\n")
    with pytest.raises(ValueError, match="bootstrap must be an integer >= 100"):
        load_config(tmp_path / "few.yaml")


def test_population_runs_end_to_end_on_three_families_and_every_bandwidth(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=64, n_test=40)
    config = {
        "data_dir": str(tmp_path / "data"),
        "train_images": 64,
        "probe_size": 30,
        "bootstrap": 200,
        "out": str(tmp_path / "out"),
        "name": "tiny",
        "models": [
            {"family": "mlp", "width": 8, "depth": 1, "steps": 2},
            {"family": "mlp", "width": 16, "depth": 2, "steps": 3, "seed": 1},
            {"family": "cnn", "width": 2, "depth": 2, "steps": 2},
            {"family": "vit", "width": 8, "depth": 1, "steps": 2},
        ],
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    main(["population", "--config", str(tmp_path / "tiny.yaml")])
    printed = capsys.readouterr().out
    assert "[4/4] vit-w8-d1-s2-seed0" in printed and "min left" in printed and "chosen:" in printed
    rows = read_rows(tmp_path / "out" / "tiny_models.csv")
    assert [(row["model"], row["sigma"]) for row in rows] == [
        (model, sigma) for model in ("mlp-w8-d1-s2-seed0", "mlp-w16-d2-s3-seed1", "cnn-w2-d2-s2-seed0",
                                     "vit-w8-d1-s2-seed0") for sigma in BANDWIDTHS
    ]  # fmt: skip
    for row in rows:
        assert 0.0 <= float(row["accuracy"]) <= 1.0
        assert 0.0 <= float(row["dse"]) <= math.log2(30) + 1e-9
        assert all(math.isfinite(float(row[key])) for key in MEASURES)
        assert float(row["scale"]) == pytest.approx(float(row["rms_radius"]) / float(row["sigma_value"]))
        expected = {"sqrt_dim": math.sqrt(int(row["dim_z"])), "10": 10.0}.get(row["sigma"])
        if expected is not None:
            assert float(row["sigma_value"]) == pytest.approx(expected)
    for model in {row["model"] for row in rows}:  # the sigma-free measures repeat on a model's rows
        mine = [row for row in rows if row["model"] == model]
        assert len({(row["cse"], row["csmi_y"], row["rankme"], row["feature_norm"]) for row in mine}) == 1
        assert len({row["dse"] for row in mine}) > 1
    with open(tmp_path / "out" / "tiny_correlations.csv") as stream:
        assert stream.readline().strip() == "sigma,measure,family,n_models,spearman,ci_low,ci_high,partial_spearman"
    table = read_rows(tmp_path / "out" / "tiny_correlations.csv")
    assert [(row["sigma"], row["measure"], row["family"]) for row in table] == [
        (s, m, f) for s in BANDWIDTHS for m in MEASURES for f in ("mlp", "cnn", "vit", "all")
    ]
    assert {row["family"]: row["n_models"] for row in table} == {"mlp": "2", "cnn": "1", "vit": "1", "all": "4"}
    for row in table:
        if row["family"] == "all":
            assert float(row["ci_low"]) <= float(row["spearman"]) <= float(row["ci_high"]) or row["spearman"] == "nan"
    choice = (tmp_path / "out" / "tiny_choice.txt").read_text()
    assert choice.startswith("Rule: the bandwidth among 10, median, rms, knn") and "chosen:" in choice
    for figure in ("tiny.png", "tiny_scatter.png"):
        assert (tmp_path / "out" / figure).stat().st_size > 10_000


def _long_rows(per_family: int = 12, seed: int = 0) -> list[dict]:
    """Stand-in model rows: DSMI tracks accuracy under "good", only the feature norm under "norm"."""
    rng = np.random.default_rng(seed)
    rows = []
    for family in ("mlp", "cnn"):
        for index in range(per_family):
            accuracy, norm = rng.uniform(0.1, 0.99), rng.uniform(1.0, 100.0)
            shared = {"model": f"{family}{index}", "family": family, "accuracy": accuracy, "feature_norm": norm}
            shared.update(cse=rng.normal(), csmi_y=accuracy + rng.normal(0, 0.2), rankme=rng.normal())
            good = {"dse": -accuracy, "dsmi_y": accuracy + rng.normal(0, 0.05), "dsmi_x": rng.normal()}
            bad = {"dse": norm, "dsmi_y": np.log(norm), "dsmi_x": rng.normal()}
            rows += [{**shared, "sigma": "good", **good}, {**shared, "sigma": "norm", **bad}]
    return rows


def test_correlation_table_is_long_with_pooled_rows_and_repeats_the_sigma_free_measures():
    rows = _long_rows()
    table = correlation_table(rows, resamples=300)
    assert list(table[0]) == list(CORRELATION_COLUMNS)
    assert len(table) == 2 * len(MEASURES) * 3
    index = {(e["sigma"], e["measure"], e["family"]): e for e in table}
    assert index["good", "dse", "all"]["n_models"] == 24 and index["good", "dse", "cnn"]["n_models"] == 12
    assert index["good", "dse", "mlp"]["spearman"] == pytest.approx(-1.0)
    assert index["good", "dsmi_y", "cnn"]["spearman"] > 0.9
    for key in ("cse", "csmi_y", "rankme"):
        for family in ("mlp", "cnn", "all"):
            assert index["good", key, family] == {**index["norm", key, family], "sigma": "good"}
    # Under "norm" DSMI follows the feature norm only: its partial Spearman given the norm is undefined
    # (nothing left once the norm's ranks are removed), while "good"'s stays high.
    assert math.isnan(index["norm", "dsmi_y", "all"]["partial_spearman"])
    assert index["good", "dsmi_y", "all"]["partial_spearman"] > 0.9


def test_spearman_and_its_bootstrap_interval_cover_the_estimate_and_shrink_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (15, 60, 240):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        rho = spearman(x, y)
        assert rho == pytest.approx(stats.spearmanr(x, y)[0])
        low, high = bootstrap_interval(x, y, resamples=2000, seed=0)
        assert low < rho < high and -1.0 <= low and high <= 1.0
        assert bootstrap_interval(x, y, resamples=2000, seed=0) == (low, high)  # seeded
        widths.append(high - low)
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2]  # about 1 / sqrt(n)
    assert math.isnan(spearman([1, 2], [3, 4])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert all(math.isnan(value) for value in bootstrap_interval([1, 2], [2, 1]))


def test_a_bootstrap_that_ignores_n_is_caught(monkeypatch):
    # The broken variant: every resample draws 10 pairs whatever n is, so its interval cannot shrink.
    def fixed_size(n, resamples, seed):
        return np.random.default_rng(seed).integers(0, n, size=(resamples, 10))

    monkeypatch.setattr(statistics, "_resample", fixed_size)
    rng = np.random.default_rng(1)
    x_small, x_large = rng.normal(size=15), rng.normal(size=240)
    small = bootstrap_interval(x_small, x_small + rng.normal(size=15), seed=0)
    large = bootstrap_interval(x_large, x_large + rng.normal(size=240), seed=0)
    assert not (small[1] - small[0]) > 2.25 * (large[1] - large[0])


def test_partial_spearman_is_the_hand_computed_rank_partial_correlation(monkeypatch):
    x = [0.3, 12.0, 4.0, 4.0, 150.0, 2.5, 7.0]
    y = [0.11, 0.35, 0.30, 0.62, 0.90, 0.20, 0.41]
    norm = [1.0, 30.0, 5.0, 9.0, 8.0, 2.0, 1000.0]
    # Ranks by hand (the tied 4.0s share 3.5).
    rx = np.array([1, 6, 3.5, 3.5, 7, 2, 5])
    ry = np.array([1, 4, 3, 6, 7, 2, 5])
    rc = np.array([1, 6, 3, 5, 4, 2, 7])
    r = np.corrcoef([rx, ry, rc])
    expected = (r[0, 1] - r[0, 2] * r[1, 2]) / math.sqrt((1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2))
    assert partial_spearman(x, y, norm) == pytest.approx(expected, abs=1e-12)
    assert partial_spearman(x + [math.nan], y + [0.5], norm + [3.0]) == pytest.approx(expected, abs=1e-12)
    assert spearman(x, y) == pytest.approx(r[0, 1])
    # The broken variant, a partial Pearson correlation of the raw values, misses the rank value.
    monkeypatch.setattr(statistics, "_ranks", lambda values: np.asarray(values, dtype=float))
    assert abs(partial_spearman(x, y, norm) - expected) > 0.05


def _choice_table(spearmans: dict, measure: str = "dsmi_y") -> list[dict]:
    return [
        {"sigma": sigma, "measure": measure, "family": family, "spearman": value}
        for sigma, by_family in spearmans.items()
        for family, value in by_family.items()
    ]


def test_the_default_is_the_bandwidth_with_the_best_worst_family_over_dse_and_dsmi():
    mi = _choice_table(
        {
            "sqrt_dim": {"mlp": 0.10, "cnn": 0.97, "vit": 0.80, "all": 0.81},
            "10": {"mlp": 0.20, "cnn": 0.95, "vit": 0.50, "all": 0.70},
            "median": {"mlp": 0.60, "cnn": 0.90, "vit": 0.70, "all": 0.75},  # best MI minimum, but its DSE fails
            "rms": {"mlp": 0.55, "cnn": 0.99, "vit": 0.85, "all": 0.90},
            "knn": {"mlp": 0.60, "cnn": 0.80, "vit": math.nan, "all": 0.95},  # a NaN family counts as -1
        }
    )
    dse = _choice_table(
        {label: {"mlp": 0.9, "cnn": 0.9, "vit": 0.9, "all": 0.9} for label in ("sqrt_dim", "10", "rms", "knn")}
        | {"median": {"mlp": 0.9, "cnn": 0.15, "vit": 0.9, "all": 0.5}},
        measure="dse",
    )
    choice = choose_default(mi + dse)
    assert choice["chosen"] == "rms" and choice["passes"]
    assert choice["worst"]["median"] == ("cnn", "dse", 0.15) and choice["worst"]["knn"] == ("vit", "dsmi_y", -1.0)
    assert choice["worst_mi"]["median"] == ("mlp", 0.60)
    text = format_choice(choice)
    assert "chosen: rms" in text and "at least as good as sqrt_dim" in text
    # On DSMI(Z; Y) alone the rule would pick median: the DSE rows are what move it.
    assert choose_default(mi + dse, keys=("dsmi_y",))["chosen"] == "median"
    tied = _choice_table(
        {"sqrt_dim": {"a": 0.9, "all": 0.0}, "10": {"a": 0.5, "all": 0.1}, "rms": {"a": 0.5, "all": 0.3}}
    )
    tied_dse = _choice_table({label: {"a": 0.9, "all": 0.9} for label in ("sqrt_dim", "10", "rms")}, measure="dse")
    worse = choose_default(tied + tied_dse, candidates=("10", "rms"))
    assert worse["chosen"] == "rms" and not worse["passes"] and "WORSE than sqrt_dim" in format_choice(worse)
    with pytest.raises(ValueError, match=r"no dse rows for \['knn'\]"):
        choose_default(tied + tied_dse, candidates=("10", "knn"))


def test_bandwidth_labels_spell_each_bandwidth_as_passed():
    assert [bandwidth_label(s) for s in ("sqrt_dim", 10, 10.0, "10", 2.5, "median", "rms", "knn")] == [
        "sqrt_dim", "10", "10", "10", "2.5", "median", "rms", "knn"
    ]  # fmt: skip
    for bad in (0, -1.0, "wide", True, math.inf):
        with pytest.raises(ValueError, match="sigma must be a number > 0"):
            bandwidth_label(bad)


def test_vit_models_pool_their_tokens_and_learn_separable_data():
    spec = ModelSpec("vit", width=16, depth=2, steps=60)
    model = build_model(spec, (1, 28, 28))
    assert model.features.embed.kernel_size == (7, 7) and model.features.position.shape == (1, 16, 16)
    assert torch.equal(build_model(spec, (1, 28, 28)).head.weight, model.head.weight)  # seeded init
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 2
    images = torch.randn(120, 1, 8, 8, generator=generator) + 1.5 * labels.view(-1, 1, 1, 1)
    small = build_model(spec, (1, 8, 8), 2)
    assert small.features.embed.kernel_size == (4, 4)  # 7 does not divide 8
    untrained_accuracy = representations_and_accuracy(small, images, labels)[1]
    rng_state = torch.get_rng_state()
    train_model(small, images, labels, spec.steps, spec.seed, batch_size=32, lr=3e-3)
    assert torch.equal(torch.get_rng_state(), rng_state)
    z, accuracy = representations_and_accuracy(small, images, labels)
    assert z.shape == (120, 16) and accuracy > 0.95 and accuracy > untrained_accuracy
    with pytest.raises(ValueError, match="multiple of its 3 heads"):
        build_model(ModelSpec("vit", 56, 1, 1), (1, 28, 28))


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
    assert [(row["model"], row["sigma"]) for row in rows] == [
        (m, s) for m in ("a", "bb", "ccc", "dddd") for s in BANDWIDTHS
    ]
    assert math.isnan(rows[-1]["accuracy"]) and all(row["family"] == "cnn" for row in rows)
    assert [row["sigma_value"] for row in rows if row["sigma"] == "sqrt_dim"] == [pytest.approx(math.sqrt(8))] * 4
    assert all(0.0 <= row["dse"] <= math.log2(80) for row in rows)
    paths = write_outputs(rows, tmp_path / "out")
    assert len(read_rows(paths["models"])) == 4 * len(BANDWIDTHS)
    table = read_rows(paths["correlations"])
    assert len(table) == len(BANDWIDTHS) * len(MEASURES) * 2 and {row["n_models"] for row in table} == {"3"}
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
    from dse_experiments.population.imagenet import main as imagenet_main

    imagenet_main(main_args)
    rows = {row["model"]: row for row in read_rows(tmp_path / "out" / "imagenet_models.csv")}
    assert rows["test_vit"]["family"] == "transformer" and rows["test_resnet"]["family"] == "cnn"
    assert float(rows["test_efficientnet"]["accuracy"]) == pytest.approx(0.7025)
    assert model_family(timm.create_model("test_vit", pretrained=False)) == "transformer"
    assert (tmp_path / "out" / "imagenet.png").stat().st_size > 10_000
    assert "Spearman" in capsys.readouterr().out

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dse_experiments.backbones import BACKBONES, build_backbone, feature_width, paper_init
from dse_experiments.losses import nt_xent, nt_xent_paper
from dse_experiments.module import ExperimentModule, knn_predict, warmup_cosine
from dse_experiments.plot import labelled_histories, summary_rows
from dse_experiments.plot import main as plot_main


@pytest.mark.parametrize("loss", [nt_xent, nt_xent_paper])
def test_contrastive_losses_are_lower_for_matched_views_than_for_random_pairs(loss):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(32, 16, generator=generator)
    first = images + 0.05 * torch.randn(32, 16, generator=generator)
    second = images + 0.05 * torch.randn(32, 16, generator=generator)
    shuffled = second[torch.randperm(32, generator=generator)]
    assert loss(first, second) < loss(first, shuffled) - 0.5


def test_standard_nt_xent_matches_its_definition_on_a_tiny_case():
    first, second = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # View 0's candidates: views 1, 2, 3 with cosine 0, 1, 0; its partner is view 2.
    expected = -math.log(math.exp(1 / 0.5) / (math.exp(0) + math.exp(1 / 0.5) + math.exp(0)))
    assert float(nt_xent(first, second, temperature=0.5)) == pytest.approx(expected, rel=1e-6)


def test_linear_probe_learns_a_separable_toy_problem():
    module = ExperimentModule(
        backbone="mlp", image_size=4, in_channels=1, num_classes=2, regime="contrastive", linear_probe_epochs=30
    )
    # The paper's N(0, 0.001) Linear init makes an untrained MLP's features ~1e-6; the probe
    # is tested on informative features: the pixels themselves.
    module.backbone, module.head = nn.Flatten(), nn.Linear(16, 2)
    nn.init.zeros_(module.head.weight)  # a head that knows nothing (a random one may already separate the classes)
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.randn(200, 1, 4, 4, generator=generator) * 0.3 + (labels.float() * 2 - 1).view(-1, 1, 1, 1)
    loader = DataLoader(TensorDataset(images, labels), batch_size=32)
    with torch.no_grad():
        before = (module(images).argmax(1) == labels).float().mean()
    backbone_before = [p.clone() for p in module.backbone.parameters()]
    module.fit_linear_probe(loader)
    with torch.no_grad():
        after = (module(images).argmax(1) == labels).float().mean()
    assert after >= 0.95 and after > before
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, module.backbone.parameters()))  # frozen


def test_warmup_then_cosine_to_zero():
    factors = [warmup_cosine(epoch, 10, 200) for epoch in range(201)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[105] == pytest.approx(0.5)
    assert factors[200] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_paper_init_draws_linear_weights_from_n_0_0001_and_conv_weights_as_asked():
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(400, 300))
    paper_init(model)
    assert float(model[3].weight.std()) == pytest.approx(0.001, rel=0.05)
    assert float(model[0].weight.std()) == pytest.approx(math.sqrt(2 / 27), rel=0.1)  # Kaiming, fan-in 27
    assert torch.equal(model[1].weight, torch.ones(64)) and torch.equal(model[0].bias, torch.zeros(64))
    paper_init(model, conv_std=0.1)
    assert float(model[0].weight.std()) == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_and_reports_its_feature_width(name):
    if name == "xcit":
        pytest.importorskip("timm")
    channels = 1 if name in ("small_cnn", "mlp") else 3
    model, width = build_backbone(name, image_size=32, in_channels=channels)
    assert feature_width(model, 32, channels) == width


def test_paper_backbones_refuse_one_channel_images():
    with pytest.raises(ValueError, match="three_channels"):
        build_backbone("resnet50", 32, 1)


def test_the_default_monitor_layer_is_z_in_the_contrastive_regime():
    from dse_callback.probe.capture import find_layer

    module = ExperimentModule(backbone="small_cnn", image_size=8, in_channels=1, regime="contrastive")
    name, _ = find_layer(module, None)
    assert name == "head" and module.head.in_features == 128


def test_knn_predict_votes_among_the_most_cosine_similar_features():
    bank = torch.tensor([[10.0, 0.0], [9.0, 1.0], [8.0, -1.0], [0.8, 0.6], [0.6, 0.8], [0.7, 0.7]])
    bank_labels = torch.tensor([0, 0, 0, 1, 1, 1])
    # Near (1, 0.05) in angle but near class 1's small points in distance: cosine must say class 0.
    query = torch.tensor([[1.0, 0.05], [0.1, 0.1], [3.0, 2.9]])
    assert knn_predict(query, bank, bank_labels, k=3, num_classes=2).tolist() == [0, 1, 1]
    euclidean = torch.cdist(query, bank).topk(3, largest=False).indices
    assert bank_labels[euclidean[0]].mode().values.item() == 1  # the broken (Euclidean) variant differs
    # k larger than the bank is capped; a 2-2 tie goes to the more similar pair.
    tie_bank = torch.tensor([[1.0, 0.0], [0.9, 0.3], [0.0, 1.0], [-0.2, 1.0]])
    tie_labels = torch.tensor([0, 0, 1, 1])
    assert knn_predict(torch.tensor([[1.0, 0.2]]), tie_bank, tie_labels, k=50, num_classes=3).tolist() == [0]
    assert knn_predict(torch.tensor([[0.1, 1.0]]), tie_bank, tie_labels, k=4, num_classes=3).tolist() == [1]


def test_the_contrastive_module_logs_a_knn_accuracy_where_the_linear_probe_runs():
    module = ExperimentModule(backbone="mlp", image_size=4, in_channels=1, num_classes=2, regime="contrastive")
    module.backbone, module.head = nn.Flatten(), nn.Linear(16, 2)
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.randn(200, 1, 4, 4, generator=generator) * 0.3 + (labels.float() * 2 - 1).view(-1, 1, 1, 1)
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    module.validation_step((images[:50], labels[:50]), 0)
    assert "val_acc" in logged and "val_knn_acc" not in logged  # no bank before the first linear probe
    module.fit_linear_probe(DataLoader(TensorDataset(images[50:], labels[50:]), batch_size=32))
    module.validation_step((images[:50], labels[:50]), 0)
    assert logged["val_knn_acc"] == 1.0  # two well separated classes
    flipped = (1 - labels[:50], labels[:50])
    module.validation_step((images[:50], flipped[0]), 0)
    assert logged["val_knn_acc"] == 0.0  # it scores against the batch's labels
    off = ExperimentModule(backbone="mlp", image_size=4, in_channels=1, num_classes=2, regime="contrastive", knn_k=0)
    off.backbone, off.head = nn.Flatten(), nn.Linear(16, 2)
    off.log = module.log
    logged.clear()
    off.fit_linear_probe(DataLoader(TensorDataset(images[50:], labels[50:]), batch_size=32))
    off.validation_step((images[:50], labels[:50]), 0)
    assert "val_acc" in logged and "val_knn_acc" not in logged
    with pytest.raises(ValueError, match="knn_k must be an integer >= 0"):
        ExperimentModule(backbone="mlp", image_size=4, in_channels=1, regime="contrastive", knn_k=-1)


def _write_history(path, bandwidth, sigma, values):
    columns = "epoch,representation,layer,dse,dsmi_y,dsmi_x,sigma,bandwidth,scale,val_acc,val_knn_acc"
    lines = [columns] + [
        f"{epoch},Z,head (input),{dse},{dse / 2},{dse / 3},{sigma},{bandwidth},{13.9 / sigma},{acc},{knn}"
        for epoch, dse, acc, knn in values
    ]
    path.write_text("\n".join(lines) + "\n")


def test_several_monitors_in_one_run_are_told_apart_in_the_plots_and_the_table(tmp_path):
    run = tmp_path / "presets" / "version_0"
    run.mkdir(parents=True)
    _write_history(run / "dse_history.csv", "10", 10.0, [(0, 0.47, "", ""), (2, 0.30, 0.90, 0.93)])
    _write_history(run / "dse_history_median.csv", "median", 4.2, [(0, 3.1, "", ""), (2, 3.4, 0.90, 0.93)])
    assert [label for label, _ in labelled_histories([run])] == ["version_0 Z", "version_0 median"]
    single = tmp_path / "single"
    single.mkdir()
    _write_history(single / "dse_history.csv", "10", 10.0, [(0, 1.0, "", "")])
    assert [label for label, _ in labelled_histories([single])] == ["single"]
    rows = summary_rows([run])
    assert [(row["run"], row["epoch"], row["bandwidth"]) for row in rows] == [
        ("version_0 Z", 0, "10"), ("version_0 Z", 2, "10"), ("version_0 median", 0, "median"),
        ("version_0 median", 2, "median"),
    ]  # fmt: skip
    assert rows[3]["dse"] == 3.4 and rows[3]["dsmi_y"] == 1.7 and rows[3]["val_knn_acc"] == 0.93
    assert math.isnan(rows[0]["val_acc"]) and rows[2]["sigma"] == 4.2
    plot_main([str(run), "--out", str(tmp_path / "curves.png"), "--table", str(tmp_path / "table.csv")])
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert (tmp_path / "table.csv").read_text().splitlines()[0] == (
        "run,representation,epoch,bandwidth,dse,dsmi_y,dsmi_x,sigma,scale,val_acc,val_knn_acc"
    )

"""The monitor with scale-free bandwidths: one resolution per Z, the scale diagnostic, the
saturation trend, the entropy profile image, and invariance to a rescaled hidden layer."""

import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from test_monitor import fit, read_csv, trainer_for
from torch import nn

from dse_callback import Bandwidth, BandwidthWarning, DSEMonitor, DSETracker
from dse_callback.kernel.geometry.scales import rms_radius
from dse_callback.measure import measurer as measurer_module
from dse_callback.measure import metrics as metrics_module

from lightning_helpers import blob_data, make_classes

TinyClassifier, BlobData = make_classes(pl)
METRICS = ("dse", "dsmi_y", "dsmi_x")
SCALE_FREE = ("median", "rms", "knn")


def relu_network(a: float) -> nn.Sequential:
    """Linear -> ReLU -> Linear in float64, the first layer scaled by a and the second by 1/a:
    the same function for every a > 0 (ReLU(a u) = a ReLU(u)), its hidden layer a times larger."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)).double()
    with torch.no_grad():
        network[0].weight.mul_(a)
        network[0].bias.mul_(a)
        network[2].weight.div_(a)
    return network.eval()


def hidden_values(a: float, sigma) -> dict[str, float]:
    """DSE, DSMI(Z; Y), DSMI(Z; X) and the scale of the hidden layer (the input of the last Linear)."""
    x, y = blob_data(90, seed=2)
    tracker = DSETracker(probe=(x.double(), y), layer="2", metrics=METRICS, sigma=sigma, precision="float64")
    return tracker.measure(relu_network(a), epoch=0)


@pytest.mark.parametrize("sigma", SCALE_FREE)
def test_a_rescaled_relu_network_gives_identical_monitor_values_under_scale_free_presets(sigma):
    x = blob_data(90, seed=2)[0].double()
    assert torch.allclose(relu_network(1.0)(x), relu_network(250.0)(x), atol=1e-9)  # the same function
    reference = hidden_values(1.0, sigma)
    for a in (1e-3, 250.0):
        values = hidden_values(a, sigma)
        for key in ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X", "dse/Z_scale"):
            assert values[key] == pytest.approx(reference[key], abs=1e-6), (sigma, a, key)
    assert 0.5 < reference["dse/Z"] < math.log2(90) - 0.5  # not saturated: the values carry structure


@pytest.mark.filterwarnings("ignore::dse_callback.BandwidthWarning")  # the rescaled layer saturates sigma = 10
def test_a_fixed_sigma_is_not_invariant_to_the_rescaled_layer():
    # The broken variant of the property above: a bandwidth that ignores the scale of Z.
    reference, rescaled = hidden_values(1.0, 10.0), hidden_values(250.0, 10.0)
    assert abs(rescaled["dse/Z"] - reference["dse/Z"]) > 0.5
    assert abs(rescaled["dsmi/Z_Y"] - reference["dsmi/Z_Y"]) > 0.05
    assert rescaled["dse/Z_scale"] == pytest.approx(250.0 * reference["dse/Z_scale"], rel=1e-9)


def test_the_bandwidth_is_resolved_once_per_layer_and_shared_by_every_metric(monkeypatch):
    resolved, seen = [], []
    original = measurer_module.resolve_bandwidth

    def counting(points, sigma):
        resolved.append(original(points, sigma))
        return resolved[-1]

    def spying(function):
        def spy(z, *args, **kwargs):
            seen.append(kwargs["sigma"] if "sigma" in kwargs else args[0])
            return function(z, *args, **kwargs)

        return spy

    monkeypatch.setattr(measurer_module, "resolve_bandwidth", counting)
    for name in ("diffusion_spectral_entropy", "diffusion_spectral_mutual_information"):
        monkeypatch.setattr(metrics_module, name, spying(getattr(metrics_module, name)))
    x, y = blob_data(60, seed=1)
    tracker = DSETracker(probe=(x, y), layers=["backbone.0", "head"], metrics=METRICS, sigma="knn")
    tracker.measure(TinyClassifier(), epoch=0)
    assert len(resolved) == 2  # one per layer
    assert len(seen) == 6 and all(s is resolved[0] for s in seen[:3]) and all(s is resolved[1] for s in seen[3:])
    assert resolved[0].local is not None and len(resolved[0].local) == 60  # knn: the full set's local scales


def test_history_records_the_resolved_sigma_the_preset_and_the_scale(tmp_path):
    x, y = blob_data(60, seed=1)
    path = tmp_path / "history.csv"
    model = TinyClassifier().eval()  # no dropout in the radius below either
    for sigma, label in (("rms", "rms"), (10.0, "10"), (Bandwidth("rms", scale=2.0), None)):
        tracker = DSETracker(probe=(x, y), metrics=("dse",), sigma=sigma, history_path=str(path))
        values = tracker.measure(model, epoch=0)
        row = read_csv(path)[0]
        radius = rms_radius(model.backbone(x).detach())
        assert float(row["sigma"]) == pytest.approx({"rms": radius, "10": 10.0}.get(label, 2 * radius), rel=1e-9)
        assert float(row["scale"]) == pytest.approx(radius / float(row["sigma"]), rel=1e-9)
        assert values["dse/Z_scale"] == pytest.approx(float(row["scale"]), rel=1e-9)
        if label is not None:
            assert row["bandwidth"] == label
    assert row["bandwidth"] != "rms" and "2" in row["bandwidth"]  # a Bandwidth spells its multiplier


def test_the_monitor_logs_the_scale_and_an_async_run_refuses_to_watch_it(tmp_path):
    trainer, _ = fit(tmp_path, DSEMonitor(sigma="rms", metrics=("dse",)), max_epochs=1)
    assert float(trainer.callback_metrics["dse/Z_scale"]) == pytest.approx(1.0, rel=1e-6)  # sigma is the radius
    history = read_csv(f"{trainer.log_dir}/dse_history.csv")
    assert {row["bandwidth"] for row in history} == {"rms"}
    watcher = EarlyStopping(monitor="dse/Z_scale")
    with pytest.raises(ValueError, match="dse/Z_scale"):
        trainer_for(tmp_path, [DSEMonitor(async_metrics=True), watcher]).fit(TinyClassifier(), datamodule=BlobData())


class Stretch(nn.Module):
    """A layer whose output is its input times a factor set from outside."""

    def __init__(self):
        super().__init__()
        self.factor = 1.0
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(x * self.factor)


def trend_warnings(factors, sigma=10.0):
    x, y = blob_data(64, seed=4)
    tracker = DSETracker(probe=(x, y), metrics=("dse",), sigma=sigma)
    model = Stretch()
    fractions = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch, factor in enumerate(factors):
            model.factor = factor
            fractions.append(tracker.measure(model, epoch)["dse/Z"] / math.log2(64))
    return [str(w.message) for w in caught if issubclass(w.category, BandwidthWarning)], fractions


def test_a_curve_heading_for_either_end_warns_before_it_gets_there():
    growing, fractions = trend_warnings([1.0, 1.6, 2.6, 4.2, 6.8])
    assert fractions[-1] < 0.98  # not at the ceiling yet
    assert sum("ceiling" in message and 'sigma="rms"' in message for message in growing) == 1
    shrinking, fractions = trend_warnings([1.0, 0.7, 0.45, 0.3])
    assert fractions[-1] > 0.02
    assert sum("floor" in message and "sigma=10" in message for message in shrinking) == 1


def test_a_curve_at_an_end_warns_once_per_end():
    messages, fractions = trend_warnings([1e-4, 1e-4, 1e4, 1e4, 1e-4])
    assert fractions[0] < 0.02 and fractions[2] > 0.98
    assert len(messages) == 2 and "at its floor" in messages[0] and "at its ceiling" in messages[1]


def test_a_stable_curve_raises_no_alarm():
    messages, fractions = trend_warnings([1.0, 1.02, 0.99, 1.01, 1.0])
    assert messages == [] and 0.1 < min(fractions)


def test_profile_images_reach_tensorboard_and_a_resumed_run_keeps_them(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    checkpoints = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True)
    monitor = DSEMonitor(sigma="rms", metrics=("dse",), profile=True)
    pl.seed_everything(0, verbose=False)
    trainer = trainer_for(
        tmp_path, [monitor, checkpoints], max_epochs=2, logger="tensorboard", enable_checkpointing=True
    )
    trainer.fit(TinyClassifier(), datamodule=BlobData())
    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("dse/Z_profile")) == 3  # the baseline and two epochs
    profiles = monitor.tracker.profiles
    assert sorted(profiles) == [0, 1, 2] and all(0 <= v <= 1 for v in profiles[2]["Z"].normalized)

    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["callbacks"][monitor.state_key]
    assert sorted(saved["profiles"]) == [0, 1, 2]  # plain values: loads without trusting pickled classes
    resumed = DSEMonitor(sigma="rms", metrics=("dse",), profile=True)
    again = trainer_for(tmp_path, [resumed], max_epochs=3, logger="tensorboard", enable_checkpointing=True)
    again.fit(TinyClassifier(), datamodule=BlobData(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert sorted(resumed.tracker.profiles) == [0, 1, 2, 3]
    assert list(resumed.tracker.profiles[1]["Z"].values) == list(profiles[1]["Z"].values)


def test_asynchronous_probes_bring_back_the_scale_and_the_profiles():
    x, y = blob_data(60, seed=1)
    options = dict(probe=(x, y), metrics=("dse",), sigma="knn", profile=True)
    model = TinyClassifier().eval()
    synchronous = DSETracker(**options)
    expected = synchronous.measure(model, 0)
    background = DSETracker(async_metrics=True, **options)
    assert background.measure(model, 0) == {}
    [(epoch, values)] = background.collect(wait=True)
    background.release()
    assert epoch == 0 and values["dse/Z_scale"] == expected["dse/Z_scale"] and values["dse/Z"] == expected["dse/Z"]
    assert background.profiles[0]["Z"] == synchronous.profiles[0]["Z"]
    assert background.history[0]["Z"]["scale"] == synchronous.history[0]["Z"]["scale"]


def test_a_checkpoint_without_profiles_still_loads():
    tracker = DSETracker(probe=blob_data(20), metrics=("dse",), profile=True)
    tracker.load_state_dict({"history": {0: {"Z": {"epoch": 0, "dse": 1.0}}}, "probe_indices": None})
    assert tracker.profiles == {} and sorted(tracker.history) == [0]


def test_lightning_cli_parses_a_preset_a_bandwidth_and_the_profile_option(tmp_path, monkeypatch):
    from pytorch_lightning.cli import LightningCLI

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_lightning_class_args(DSEMonitor, "dse")

    def parsed(*args):
        cli = CLI(TinyClassifier, BlobData, run=False, args=list(args), save_config_callback=None)
        return next(callback for callback in cli.trainer.callbacks if isinstance(callback, DSEMonitor)).tracker.settings

    monkeypatch.setattr("sys.argv", ["dse"])  # LightningCLI warns when it is given args and sees others
    config = tmp_path / "config.yaml"
    config.write_text("dse:\n  sigma: rms\n  profile: true\n")
    settings = parsed("--config", str(config))
    assert settings.sigma == "rms" and settings.profile is True
    config.write_text("dse:\n  sigma:\n    kind: knn\n    scale: 0.5\n")
    assert parsed("--config", str(config)).sigma == Bandwidth("knn", scale=0.5)
    assert parsed("--dse.sigma", "2.5").sigma == 2.5
    with pytest.raises(ValueError, match="sigma must be a number > 0, one of .*got 'wide'"):
        parsed("--dse.sigma", "wide")

"""The dry run: a few probe rows forwarded once before any measurement, so configuration
errors raise there with the batch shown, while training state stays untouched."""

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from dse_callback import DSETracker
from dse_callback.probe.forward_pass import DryRunError

from lightning_helpers import blob_data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


class DictOut(nn.Module):
    """A layer that returns a dict, as Hugging Face blocks return a ModelOutput."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 16)

    def forward(self, x):
        return {"hidden": self.linear(x), "note": "no tensor"}


class WithDictLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.head = DictOut(), nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.encoder(x)["hidden"])


def tracker(x, y, **options):
    return DSETracker(probe=(x, y), metrics=("dse",), probe_batch_size=16, **options)


def rng_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def test_configuration_errors_raise_on_first_use_showing_the_batch():
    x, y = blob_data(40)
    shown = r"The batch was \[Tensor\(float32, \[4, 8\]\), Tensor\(int64, \[4\]\)\]"
    with pytest.raises(DryRunError, match=rf"output_key='hiden' is not in .* keys \['hidden', 'note'\].*{shown}"):
        tracker(x, y, layer="encoder", capture="output", output_key="hiden").measure(WithDictLayer(), 0)

    def failing(module, inputs):
        raise RuntimeError("forward needs a mask")

    with pytest.raises(DryRunError, match=rf"RuntimeError: forward needs a mask.*{shown}.*forward="):
        tracker(x, y, forward=failing).measure(Net(), 0)
    with pytest.raises(DryRunError, match=r"(dtype|Long|Float).*The batch was \[Tensor\(int64, \[4, 8\]\)"):
        tracker(x.long(), y).measure(Net(), 0)  # integer inputs are not cast: a dtype mismatch
    unused = Net()
    unused.spare = nn.Linear(16, 16)  # registered, never called
    with pytest.raises(DryRunError, match="hook on layer 'spare' never fired"):
        tracker(x, y, layer="spare").measure(unused, 0)


def test_a_dict_output_is_read_by_its_first_tensor_or_its_key():
    x, y = blob_data(40)
    model = WithDictLayer()
    first = tracker(x, y, layer="encoder", capture="output").measure(model, 0)
    keyed = tracker(x, y, layer="encoder", capture="output", output_key="hidden").measure(model, 0)
    assert math.isfinite(first["dse/Z"]) and first["dse/Z"] == keyed["dse/Z"]


def test_floating_probe_inputs_follow_the_models_dtype():
    x, y = blob_data(40)
    model = Net()
    float32 = tracker(x, y).measure(model, 0)["dse/Z"]
    from_numpy = tracker(torch.from_numpy(x.double().numpy()), y).measure(model, 0)["dse/Z"]  # float64 probe
    assert math.isfinite(from_numpy) and from_numpy == pytest.approx(float32, abs=1e-6)
    as_double = tracker(x, y).measure(model.double(), 0)["dse/Z"]  # float32 probe, float64 model
    assert as_double == pytest.approx(float32, abs=1e-5)


class DrawsRandomNumbers(nn.Module):
    """Draws from every global RNG in each forward call (as random augmentations do), changing nothing."""

    def forward(self, x):
        return x + 0 * torch.rand(1) + 0 * float(np.random.rand()) + 0 * random.random()


def test_the_dry_run_changes_no_rng_no_mode_and_leaves_no_hook():
    x, y = blob_data(40)
    model = Net().train()
    model.backbone.append(DrawsRandomNumbers())
    model.backbone[2].eval()  # a submodule the user froze
    modes = [module.training for module in model.modules()]
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    before = rng_states()
    probe = tracker(x, y)
    probe.prepare_probe()
    probe.dry_run(model)
    assert probe.pooling == {"Z": "none"}
    after = rng_states()
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    assert [module.training for module in model.modules()] == modes
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_the_dry_run_runs_once_per_probe_set():
    x, y = blob_data(40)
    calls = []

    def counting(module, inputs):
        calls.append(len(inputs))
        return module(inputs)

    probe, model = tracker(x, y, forward=counting), Net()
    probe.measure(model, 0)
    probe.measure(model, 1)
    assert calls == [4, 16, 16, 8, 16, 16, 8]  # the 4-row dry run, then two probes of 40 rows
    assert [probe.history[epoch]["Z"]["pool"] for epoch in (0, 1)] == ["none", "none"]

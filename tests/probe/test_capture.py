import pytest
import torch
from torch import nn

from dse_callback.probe.capture import ActivationRecorder, EvalMode, LayerRecorders, find_layer


def convnet():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10), nn.Linear(10, 3)
    )


def test_default_layer_is_the_last_linear_and_its_input_is_the_penultimate_representation():
    model = convnet()
    name, module = find_layer(model, None)
    assert name == "5" and module is model[5]
    x = torch.randn(7, 1, 8, 8)
    with ActivationRecorder(model) as recorder:
        model(x)
    torch.testing.assert_close(recorder.activations(), model[:5](x))


def test_output_capture_flattens_to_rows():
    model = convnet()
    with ActivationRecorder(model, layer="0", capture="output") as recorder:
        model(torch.randn(5, 1, 8, 8))
    assert recorder.activations().shape == (5, 4 * 6 * 6)


def test_layer_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"layer 'classifier' is not a submodule of Sequential; valid names: 0, 1, 2"):
        find_layer(convnet(), "classifier")
    with pytest.raises(ValueError, match="no nn.Linear .* pass layer="):
        find_layer(nn.Sequential(nn.Conv2d(1, 1, 1)), None)
    with pytest.raises(ValueError, match="capture must be one of"):
        ActivationRecorder(convnet(), capture="gradient")


def test_hook_is_removed_even_when_the_forward_pass_raises():
    model = convnet()
    with pytest.raises(RuntimeError):
        with ActivationRecorder(model):
            model(torch.randn(2, 3, 8, 8))  # wrong channel count
    assert not model[5]._forward_pre_hooks


def test_a_hook_that_never_fired_says_why():
    recorder = ActivationRecorder(convnet())
    with pytest.raises(RuntimeError, match="never fired"):
        recorder.activations()


def test_eval_mode_restores_each_submodule_flag_not_a_blanket_train():
    model = convnet().train()
    model[1].eval()  # a BatchNorm the user froze
    before = [m.training for m in model.modules()]
    with EvalMode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before


class Block(nn.Module):
    """A transformer-style block: called with keywords, returns a dict of (B, T, H) and (B, H)."""

    def forward(self, hidden_states, attention_mask=None):
        return {"attentions": None, "last_hidden_state": hidden_states * 2, "pooled": hidden_states[:, 0]}


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(hidden_states=x, attention_mask=None)


def test_dict_outputs_keyword_inputs_and_the_pooling_applied():
    model, x = Encoder(), torch.randn(3, 5, 4)
    with ActivationRecorder(model, "block", capture="output") as recorder:
        model(x)
    torch.testing.assert_close(recorder.activations(), (x * 2).mean(1))  # the first tensor, mean over tokens
    assert recorder.pooling == "mean"
    with ActivationRecorder(model, "block", capture="output", output_key="pooled") as recorder:
        model(x)
    assert recorder.pooling == "none" and torch.equal(recorder.activations(), x[:, 0])
    with ActivationRecorder(model, "block", capture="input", pool="last") as recorder:
        model(x)  # called with keywords only: the input is the first keyword tensor
    assert recorder.pooling == "last" and torch.equal(recorder.activations(), x[:, -1])
    with LayerRecorders(model, {"a": "block"}, "output", output_key="missing"):
        with pytest.raises(
            KeyError, match=r"layer 'block' output.* keys \['attentions', 'last_hidden_state', 'pooled'\]"
        ):
            model(x)
    assert not model.block._forward_hooks

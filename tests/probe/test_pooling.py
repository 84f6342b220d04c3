"""select_output and pool_rows: any layer output to one row per sample, padding ignored."""

from collections import OrderedDict, namedtuple

import pytest
import torch

from dse_callback.probe.pooling import applied_pool, pool_rows, select_output


def test_the_first_tensor_of_a_tuple_a_list_a_dict_and_an_ordered_dict():
    h, other = torch.randn(2, 3), torch.randn(2, 5)
    assert select_output(h) is h and select_output(h, "last_hidden_state") is h  # a key picks from containers only
    assert select_output((None, h, other)) is h  # the first tensor, past a None
    assert select_output([h, other]) is h
    assert select_output({"loss": None, "hidden": h, "logits": other}) is h
    assert select_output(OrderedDict(hidden=h, logits=other), "logits") is other
    Out = namedtuple("Out", ["logits", "hidden"])
    assert select_output(Out(other, h), "hidden") is h


def test_a_transformers_model_output_is_a_mapping_not_a_tuple():
    outputs = pytest.importorskip("transformers.modeling_outputs")
    h = torch.randn(2, 4, 3)
    out = outputs.BaseModelOutputWithPooling(last_hidden_state=h, pooler_output=h[:, 0])
    assert not isinstance(out, tuple)
    assert select_output(out) is h
    assert select_output(out, "pooler_output").shape == (2, 3)
    with pytest.raises(
        KeyError, match=r"output_key='hidden' is not in .* keys \['last_hidden_state', 'pooler_output'\]"
    ):
        select_output(out, "hidden", "layer 'encoder' output")


def test_outputs_without_a_tensor_fail_naming_the_fix():
    with pytest.raises(
        TypeError, match=r"layer 'x' output is a dict holding no tensor \(keys \['a'\]\); pass output_key"
    ):
        select_output({"a": 1}, where="layer 'x' output")
    with pytest.raises(TypeError, match=r"\['a'\] is a int, not a tensor"):
        select_output({"a": 1}, "a")


def test_defaults_by_rank_and_what_a_conv_map_accepts():
    assert [applied_pool(n, None) for n in (1, 2, 3, 4, 5)] == ["flatten", "none", "mean", "flatten", "flatten"]
    assert [applied_pool(2, pool) for pool in ("mean", "first", "last", "flatten")] == ["none"] * 4
    assert applied_pool(4, "mean") == "mean" and applied_pool(4, "flatten") == "flatten"
    for pool in ("first", "last"):
        with pytest.raises(ValueError, match=f"pool='{pool}' takes one token .* no token order; pass pool='mean'"):
            applied_pool(4, pool)
    with pytest.raises(ValueError, match="pool must be one of"):
        applied_pool(3, "max")
    maps = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(pool_rows(maps)[0], maps.reshape(2, -1))
    torch.testing.assert_close(pool_rows(maps, "mean")[0], maps.mean(dim=(2, 3)))  # global average pooling


def test_masked_mean_first_and_last_match_the_real_tokens_on_either_side():
    generator = torch.Generator().manual_seed(0)
    real = [torch.randn(n, 4, generator=generator) for n in (3, 5, 1)]  # three sequences of 3, 5 and 1 tokens
    for side in ("right", "left"):
        h = torch.full((3, 6, 4), 1e6)  # pads far away: any leak shows
        mask = torch.zeros(3, 6, dtype=torch.long)
        for row, tokens in enumerate(real):
            span = slice(0, len(tokens)) if side == "right" else slice(6 - len(tokens), 6)
            h[row, span], mask[row, span] = tokens, 1
        mean, applied = pool_rows(h, "mean", mask)
        assert applied == "mean"
        torch.testing.assert_close(mean, torch.stack([tokens.mean(0) for tokens in real]))
        torch.testing.assert_close(pool_rows(h, "first", mask)[0], torch.stack([tokens[0] for tokens in real]))
        torch.testing.assert_close(pool_rows(h, "last", mask)[0], torch.stack([tokens[-1] for tokens in real]))
        torch.testing.assert_close(pool_rows(h, None, mask)[0], mean)  # "mean" is the default for sequences
    assert pool_rows(h, "mean")[0].abs().max() > 1e5  # without the mask the pads leak in


def test_without_a_mask_every_token_counts_and_flatten_keeps_them_all():
    h = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(pool_rows(h, "mean")[0], h.mean(1))
    torch.testing.assert_close(pool_rows(h, "first")[0], h[:, 0])
    torch.testing.assert_close(pool_rows(h, "last")[0], h[:, -1])
    flat, applied = pool_rows(h, "flatten", torch.ones(2, 3))
    assert applied == "flatten" and torch.equal(flat, h.reshape(2, 12))
    empty = pool_rows(h, "mean", torch.zeros(2, 3))[0]  # an all-pad row gives 0, not NaN
    assert torch.equal(empty, torch.zeros(2, 4))


def test_a_mask_that_does_not_line_up_with_the_tokens_is_an_error():
    with pytest.raises(ValueError, match=r"mask has shape \[2, 5\] but .* \[2, 6, 4\] .* mask_key=None"):
        pool_rows(torch.randn(2, 6, 4), "mean", torch.ones(2, 5))

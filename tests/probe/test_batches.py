"""Reading probe batches: keys at any level, attributes, callables, and errors showing the batch."""

from types import SimpleNamespace

import pytest
import torch

from dse_callback.probe.batches import BatchFormatError, BatchReader, describe_batch


def test_keys_are_found_at_any_nesting_level_and_in_attributes():
    x, y = torch.ones(3, 2), torch.tensor([0, 1, 2])
    nested = ({"meta": {"id": 7}}, {"data": {"pixels": x}, "target": y})
    inputs, labels = BatchReader(input_key="pixels", label_key="target").split(nested)
    assert inputs is x and labels is y
    inputs, labels = BatchReader(input_key="pixel_values", label_key="labels").split(
        SimpleNamespace(pixel_values=x, labels=y)
    )
    assert inputs is x and labels is y


def test_defaults_callable_and_no_labels():
    x, y = torch.ones(3, 2), torch.tensor([0, 1, 2])
    assert BatchReader().split((x, y)) == (x, y)
    assert BatchReader().split(x) == (x, None)
    assert BatchReader().split([x]) == (x, None)
    inputs, labels = BatchReader(batch_to_inputs=lambda batch: batch["a"] * 2, label_key="b").split({"a": x, "b": y})
    assert torch.equal(inputs, 2 * x) and labels is y


def test_errors_show_the_batch_and_name_the_option():
    batch = {"image": torch.zeros(4, 1, 28, 28), "label": torch.zeros(4, dtype=torch.long)}
    picture = r"\{'image': Tensor\(float32, \[4, 1, 28, 28\]\), 'label': Tensor\(int64, \[4\]\)\}"
    with pytest.raises(BatchFormatError, match=f"cannot tell the inputs in the probe batch {picture}; pass input_key"):
        BatchReader().split(batch)
    with pytest.raises(BatchFormatError, match=f"input_key='img' is not in the probe batch {picture}"):
        BatchReader(input_key="img").split(batch)
    with pytest.raises(TypeError, match="label_key must be a non-empty string"):
        BatchReader(label_key=3)
    with pytest.raises(TypeError, match="batch_to_inputs must be a callable"):
        BatchReader(batch_to_inputs="image")


def test_describe_batch_abbreviates_deep_and_wide_batches():
    assert describe_batch({"a": {"b": {"c": {"d": 1}}}}) == "{'a': {'b': {'c': ...}}}"
    assert describe_batch(list(range(10))) == "[0, 1, 2, 3, 4, 5, 6, 7, ...]"
    assert (
        describe_batch((torch.zeros(2, dtype=torch.bfloat16), "name", None)) == "(Tensor(bfloat16, [2]), 'name', None)"
    )

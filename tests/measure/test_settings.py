"""The options' one home: each is validated where it is declared, with a message that names it,
and the tracker's and the monitor's signatures list every field with its default."""

import inspect

import pytest

from dse_callback import DSETracker
from dse_callback.measure.settings import MeasureSettings, MonitorSettings, ProbeSettings, split_settings

BAD = [
    (ProbeSettings, {"probe_size": 1}, ValueError, "probe_size"),
    (ProbeSettings, {"capture": "middle"}, ValueError, "capture"),
    (ProbeSettings, {"pool": "max"}, ValueError, "pool"),
    (ProbeSettings, {"forward": 3}, TypeError, "forward must be a callable"),
    (ProbeSettings, {"batch_to_inputs": "inputs"}, TypeError, "batch_to_inputs must be a callable"),
    (ProbeSettings, {"mask_key": ""}, TypeError, "mask_key"),
    (MeasureSettings, {"metrics": ("dse", "entropy")}, ValueError, "metrics"),
    (MeasureSettings, {"sigma": "wide"}, ValueError, "sigma"),
    (MeasureSettings, {"solver": "lanczos"}, ValueError, "solver"),
    (MeasureSettings, {"collective_timeout": 0}, ValueError, "collective_timeout"),
    (MonitorSettings, {"every_n_epochs": 0}, ValueError, "every_n_epochs"),
]


@pytest.mark.parametrize("cls, options, error, name", BAD, ids=[next(iter(case[1])) for case in BAD])
def test_a_bad_option_fails_where_it_is_declared_naming_it(cls, options, error, name):
    with pytest.raises(error, match=name):
        cls(**options)


def test_unknown_options_are_named_with_the_valid_ones():
    with pytest.raises(TypeError, match=r"DSETracker got unknown option\(s\) \['sigmaa'\]; valid options: .*'sigma'"):
        split_settings({"sigmaa": 1.0}, ProbeSettings, MeasureSettings, owner="DSETracker")


def test_the_signature_lists_every_field_with_its_default():
    parameters = inspect.signature(DSETracker).parameters
    for cls in (ProbeSettings, MeasureSettings):
        for name, field in cls.__dataclass_fields__.items():
            assert parameters[name].default == field.default and parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["sigma"].default == "rms" and "every_n_epochs" not in parameters

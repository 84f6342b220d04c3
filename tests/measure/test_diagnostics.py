"""The bandwidth diagnostics: the RMS radius, the saturation trend and its once-per-direction warning."""

import math
import warnings

import pytest

from dse_callback import BandwidthWarning
from dse_callback.measure.diagnostics import SaturationWatch, saturation_trend
from dse_callback.measure.measurer import OnceWarner

N = 64  # log2 N = 6


@pytest.mark.parametrize(
    "fractions, expected",
    [
        ([0.5, 0.35, 0.2], "floor"),  # the line reaches 0.02 within 3 probes
        ([0.5, 0.65, 0.8], "ceiling"),
        ([0.9, 0.3, 0.5, 0.35, 0.2], "floor"),  # only the last three count
        ([0.5, 0.49, 0.48], None),  # a slow drift: 0.45 three probes on
        ([0.5, 0.52, 0.5], None),  # a stable, noisy curve
        ([0.5, 0.2, 0.25], None),  # not monotone
        ([0.3, 0.1, 0.01], None),  # already in the band: the per-probe warning covers it
        ([0.5, 0.65, 0.99], None),
        ([0.5, 0.35], None),  # too short
        ([0.5, float("nan"), 0.2], None),
    ],
)
def test_saturation_trend_at_either_end_and_no_false_alarm(fractions, expected):
    assert saturation_trend(fractions) == expected


def history_of(dse_values, name="Z", scale=1.0):
    return {epoch: {name: {"dse": value, "n": N, "scale": scale}} for epoch, value in enumerate(dse_values)}


def caught_trend_warnings(watch, histories):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for history in histories:
            watch.check(history, {name: f"{name} (input)" for name in history[0]})
    return [str(w.message) for w in caught if issubclass(w.category, BandwidthWarning)]


def test_a_trend_to_the_floor_warns_once_with_the_numbers_and_the_fix():
    log2n = math.log2(N)
    values = [0.6 * log2n, 0.45 * log2n, 0.3 * log2n, 0.2 * log2n, 0.12 * log2n]
    histories = [history_of(values[: k + 1]) for k in range(len(values))]
    messages = caught_trend_warnings(SaturationWatch(OnceWarner(), "10", scale_free=False), histories)
    assert len(messages) == 1  # once per layer and direction, however long the trend lasts
    assert "0.600 -> 0.450 -> 0.300" in messages[0] and "floor" in messages[0] and "epochs 0, 1, 2" in messages[0]
    assert 'sigma="rms"' in messages[0] and "sigma=10" in messages[0] and "'Z (input)'" in messages[0]


def test_each_direction_and_each_layer_warns_on_its_own():
    log2n = math.log2(N)
    up_then_down = [0.5, 0.65, 0.8, 0.5, 0.35, 0.2]
    histories = []
    for k in range(len(up_then_down)):
        rows = {epoch: {} for epoch in range(k + 1)}
        for epoch in range(k + 1):
            rows[epoch]["a"] = {"dse": up_then_down[epoch] * log2n, "n": N}
            rows[epoch]["b"] = {"dse": 0.5 * log2n, "n": N}  # stable: never warns
        histories.append(rows)
    messages = caught_trend_warnings(SaturationWatch(OnceWarner(), "rms", scale_free=True), histories)
    assert len(messages) == 2 and "ceiling" in messages[0] and "floor" in messages[1]
    assert all("'a (input)'" in message for message in messages)
    assert "follows the size of Z" in messages[0] and 'sigma="rms"' not in messages[0]


def test_a_stable_curve_and_nan_probes_never_warn():
    log2n = math.log2(N)
    noisy = [0.5, 0.52, 0.49, 0.51, 0.5, float("nan"), 0.48, 0.5]
    histories = [history_of([v * log2n for v in noisy[: k + 1]]) for k in range(len(noisy))]
    assert caught_trend_warnings(SaturationWatch(OnceWarner(), "10", scale_free=False), histories) == []

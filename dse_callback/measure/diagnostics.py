"""How a probe's curves relate to the bandwidth: the scale ratio and the saturation trend.

- the scale ratio: a probe logs `dse/{name}_scale` = the RMS radius of Z (the kernel's
  `rms_radius`) / sigma, so a user sees when a fixed-sigma curve follows the size of Z (a
  ratio far below 1 pushes DSE to 0, far above 1 to log2 N); `Measurer` records it.
- `saturation_trend(fractions)`: whether DSE / log2 N, over the last probes, runs towards
  0 or 1 fast enough to reach the 2% band at that end within a few more probes;
  `SaturationWatch` checks it on the history after every probe and warns once per layer
  and direction (the per-probe warning of `metrics` covers a DSE already in the band).

No Lightning here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..kernel.errors import BandwidthWarning

# DSE within this fraction of log2 N of an end is saturated (as `saturation_message` says).
SATURATION_BAND = 0.02
# A trend: this many probes in a row moving one way, whose least-squares line reaches the
# band within `_HORIZON` more probes.
_RUN, _HORIZON = 3, 3


def saturation_trend(
    fractions: Sequence[float], band: float = SATURATION_BAND, run: int = _RUN, horizon: int = _HORIZON
) -> str | None:
    """ "floor" or "ceiling" when the last `run` values of DSE / log2 N head for that end; else None.

    A trend: the last `run` values are finite and strictly monotone, and their least-squares
    line reaches the band (`<= band` for the floor, `>= 1 - band` for the ceiling) at most
    `horizon` probes after the last. None also when the last value is already in the band:
    the per-probe saturation warning says so.

    Example:
        >>> saturation_trend([0.5, 0.35, 0.2])  # 0.05 three probes on: the floor is near
        'floor'
        >>> saturation_trend([0.5, 0.49, 0.48]) is None  # 0.45 three probes on
        True
    """
    recent = [float(value) for value in fractions[-run:]]
    if len(recent) < run or not all(math.isfinite(value) for value in recent):
        return None
    if recent[-1] <= band or recent[-1] >= 1 - band:
        return None
    steps = [b - a for a, b in zip(recent, recent[1:])]
    x_mean, y_mean = (run - 1) / 2, sum(recent) / run
    slope = sum((i - x_mean) * (y - y_mean) for i, y in enumerate(recent)) / sum((i - x_mean) ** 2 for i in range(run))
    ahead = y_mean + slope * (run - 1 + horizon - x_mean)
    if all(step < 0 for step in steps) and ahead <= band:
        return "floor"
    if all(step > 0 for step in steps) and ahead >= 1 - band:
        return "ceiling"
    return None


class SaturationWatch:
    """Warns once per layer and direction when DSE / log2 N trends towards 0 or 1.

    Args:
        warn: the monitor's `OnceWarner`.
        bandwidth: the bandwidth as passed (`"10"`, `"rms"`, ...), in the message.
        scale_free: whether that bandwidth follows the scale of Z (then a trend is structure,
            not the size of Z against sigma, and the advice differs).
    """

    def __init__(self, warn, bandwidth: str, scale_free: bool):
        self.warn, self.bandwidth, self.scale_free = warn, bandwidth, scale_free

    def check(self, history: dict[int, dict[str, dict[str, Any]]], labels: dict[str, str]) -> None:
        """Look at every layer's finite DSE values in `history` ({epoch: {name: row}})."""
        for name, where in labels.items():
            rows = [(epoch, history[epoch][name]) for epoch in sorted(history) if name in history[epoch]]
            rows = [(epoch, row) for epoch, row in rows if _fraction(row) is not None][-_RUN:]
            direction = saturation_trend([_fraction(row) for _, row in rows])
            if direction is not None:
                message = self._message(where, direction, rows)
                self.warn(f"saturation-trend:{name}:{direction}", message, BandwidthWarning)

    def _message(self, where: str, direction: str, rows) -> str:
        fractions = " -> ".join(f"{_fraction(row):.3f}" for _, row in rows)
        scales = " -> ".join(f"{float(row.get('scale', math.nan)):.3g}" for _, row in rows)
        epochs = ", ".join(str(epoch) for epoch, _ in rows)
        end = "0" if direction == "floor" else "log2 N"
        head = (
            f"DSE / log2 N of layer {where!r} moved {fractions} over epochs {epochs} (RMS radius of Z / sigma "
            f"{scales}, sigma={self.bandwidth}): at this pace DSE reaches its {direction} {end} within {_HORIZON} "
            "probes. "
        )
        if self.scale_free:
            shape = "collapsing onto a few directions" if direction == "floor" else "spreading like noise"
            return head + f"The bandwidth follows the size of Z, so the points themselves are {shape}."
        return head + (
            "With a fixed sigma this can be the size of Z against sigma rather than its structure: use a "
            'scale-free bandwidth (sigma="rms", "median" or "knn") to tell them apart.'
        )


def _fraction(row: dict[str, Any]) -> float | None:
    """DSE / log2 N of a history row, or None when it has no finite DSE."""
    try:
        value, n = float(row.get("dse", math.nan)), int(row.get("n") or 0)
    except (TypeError, ValueError):
        return None
    return value / math.log2(n) if n > 1 and math.isfinite(value) else None

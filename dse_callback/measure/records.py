"""What a tracker keeps of its probes, and the check that reads it after each one.

`ProbeRecords.record(epoch, rows, profiles, ...)`, after every probe (and again when an
asynchronous probe comes back): the history rows ({epoch: {name: row}}, rewritten to the
CSV by the primary process), the entropy profiles of the layers (`profile=True`:
{epoch: {name: EntropyProfile}}, for the profile image), then `SaturationWatch` looks at
each layer's DSE curve. `state()` / `load()`: both, for a checkpoint, the profiles as plain
tuples so a checkpoint loads under `torch.load(weights_only=True)`; a checkpoint from before
the profiles loads with none. No Lightning here.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

from ..kernel.errors import BandwidthWarning
from ..kernel.geometry.bandwidth import Bandwidth
from ..kernel.profile import EntropyProfile
from ..report.history import History, history_columns
from .diagnostics import SaturationWatch
from .metrics import METRIC_SPECS


def bandwidth_label(sigma) -> str:
    """The bandwidth as passed, for the history's `bandwidth` column.

    Example:
        >>> bandwidth_label(10.0), bandwidth_label("rms"), bandwidth_label(Bandwidth("knn", scale=0.5, k=5))
        ('10', 'rms', 'knn*0.5(k=5)')
    """
    if isinstance(sigma, str):
        return sigma
    if isinstance(sigma, Bandwidth):
        label = sigma.kind if sigma.scale == 1 else f"{sigma.kind}*{sigma.scale:g}"
        return label if sigma.kind != "knn" or sigma.k == Bandwidth("knn").k else f"{label}(k={sigma.k})"
    return f"{float(sigma):g}"


class ProbeRecords:
    """The history, the profiles and the saturation watch of one tracker.

    Args:
        metrics: the tracker's metrics (their columns, and the solver columns of those that report one).
        extra_columns: more history columns after the details.
        warn: the tracker's `OnceWarner`.
        path: the history CSV (None: no file).
        sigma: the bandwidth as passed (its label goes in every row; a number is a fixed sigma).
    """

    def __init__(self, metrics: Sequence[str], extra_columns: Sequence[str], warn, path: str | None, sigma):
        solved = [metric for metric in metrics if METRIC_SPECS[metric].reports_solver]
        self.history = History(history_columns(metrics, solved, extra_columns), warn, path)
        self.profiles: dict[int, dict[str, EntropyProfile]] = {}
        self.bandwidth = bandwidth_label(sigma)
        scale_free = not isinstance(sigma, numbers.Real)
        self.watch = SaturationWatch(warn, self.bandwidth, scale_free)

    def record(self, epoch: int, rows: dict, profiles: dict, labels: dict[str, str], write: bool) -> None:
        """One probe's history `rows` ({name: row}) and `profiles` ({name: EntropyProfile}),
        then the saturation check over `labels` ({name: "layer (side)"}); the CSV is
        rewritten when `write`."""
        self.history.record(epoch, rows, write)
        if profiles:
            self.profiles[epoch] = dict(profiles)
        self.watch.check(self.history.rows, labels)

    def state(self) -> dict[str, Any]:
        """The history, and the profiles as plain tuples (a checkpoint loads them with
        `torch.load(weights_only=True)`, which refuses a class of ours)."""
        profiles = {
            epoch: {name: dataclasses.asdict(profile) for name, profile in named.items()}
            for epoch, named in self.profiles.items()
        }
        return {"history": self.history.state(), "profiles": profiles}

    def load(self, state: dict[str, Any], first_name: str) -> None:
        """Restore `state()`; one without profiles (an older checkpoint) leaves none. A history
        measured with another bandwidth warns once: the curves would change meaning at the resume."""
        self.history.load(state.get("history", {}), first_name)
        last = self.history.rows[max(self.history.rows)] if self.history.rows else {}
        before = {_row_bandwidth(row) for row in last.values()} - {None}
        if before and before != {self.bandwidth}:
            self.history.warn(
                "resume:bandwidth",
                f"the restored history was measured with sigma={sorted(before)[0]!r}, this tracker measures with "
                f"sigma={self.bandwidth!r}: the curves change meaning from here (0.1.0 and the paper used a fixed "
                "sigma of 10, today's default is the scale-free 'rms'). Pass that sigma to continue the same curves",
                BandwidthWarning,
            )
        self.profiles = {
            int(epoch): {name: _profile(fields) for name, fields in named.items()}
            for epoch, named in state.get("profiles", {}).items()
        }


def _row_bandwidth(row: dict[str, Any]) -> str | None:
    """The bandwidth a history row was measured with, as passed (a row from before the
    `bandwidth` column has only its numeric `sigma`)."""
    if row.get("bandwidth"):
        return str(row["bandwidth"])
    sigma = row.get("sigma")
    return bandwidth_label(sigma) if isinstance(sigma, numbers.Real) and sigma == sigma else None


def _profile(fields: dict[str, Any]) -> EntropyProfile:
    sequences = {key: tuple(fields[key]) for key in ("scales", "bandwidths", "values")}
    return EntropyProfile(**sequences, n=int(fields["n"]))

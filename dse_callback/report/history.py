"""The history of a monitor: one CSV row per (epoch, representation), written safely.

After the values are measured and, under DDP, broadcast, rank 0 rewrites the whole
history (`write_history`): the layer and the side captured ("head (input)"), the metrics,
sigma (resolved), the bandwidth as passed ("rms", "10"), the scale ratio, t, N and
timings, through a temporary file, so a crash never leaves half a file.
`report_safely` runs any reporting step so that its failure warns and training goes on.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from typing import Any

HISTORY_DETAIL_COLUMNS = (
    "step",
    "probe_seconds",
    "data_seconds",
    "transfer_seconds",
    "forward_seconds",
    "metric_seconds",
    "n",
    "sigma",
    "bandwidth",
    "scale",
    "t",
    "cache",
)


def history_columns(metrics: Sequence[str], solved: Sequence[str] = (), extra: Sequence[str] = ()) -> list[str]:
    """The history file's columns, in order; the `solved` metrics also give their solver and error bar.

    Example:
        >>> history_columns(["dse", "rankme"], ["dse"])[:7]
        ['epoch', 'representation', 'layer', 'dse', 'rankme', 'dse_solver', 'dse_stderr']
    """
    solver_columns = [f"{metric}_{what}" for metric in solved for what in ("solver", "stderr")]
    return ["epoch", "representation", "layer", *metrics, *solver_columns, *HISTORY_DETAIL_COLUMNS, *extra]


def history_rows(layer_labels: dict[str, str], measured, details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One probe's history rows, {representation: row}: the layer and the side captured,
    sigma (the resolved number), the RMS radius of Z over it (`scale`), the metrics' values,
    their solvers and error bars, then the probe's `details` (with the bandwidth as passed)."""
    return {
        name: dict(
            representation=name,
            layer=label,
            sigma=measured.sigma[name],
            scale=measured.scale.get(name, float("nan")),
            **measured.values[name],
            **measured.details.get(name, {}),
            **details,
        )
        for name, label in layer_labels.items()
    }


def report_safely(warn, what: str, function, *args) -> None:
    """Run one reporting step; a failure (a full disk, a broken figure backend) warns once and
    training goes on, because nothing the monitor does after `setup` may end a run."""
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - any reporting failure, by design
        warn(f"report:{what}", f"DSEMonitor could not {what} ({type(error).__name__}: {error}); training goes on")


def write_history(path: str, history: dict[int, dict[str, dict[str, Any]]], columns: Sequence[str]) -> None:
    """Rewrite `path` with every row of `history` ({epoch: {representation: row}})."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".csv.tmp")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(columns))
            writer.writeheader()
            for epoch in sorted(history):
                for row in history[epoch].values():
                    writer.writerow({column: row.get(column, "") for column in columns})
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)  # the previous, complete file stays in place
        raise


class History:
    """{epoch: {representation: row}}, its columns, and the CSV it is written to (`path`, or
    None for no file). Writing never raises: a failure warns once through `warn`."""

    def __init__(self, columns: Sequence[str], warn, path: str | None = None):
        self.columns, self.warn, self.path = list(columns), warn, path
        self.rows: dict[int, dict[str, dict[str, Any]]] = {}

    def record(self, epoch: int, rows: dict[str, dict[str, Any]], write: bool = True) -> None:
        self.rows[epoch] = rows
        if write:
            self.write()

    def write(self) -> None:
        if self.path:
            report_safely(self.warn, "write the history", write_history, self.path, self.rows, self.columns)

    def state(self) -> dict[int, dict[str, dict[str, Any]]]:
        return {epoch: {name: dict(row) for name, row in rows.items()} for epoch, rows in self.rows.items()}

    def load(self, state: dict, first_name: str) -> None:
        """Restore `state`; a checkpoint from before several layers holds one flat row per epoch."""
        self.rows = {}
        for epoch, rows in state.items():
            if "epoch" in rows:
                rows = {first_name: rows}
            self.rows[int(epoch)] = {name: dict(row) for name, row in rows.items()}

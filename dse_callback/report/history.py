"""The history of a monitor: one CSV row per (epoch, representation), written safely.

After the values are measured and, under DDP, broadcast, rank 0 rewrites the whole
history (`write_history`): the layer and the side captured ("head (input)"), the metrics,
sigma, t, N and timings, through a temporary file, so a crash never leaves half a file.
`report_safely` runs any reporting step so that its failure warns and training goes on.
"""

from __future__ import annotations

import csv
import os
import tempfile
from typing import Any, Sequence

HISTORY_DETAIL_COLUMNS = (
    "step", "probe_seconds", "data_seconds", "transfer_seconds", "forward_seconds", "metric_seconds", "n", "sigma", "t",
    "cache",
)  # fmt: skip


def history_columns(metrics: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The history file's columns, in order: DSE and DSMI also give their solver and error bar."""
    solved = [f"{metric}_{what}" for metric in metrics if metric in ("dse", "dsmi_y", "dsmi_x") for what in ("solver", "stderr")]
    return ["epoch", "representation", "layer", *metrics, *solved, *HISTORY_DETAIL_COLUMNS, *extra]


def history_rows(layer_labels: dict[str, str], measured, details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One probe's history rows, {representation: row}: the layer and the side captured,
    sigma, the metrics' values, their solvers and error bars, then the probe's `details`."""
    return {
        name: dict(
            representation=name, layer=label, sigma=measured.sigma[name], **measured.values[name],
            **measured.details.get(name, {}), **details,
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

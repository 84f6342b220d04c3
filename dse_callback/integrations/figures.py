"""The figures of a tracker's latest probe, sent to loggers: one path for every adapter.

The spectrum behind each layer's DSE, the information plane when DSMI(Z; X) and DSMI(Z; Y)
are measured, and the entropy profiles with `profile=True` (`report.tensorboard.probe_figures`),
through `report.loggers.log_figures`. Rank 0 only (no collective); a failure warns once and
training goes on.
"""

from __future__ import annotations

from ..report.history import report_safely
from ..report.loggers import log_figures
from ..report.tensorboard import probe_figures


def send_probe_figures(tracker, loggers, at: int, step: int, directory: str | None, unit: str = "epoch") -> None:
    """The figures of `tracker`'s probe at `at` (epochs, or steps: `unit`) to `loggers` at `step`,
    else PNG files under `directory` (None: nowhere)."""
    plane = {"dsmi_x", "dsmi_y"} <= set(tracker.metrics)
    prefix = "dse/" if tracker.name == "Z" else f"dse/{tracker.name}_"

    def send() -> None:
        figures = probe_figures(
            history=tracker.history,
            spectra=tracker.last_spectra,
            keys=tracker.keys,
            t=tracker.settings.t,
            epoch=at,
            plane_tag=f"{prefix}information_plane" if plane else None,
            profiles=tracker.profiles,
            unit=unit,
        )
        log_figures(loggers, figures, step, directory=directory)

    report_safely(tracker.warn, "add the figures", send)

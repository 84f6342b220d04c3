"""A probe's figures, and TensorBoard's custom-scalar layout (rank 0 only).

1. `probe_figures(...)`: per representation the eigenvalue spectrum behind DSE
   (`{dse key}_spectrum`), and, when both DSMI(Z; X) and DSMI(Z; Y) are measured, the
   information plane of every representation so far; with `profile=True`, each
   representation's entropy profiles so far as one image (`{dse key}_profile`: epochs x
   bandwidth multiplier, coloured by DSE / log2 N). `loggers.log_figures` sends them to
   any logger.
2. `add_custom_scalar_layout(writers, ...)`: once per run, TensorBoard's Custom Scalars
   tab grouping the entropy and the mutual-information curves.

Loggers are duck-typed (TensorBoardLogger by class name), so this module imports no
Lightning namespace.
"""

from __future__ import annotations

from collections.abc import Sequence

from .figures import information_plane_figure, matplotlib_available, profile_figure, spectrum_figure


def tensorboard_loggers(loggers) -> list:
    """The TensorBoard loggers among a Trainer's `loggers` (either Lightning namespace)."""
    return [logger for logger in loggers if any(cls.__name__ == "TensorBoardLogger" for cls in type(logger).__mro__)]


def tensorboard_writers(loggers) -> list:
    """Their SummaryWriters; empty on ranks other than 0, whose `experiment` is a dummy."""
    from torch.utils.tensorboard import SummaryWriter

    writers = [logger.experiment for logger in tensorboard_loggers(loggers)]
    return [writer for writer in writers if isinstance(writer, SummaryWriter)]


def information_plane_points(history, names: Sequence[str]) -> dict[str, list[tuple[int, float, float]]]:
    """{name: [(epoch, DSMI(Z; X), DSMI(Z; Y)), ...]} from the history, finite points only."""
    points: dict[str, list[tuple[int, float, float]]] = {name: [] for name in names}
    for epoch in sorted(history):
        for name, row in history[epoch].items():
            x, y = row.get("dsmi_x"), row.get("dsmi_y")
            if name in points and isinstance(x, float) and isinstance(y, float) and x == x and y == y:
                points[name].append((epoch, x, y))
    return points


def probe_figures(
    *, history, spectra, keys, t: float, epoch: int, plane_tag: str | None, profiles=None, unit: str = "epoch"
) -> list[tuple[str, object]]:
    """(tag, figure) of one probe: each representation's spectrum behind DSE, the
    information plane of every representation so far under `plane_tag` (None: no plane),
    and each representation's entropy profiles so far (`{dse key}_profile`).

    Args:
        history: {epoch: {name: row}}; spectra: {name: eigenvalues}; keys: {name: {metric: key}}.
        t: the diffusion time; epoch: the probe's epoch (or step), in the titles, counted in `unit`.
        profiles: {epoch: {name: EntropyProfile}} (None or empty: no profile images).
    """
    if not matplotlib_available():
        return []
    figures = []
    for name, eigenvalues in spectra.items():
        tag = keys[name]["dse"]
        figures.append((f"{tag}_spectrum", spectrum_figure(eigenvalues, f"{tag} after {epoch} {unit}(s)", t)))
    if plane_tag is not None:
        points = information_plane_points(history, list(keys))
        if any(points.values()):
            figures.append((plane_tag, information_plane_figure(points)))
    for name in keys:
        by_epoch = {at: named[name] for at, named in (profiles or {}).items() if name in named}
        if by_epoch:
            tag = keys[name]["dse"]
            figures.append((f"{tag}_profile", profile_figure(by_epoch, f"{tag} profile, {unit}s x bandwidth")))
    return figures


# The Custom Scalars chart of each chart kind of the metric specs.
_CHART_TITLES = {"entropy": "entropy of {}", "information": "mutual information of {}", "rank": "effective rank of {}"}


def add_custom_scalar_layout(writers, keys: dict[str, dict[str, str]], charts: dict[str, str], title: str) -> None:
    """One chart per representation and chart kind (bits and ranks apart).

    Args:
        keys: {name: {metric: key}}; charts: {metric: "entropy" | "information" | "rank"}, in
            the monitor's metric order; title: the layout's category.
    """
    layout = {}
    for name, named_keys in keys.items():
        for metric, chart in charts.items():
            layout.setdefault(_CHART_TITLES[chart].format(name), ["Multiline", []])[1].append(named_keys[metric])
    for writer in writers:
        writer.add_custom_scalars({title: layout})

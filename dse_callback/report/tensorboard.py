"""TensorBoard figures and the custom-scalar layout of a probe (rank 0 only).

1. `add_figures(writers, ...)`: per representation the eigenvalue spectrum behind DSE
   (`{dse key}_spectrum`), and, when both DSMI(Z; X) and DSMI(Z; Y) are measured, the
   information plane of every representation so far (`{prefix}information_plane`).
2. `add_custom_scalar_layout(writers, ...)`: once per run, TensorBoard's Custom Scalars
   tab grouping the entropy and the mutual-information curves.

Loggers are duck-typed (TensorBoardLogger by class name), so this module imports no
Lightning namespace.
"""

from __future__ import annotations

from .figures import close_figure, information_plane_figure, matplotlib_available, spectrum_figure


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


def add_figures(writers, history, spectra, keys, metrics, t, step: int, epoch: int, prefix: str) -> None:
    """Spectrum figures of this probe and the information plane so far, to every writer."""
    if not writers or not matplotlib_available():
        return
    figures = []
    for name, eigenvalues in spectra.items():
        tag = keys[name]["dse"]
        figures.append((f"{tag}_spectrum", spectrum_figure(eigenvalues, f"{tag} after {epoch} epoch(s)", t)))
    if "dsmi_x" in metrics and "dsmi_y" in metrics:
        points = information_plane_points(history, list(keys))
        if any(points.values()):
            figures.append((f"{prefix}information_plane", information_plane_figure(points)))
    for tag, figure in figures:
        for writer in writers:
            writer.add_figure(tag, figure, global_step=step, close=False)
        close_figure(figure)


def add_custom_scalar_layout(writers, keys: dict[str, dict[str, str]], metrics, title: str) -> None:
    """Group each representation's entropy curves and mutual-information curves."""
    charts = {}
    for name, named_keys in keys.items():
        entropy = [named_keys[m] for m in ("dse", "cse") if m in metrics]
        information = [named_keys[m] for m in ("dsmi_y", "dsmi_x", "csmi_y", "csmi_x") if m in metrics]
        if entropy:
            charts[f"entropy of {name}"] = ["Multiline", entropy]
        if information:
            charts[f"mutual information of {name}"] = ["Multiline", information]
        if "rankme" in metrics:  # not bits: a chart of its own
            charts[f"effective rank of {name}"] = ["Multiline", [named_keys["rankme"]]]
    for writer in writers:
        writer.add_custom_scalars({title: charts})

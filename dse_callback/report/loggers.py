"""One figure writer for any logger: TensorBoard, W&B, MLflow, Comet, CSV, or none.

`log_figure(loggers, tag, figure, step)` sends one matplotlib figure to each logger in
the way that logger takes images, then closes the figure (also when a logger fails):

- Lightning's `TensorBoardLogger` (its SummaryWriter) or a bare `SummaryWriter`: `add_figure`;
- Lightning's `WandbLogger`: `log_image` (a `wandb.Image`, at `trainer/global_step`); a bare
  W&B run: `run.log({tag: wandb.Image(figure)})` at the run's own step;
- Lightning's `MLFlowLogger`: `log_figure` into the run's artifacts as
  `dse_figures/{tag}_step{step}.png`; the `mlflow` module itself: the active run, same name;
- Lightning's `CometLogger`, or a `comet_ml` experiment: `log_figure(tag, figure, step=step)`;
- Lightning's `CSVLogger`: a PNG file `{log_dir}/dse_figures/{tag}_step{step}.png`.

When no logger took the figure (no logger at all, or only ones that take no images) and
`directory` is given, the PNG goes to `{directory}/dse_figures/` instead. Tags may hold
"/" (`dse/Z_spectrum`); file names get "_" in their place.

Loggers are recognised by class name (and module), so `report` imports no framework;
the `wandb.Image` of a bare run comes from the already imported `wandb` module.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence

from .figures import close_figure

FIGURE_FOLDER = "dse_figures"


def figure_filename(tag: str, step: int) -> str:
    """The PNG file name of a figure: the tag made safe for a path, and the step.

    Example:
        >>> figure_filename("dse/Z_spectrum", 12)
        'dse_Z_spectrum_step12.png'
    """
    return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', tag).strip('_')}_step{int(step)}.png"


def takes_images(logger) -> bool:
    """Whether `logger` shows figures itself (TensorBoard, W&B, MLflow, Comet), not as files."""
    return _kind(logger) not in ("csv", None)


def log_figure(loggers: Iterable | None, tag: str, figure, step: int, *, directory: str | None = None) -> list[str]:
    """Send `figure` to every logger that takes it, then close it.

    Args:
        loggers: Lightning loggers or bare writers (see the module docstring); None for none.
        tag: the figure's name, e.g. "dse/Z_spectrum".
        figure: a matplotlib figure; closed on return, also after an error.
        step: the training step it belongs to.
        directory: where a PNG goes when no logger took the figure (None: nowhere).

    Returns:
        One entry per destination: the logger's class name, or the PNG file written.

    Raises:
        The first error of a logger, after every other logger got the figure.
    """
    sent, errors = [], []
    try:
        for logger in list(loggers or ()):
            kind = _kind(logger)
            if kind is None:
                continue
            try:
                sent.append(_SENDERS[kind](logger, tag, figure, int(step)))
            except Exception as error:  # noqa: BLE001 - the other loggers still get the figure
                errors.append(error)
        if not sent and not errors and directory is not None:
            sent.append(_write_png(directory, tag, figure, step))
    finally:
        close_figure(figure)
    if errors:
        raise errors[0]
    return sent


def log_figures(
    loggers: Iterable | None, figures: Sequence[tuple[str, object]], step: int, *, directory: str | None = None
) -> list[str]:
    """`log_figure` for each (tag, figure); every figure is closed, also after an error.

    Raises:
        The first error, after every figure was sent where it could go.
    """
    loggers, sent, errors = list(loggers or ()), [], []
    for tag, figure in figures:
        try:
            sent += log_figure(loggers, tag, figure, step, directory=directory)
        except Exception as error:  # noqa: BLE001 - the other figures still go out
            errors.append(error)
    if errors:
        raise errors[0]
    return sent


def _class_names(logger) -> list[str]:
    """The names of the logger's class and of its bases (either Lightning namespace matches)."""
    return [cls.__name__ for cls in type(logger).__mro__]


def _kind(logger) -> str | None:
    names = _class_names(logger)
    module = type(logger).__module__ or ""
    if "TensorBoardLogger" in names or "SummaryWriter" in names:
        return "tensorboard"
    if "WandbLogger" in names:
        return "wandb_logger"
    if module.startswith("wandb") and "Run" in names:
        return "wandb_run"
    if "MLFlowLogger" in names:
        return "mlflow_logger"
    if getattr(logger, "__name__", None) == "mlflow" and hasattr(logger, "log_figure"):
        return "mlflow_module"
    if "CometLogger" in names or (module.startswith("comet_ml") and hasattr(logger, "log_figure")):
        return "comet"
    if "CSVLogger" in names:
        return "csv"
    return None


def _tensorboard(logger, tag: str, figure, step: int) -> str:
    writer = logger if "SummaryWriter" in _class_names(logger) else logger.experiment
    writer.add_figure(tag, figure, global_step=step, close=False)  # a dummy writer on ranks > 0 does nothing
    return type(logger).__name__


def _wandb_logger(logger, tag: str, figure, step: int) -> str:
    logger.log_image(key=tag, images=[figure], step=step)
    return type(logger).__name__


def _wandb_run(run, tag: str, figure, step: int) -> str:
    wandb = sys.modules["wandb"]  # imported already: the run is its object
    run.log({tag: wandb.Image(figure, caption=f"step {step}")})
    return type(run).__name__


def _mlflow_logger(logger, tag: str, figure, step: int) -> str:
    logger.experiment.log_figure(logger.run_id, figure, f"{FIGURE_FOLDER}/{figure_filename(tag, step)}")
    return type(logger).__name__


def _mlflow_module(mlflow, tag: str, figure, step: int) -> str:
    mlflow.log_figure(figure, f"{FIGURE_FOLDER}/{figure_filename(tag, step)}")
    return "mlflow"


def _comet(logger, tag: str, figure, step: int) -> str:
    experiment = logger.experiment if "CometLogger" in _class_names(logger) else logger
    experiment.log_figure(figure_name=tag, figure=figure, step=step)
    return type(logger).__name__


def _csv(logger, tag: str, figure, step: int) -> str:
    return _write_png(logger.log_dir, tag, figure, step)


def _write_png(directory: str, tag: str, figure, step: int) -> str:
    folder = os.path.join(directory, FIGURE_FOLDER)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, figure_filename(tag, step))
    figure.savefig(path, format="png")
    return path


_SENDERS = {
    "tensorboard": _tensorboard,
    "wandb_logger": _wandb_logger,
    "wandb_run": _wandb_run,
    "mlflow_logger": _mlflow_logger,
    "mlflow_module": _mlflow_module,
    "comet": _comet,
    "csv": _csv,
}

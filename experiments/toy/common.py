"""What the toy studies share: the long-format CSV, timing, progress and mean curves for plots."""

from __future__ import annotations

import csv
import pathlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

# Columns in this order when present: the parameters as the paper names them, then the result.
COLUMN_ORDER = (
    "sweep",
    "distribution",
    "branches",
    "D",
    "d",
    "n",
    "a",
    "r",
    "noise",
    "t",
    "repetition",
    "estimator",
    "solver",
    "epochs",
    "value",
    "seconds",
)


def write_csv(rows: list[dict], path: pathlib.Path) -> pathlib.Path:
    """Write rows (dicts) in long format; columns are the keys present, in COLUMN_ORDER."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    present = set().union(*rows)
    unknown = present - set(COLUMN_ORDER)
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)}; add them to COLUMN_ORDER")
    columns = [name for name in COLUMN_ORDER if name in present]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def timed(function: Callable, *args, **kwargs) -> tuple[float, float]:
    """(function's value, wall-clock seconds it took)."""
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def progress(settings: Iterable, study: str, total: int | None = None):
    """A progress bar over a study's settings (stderr), so a long grid shows where it is."""
    return tqdm(settings, desc=f"toy {study}", total=total, unit="setting", dynamic_ncols=True)


def mean_curve(rows: list[dict], x: str, **match) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x values, mean and standard deviation over repetitions of `value`, for rows matching `match`."""
    groups: dict[float, list[float]] = defaultdict(list)
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            groups[row[x]].append(row["value"])
    xs = np.array(sorted(groups))
    means = np.array([np.mean(groups[v]) for v in xs])
    stds = np.array([np.std(groups[v]) for v in xs])
    return xs, means, stds


def plot_curve(axis, rows: list[dict], x: str, label: str, style: str = "-", **match) -> None:
    """A mean line with a +-1 std band (when there are several repetitions)."""
    xs, means, stds = mean_curve(rows, x, **match)
    if len(xs) == 0:
        return
    (line,) = axis.plot(xs, means, style, marker=".", label=label)
    if np.any(stds > 0):
        axis.fill_between(xs, means - stds, means + stds, color=line.get_color(), alpha=0.2)

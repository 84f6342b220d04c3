"""`dse-experiment plot RUN_DIR... --out FIG.png`: the paper's figure layout from history files.

Top row: DSE(Z), DSMI(Z; Y), DSMI(Z; X) against epoch; bottom row: the same against
validation accuracy (when the history records `val_acc`). Several runs overlay, each
labelled by its directory.
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib

from dse_callback.plotting import close_figure, pyplot

PANELS = (("dse", "DSE(Z)"), ("dsmi_y", "DSMI(Z; Y)"), ("dsmi_x", "DSMI(Z; X)"))


def find_histories(run_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """Every DSEMonitor history file at or below `run_dir`."""
    path = pathlib.Path(run_dir)
    if path.is_file():
        return [path]
    found = sorted(path.rglob("dse_history*.csv"))
    if not found:
        raise FileNotFoundError(f"no dse_history*.csv at or below {path}; is it a run directory written by DSEMonitor?")
    return found


def read_history(path: pathlib.Path) -> dict[str, list[float]]:
    """Columns of a history file as floats (blank cells become NaN), sorted by epoch."""
    with open(path) as stream:
        rows = sorted(csv.DictReader(stream), key=lambda row: int(row["epoch"]))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                number = float(value) if value not in ("", None) else math.nan
            except ValueError:
                continue  # text columns such as the layer name
            columns.setdefault(key, []).append(number)
    return columns


def labelled_histories(run_dirs) -> list[tuple[str, pathlib.Path]]:
    """(label, history file) pairs: a run is named by the directory given, plus the
    sub-directory of the history when that directory holds several."""
    pairs = []
    for run_dir in run_dirs:
        found = find_histories(run_dir)
        name = pathlib.Path(run_dir).name
        for path in found:
            relative = path.parent.relative_to(run_dir) if len(found) > 1 else None
            pairs.append((f"{name}/{relative}" if relative else name, path))
    return pairs


def plot_runs(run_dirs, out: str | pathlib.Path, title: str | None = None) -> pathlib.Path:
    """Write the figure for the runs' histories to `out` and return its path."""
    plt = pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for label, path in labelled_histories(run_dirs):
        columns = read_history(path)
        accuracy = columns.get("val_acc")
        for column, (key, name) in enumerate(PANELS):
            values = columns.get(key)
            if values is None:
                axes[0][column].set_title(f"{name} (not measured)")
                continue
            axes[0][column].plot(columns["epoch"], values, marker="o", markersize=3, label=label)
            axes[0][column].set_title(name)
            if accuracy is not None:
                pairs = [(a, v) for a, v in zip(accuracy, values) if math.isfinite(a) and math.isfinite(v)]
                if pairs:
                    axes[1][column].plot(*zip(*pairs), marker="o", markersize=3, label=label)
    for column, (_, name) in enumerate(PANELS):
        axes[0][column].set_xlabel("epoch")
        axes[1][column].set_xlabel("validation accuracy")
        axes[1][column].set_ylabel(name)
        axes[0][column].set_ylabel("bits")
        for row in (0, 1):
            axes[row][column].grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    close_figure(figure)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="dse-experiment plot", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", help="run directories (or history files) to overlay")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    print(plot_runs(args.run_dirs, args.out, args.title))

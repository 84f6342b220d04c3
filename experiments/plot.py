"""`dse-experiment plot RUN_DIR... --out FIG.png [--plane PLANE.png]`: figures from history files.

The curves (`--out`): top row DSE(Z), DSMI(Z; Y), DSMI(Z; X) against epoch; bottom row the
same against validation accuracy (when the history records `val_acc`). Several runs
overlay, each labelled by its directory; a history with several layers (its
`representation` column) gives one line per layer.

Every probe's values (`--table`): one CSV row per run, layer and probe epoch, with the
bandwidth as passed, the resolved sigma, Z's RMS radius over it (`scale`), DSE, the DSMIs
and the recorded accuracies. Several monitors' histories in one log directory
(`dse_history_{name}.csv`) are told apart by their monitor name.

The information plane (`--plane`): DSMI(Z; X) against DSMI(Z; Y), one trajectory per run
and layer, coloured by epoch (the paper's block-by-block view).
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib

from dse_callback.report.figures import close_figure, information_plane_figure, pyplot

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


def read_histories(path: pathlib.Path) -> dict[str, dict[str, list[float]]]:
    """{representation: its columns} of a history file; one entry "Z" for files without
    a `representation` column (written before monitors watched several layers)."""
    with open(path) as stream:
        rows = list(csv.DictReader(stream))
    names = list(dict.fromkeys(row.get("representation") or "Z" for row in rows)) or ["Z"]
    return {name: _columns([row for row in rows if (row.get("representation") or "Z") == name]) for name in names}


def read_history(path: pathlib.Path, representation: str | None = None) -> dict[str, list[float]]:
    """Columns of one representation's rows as floats (blank cells become NaN), sorted by
    epoch; the file's first representation when None."""
    histories = read_histories(path)
    if representation is None:
        return next(iter(histories.values()))
    if representation not in histories:
        raise KeyError(f"{path} has no representation {representation!r}; it has {sorted(histories)}")
    return histories[representation]


def _columns(rows: list[dict]) -> dict[str, list[float]]:
    rows = sorted(rows, key=lambda row: int(row["epoch"]))
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
            label = f"{name}/{relative}" if relative and str(relative) != "." else name
            if sum(other.parent == path.parent for other in found) > 1:
                label += f" {_monitor_name(path)}"  # several monitors' histories in one log directory
            pairs.append((label, path))
    return pairs


def _monitor_name(path: pathlib.Path) -> str:
    """The monitor a history file belongs to: `dse_history_{name}.csv`, or "Z" for `dse_history.csv`."""
    return path.stem.removeprefix("dse_history").removeprefix("_") or "Z"


SUMMARY_COLUMNS = ("dse", "dsmi_y", "dsmi_x", "sigma", "scale", "val_acc", "val_knn_acc")


def summary_rows(run_dirs) -> list[dict]:
    """One row per run, layer and probe: epoch, the bandwidth as passed, and SUMMARY_COLUMNS (blank if absent)."""
    rows = []
    for label, path in labelled_histories(run_dirs):
        with open(path) as stream:
            bandwidths = {
                (r.get("representation") or "Z", r["epoch"]): r.get("bandwidth", "") for r in csv.DictReader(stream)
            }
        for name, columns in read_histories(path).items():
            for index, epoch in enumerate(columns["epoch"]):
                row = {"run": label, "representation": name, "epoch": int(epoch)}
                row["bandwidth"] = bandwidths.get((name, str(int(epoch))), "")
                row.update({key: columns[key][index] if key in columns else "" for key in SUMMARY_COLUMNS})
                rows.append(row)
    return rows


def write_summary(run_dirs, out: str | pathlib.Path) -> pathlib.Path:
    """Write `summary_rows` as a CSV to `out` and return its path."""
    rows = summary_rows(run_dirs)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["run", "representation", "epoch", "bandwidth", *SUMMARY_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    return out


def labelled_representations(run_dirs) -> list[tuple[str, dict[str, list[float]]]]:
    """(label, columns) per run and layer; the layer joins the label when a file has several."""
    labelled = []
    for label, path in labelled_histories(run_dirs):
        histories = read_histories(path)
        for name, columns in histories.items():
            labelled.append((f"{label} {name}" if len(histories) > 1 else label, columns))
    return labelled


def plot_information_plane(run_dirs, out: str | pathlib.Path, title: str | None = None) -> pathlib.Path:
    """Write DSMI(Z; X) against DSMI(Z; Y) per run and layer, coloured by epoch, to `out`."""
    points = {}
    for label, columns in labelled_representations(run_dirs):
        if "dsmi_x" not in columns or "dsmi_y" not in columns:
            continue
        rows = zip(columns["epoch"], columns["dsmi_x"], columns["dsmi_y"])
        points[label] = [(int(e), x, y) for e, x, y in rows if math.isfinite(x) and math.isfinite(y)]
    if not any(points.values()):
        raise ValueError(f"no history under {list(map(str, run_dirs))} has finite dsmi_x and dsmi_y values to draw")
    figure = information_plane_figure(points, title or "information plane")
    return save_figure(figure, out)


def save_figure(figure, out: str | pathlib.Path, title: str | None = None) -> pathlib.Path:
    """Title (when given), lay out, write (creating its folder) and close a figure; returns its path.

    Every figure the experiments write goes through here, at one resolution.
    """
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    close_figure(figure)
    return out


def plot_runs(run_dirs, out: str | pathlib.Path, title: str | None = None) -> pathlib.Path:
    """Write the figure for the runs' histories to `out` and return its path."""
    plt = pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for label, columns in labelled_representations(run_dirs):
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
    return save_figure(figure, out, title)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="dse-experiment plot", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", help="run directories (or history files) to overlay")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--plane", default=None, help="also write the information plane to this PNG")
    parser.add_argument("--title", default=None)
    parser.add_argument("--table", default=None, help="also write every probe's values (one row per probe) to this CSV")
    args = parser.parse_args(argv)
    print(plot_runs(args.run_dirs, args.out, args.title))
    if args.table:
        print(write_summary(args.run_dirs, args.table))
    if args.plane:
        print(plot_information_plane(args.run_dirs, args.plane, args.title))

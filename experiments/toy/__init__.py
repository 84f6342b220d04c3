"""`dse-experiment toy STUDY --out DIR [--quick] [--seed S]`: the paper's toy studies.

Each study writes DIR/STUDY.csv (long format: one row per setting, repetition and
estimator) and DIR/STUDY.png (the paper's layout). `--quick` runs a reduced grid.

    dse-experiment toy dimension --out results/toy
    dse-experiment toy blobs --out /tmp/toy --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import time

import torch

from .blobs import BlobsGrid, blobs_study
from .corruption import CorruptionGrid, corruption_study
from .dimension import DimensionGrid, dimension_study
from .runtime import RuntimeGrid, runtime_study

# study name -> (its grid class, the function that runs it and writes CSV and figure)
STUDIES = {
    "dimension": (DimensionGrid, dimension_study),
    "corruption": (CorruptionGrid, corruption_study),
    "blobs": (BlobsGrid, blobs_study),
    "runtime": (RuntimeGrid, runtime_study),
}

__all__ = ["STUDIES", "run_study", "toy_main"]


def run_study(study: str, out, quick: bool = False, seed: int = 0, **overrides) -> tuple[pathlib.Path, pathlib.Path]:
    """Run one study on its full (or quick) grid, with fields of the grid overridden; returns (CSV, PNG)."""
    if study not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}; got {study!r}")
    grid_class, function = STUDIES[study]
    grid = grid_class.quick() if quick else grid_class()
    grid = dataclasses.replace(grid, **overrides)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return function(out, grid, seed)


def toy_main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="dse-experiment toy", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--out", required=True, help="directory for STUDY.csv and STUDY.png")
    parser.add_argument("--quick", action="store_true", help="the reduced grid (under 2 minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every data set and estimator")
    parser.add_argument(
        "--n", type=int, default=None, help="points per data set, overriding the study's N (not for corruption)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); 1 is fastest on a busy shared CPU",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    overrides = {} if args.n is None else {"n": args.n}
    if args.n is not None and args.study == "corruption":
        parser.error("--n does not apply to corruption (its size is 100 points per branch)")
    csv_path, figure = run_study(args.study, args.out, quick=args.quick, seed=args.seed, **overrides)
    print(f"{args.study}: {csv_path} and {figure} in {time.perf_counter() - start:.0f} s")

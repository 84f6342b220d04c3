"""`dse-experiment population --config configs/population/mnist_cpu.yaml`: which bandwidth makes DSMI track accuracy.

The paper's cross-model study (DSMI(Z; Y) of 962 pretrained ImageNet models against their
top-1 accuracy) in miniature, run under every bandwidth side by side: three families of
small models (MLPs, ConvNets, ViTs on 7 x 7 patches) trained here on real MNIST, each
measured on one fixed probe of the test set (DSE, DSMI(Z; Y), DSMI(Z; X), CSE, CSMI(Z; Y),
RankMe) with its accuracy on the whole test set. Writes, under `out`:

- `{name}_models.csv`: long, one row per model and bandwidth (spec, accuracy, the mean
  feature norm, the resolved sigma and the RMS radius over it, the measures, seconds);
  the sigma-free measures (CSE, CSMI, RankMe) repeat on each of a model's rows;
- `{name}_correlations.csv`: long, columns `sigma, measure, family, n_models, spearman,
  ci_low, ci_high, partial_spearman`: Spearman with accuracy per bandwidth x measure x
  family (and pooled, family `all`), its percentile bootstrap 95% interval over the models
  (`bootstrap` resamples, seeded) and the rank partial correlation given the mean feature
  norm; the sigma-free measures' rows repeat, identical, under every bandwidth;
- `{name}_choice.txt`: the default bandwidth by the rule below, with the evidence;
- `{name}.png`: Spearman of DSE and the DSMIs per family and bandwidth, with intervals;
  `{name}_scatter.png`: accuracy against DSMI(Z; Y) under each bandwidth.

The rule that chooses the monitor's default bandwidth (`choice.py`): among the bandwidths
the monitor accepts (`10` and the presets `median`, `rms`, `knn`), the one with the highest
minimum within-family Spearman with accuracy over its two headline curves, DSE and
DSMI(Z; Y) (ties: the higher pooled Spearman of DSMI(Z; Y)); it is adopted only if its worst
family on DSMI(Z; Y) is at least that of `sqrt_dim`, the paper's ImageNet setting. A
measure that orders the models within every family is one a user can trust on their own
model; a pooled correlation can come from the families' differences alone.

The config (YAML) holds `data_dir`, `train_images`, `probe_size`, `sigmas` (the bandwidths:
"sqrt_dim", numbers, "median", "rms", "knn"), `t`, `batch_size`, `lr`, `seed`, `bootstrap`
(resamples), `threads` (torch's intra-op threads during the study; 1 by default: on a
shared 2-core machine two threads per process made the eigensolves 30x slower), `out`,
`name`, a `grid` per family (every combination of its `width`,
`depth`, `steps` and `seed` lists) and `models`, a list of further single specs.
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import time

import torch
import torchvision
import yaml

from dse_callback import spectral_clusters

from ..data import SPECS
from .choice import choose_default, format_choice
from .figures import plot_correlations, plot_scatter
from .metrics import (
    BANDWIDTHS,
    CORRELATION_COLUMNS,
    PRESETS,
    bandwidth_label,
    correlation_table,
    format_table,
    measure,
    write_csv,
)
from .models import ModelSpec, build_model, representations_and_accuracy, train_model

DEFAULTS = {
    "data_dir": "data",
    "train_images": 20_000,
    "probe_size": 2_000,
    "sigmas": list(BANDWIDTHS),
    "t": 1,
    "batch_size": 128,
    "lr": 1e-3,
    "seed": 0,
    "bootstrap": 2000,
    "threads": 1,
    "out": "results/population",
    "name": "mnist_cpu",
    "grid": {},
    "models": [],
}


def load_config(path: str | pathlib.Path, overrides: dict | None = None) -> dict:
    """The YAML config over DEFAULTS, then `overrides`; unknown keys are an error."""
    config = dict(DEFAULTS)
    loaded = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    unknown = sorted(set(loaded) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown keys {unknown} in {path}; valid keys: {sorted(DEFAULTS)}")
    config.update(loaded)
    config.update({key: value for key, value in (overrides or {}).items() if value is not None})
    if not isinstance(config["sigmas"], list) or not config["sigmas"]:
        raise ValueError(f"sigmas must be a non-empty list of bandwidths, got {config['sigmas']!r}")
    config["sigmas"] = list(dict.fromkeys(bandwidth_label(sigma) for sigma in config["sigmas"]))
    if isinstance(config["threads"], bool) or not isinstance(config["threads"], int) or config["threads"] < 1:
        raise ValueError(f"threads must be an integer >= 1 (torch's intra-op threads), got {config['threads']!r}")
    if isinstance(config["bootstrap"], bool) or not isinstance(config["bootstrap"], int) or config["bootstrap"] < 100:
        raise ValueError(f"bootstrap must be an integer >= 100 (resamples), got {config['bootstrap']!r}")
    return config


def model_specs(config: dict) -> list[ModelSpec]:
    """Every combination of each family's grid, then the listed single models (duplicates dropped)."""
    specs = []
    for family, grid in config["grid"].items():
        lists = [
            grid.get(key, default)
            for key, default in (("width", None), ("depth", None), ("steps", None), ("seed", [0]))
        ]
        if any(values is None for values in lists):
            raise ValueError(f"grid.{family} needs lists 'width', 'depth' and 'steps', got {grid!r}")
        specs += [ModelSpec(family, *combination) for combination in itertools.product(*lists)]
    specs += [ModelSpec(**entry) for entry in config["models"]]
    unique = list(dict.fromkeys(specs))
    if len(unique) < 3:
        raise ValueError(f"the population needs at least 3 models to correlate, got {len(unique)}")
    return unique


def load_mnist(
    data_dir: str | pathlib.Path, train: bool, count: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images normalized as in training, (N, 1, 28, 28) float32, and labels (N,)."""
    dataset = torchvision.datasets.MNIST(str(data_dir), train=train, download=False)
    spec = SPECS["mnist"]
    images = (dataset.data[:count].float() / 255.0 - spec.mean[0]) / spec.std[0]
    return images.unsqueeze(1), dataset.targets[:count].long()


def fixed_probe(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random subset of `size` test images (all if fewer)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    return order[: min(size, len(labels))].sort().values


def run_population(config: dict) -> tuple[list[dict], list[dict]]:
    """Train and measure every model of `config` under each bandwidth; returns (long rows, correlation table)."""
    specs = model_specs(config)
    bandwidths = [bandwidth_label(sigma) for sigma in config["sigmas"]]
    train_images, train_labels = load_mnist(config["data_dir"], True, config["train_images"])
    test_images, test_labels = load_mnist(config["data_dir"], False)
    probe = fixed_probe(test_labels, config["probe_size"], config["seed"])
    input_clusters = spectral_clusters(test_images[probe].flatten(1).double(), n_clusters=10, seed=config["seed"])
    print(
        f"{len(specs)} models; {len(train_images)} training images; probe of {len(probe)} test images; "
        f"accuracy on all {len(test_images)} test images; sigma: {', '.join(bandwidths)}"
    )
    rows, started = [], time.perf_counter()
    work = [_work(spec) for spec in specs]
    for index, spec in enumerate(specs, 1):
        tick = time.perf_counter()
        model = build_model(spec, tuple(train_images.shape[1:]))
        loss = train_model(model, train_images, train_labels, spec.steps, spec.seed, config["batch_size"], config["lr"])
        z, accuracy = representations_and_accuracy(model, test_images, test_labels)
        trained = time.perf_counter()
        shared, per_bandwidth = measure(z[probe], test_labels[probe], input_clusters, bandwidths, config["t"])
        done = time.perf_counter()
        head = {
            "model": spec.name,
            **vars(spec),
            "parameters": sum(p.numel() for p in model.parameters()),
            "dim_z": z.shape[1],
            "final_loss": loss,
            "accuracy": accuracy,
        }
        seconds = {"train_seconds": trained - tick, "measure_seconds": done - trained}
        rows += [{**head, **shared, **values, **seconds} for values in per_bandwidth]
        elapsed = done - started
        remaining = elapsed / sum(work[:index]) * sum(work[index:])
        print(
            f"[{index}/{len(specs)}] {spec.name:<26} acc {accuracy:.3f} |z| {shared['feature_norm']:7.2f}  DSMI(Z;Y) "
            + " ".join(f"{v['sigma']} {v['dsmi_y']:.2f}" for v in per_bandwidth)
            + f"  train {seconds['train_seconds']:.0f}s measure {seconds['measure_seconds']:.0f}s  "
            f"elapsed {elapsed / 60:.1f} min, about {remaining / 60:.1f} min left",
            flush=True,
        )
    return rows, correlation_table(rows, resamples=config["bootstrap"], seed=config["seed"])


def _work(spec: ModelSpec) -> float:
    """A rough relative cost of a spec (training steps by family, plus the measures: ~300 steps), for the time left."""
    per_step = {"mlp": 0.2, "cnn": 0.6, "vit": 0.8}.get(spec.family, 1.0) * (1.0 + 0.5 * (spec.depth - 1))
    return 300.0 + spec.steps * per_step


def write_outputs(rows: list[dict], table: list[dict], config: dict) -> dict[str, pathlib.Path]:
    """The models and correlations CSVs, the choice (when the table has its bandwidths) and the figures."""
    out, name = pathlib.Path(config["out"]), config["name"]
    n_models = len({row["model"] for row in rows})
    title = f"{n_models} models on MNIST; probe of {config['probe_size']} test images"
    paths = {
        "models": write_csv(rows, out / f"{name}_models.csv"),
        "correlations": write_csv(table, out / f"{name}_correlations.csv", CORRELATION_COLUMNS),
        "figure": plot_correlations(table, out / f"{name}.png", title=title),
        "scatter": plot_scatter(rows, out / f"{name}_scatter.png", title=title),
    }
    labels = {entry["sigma"] for entry in table}
    candidates = [label for label in ("10", *PRESETS) if label in labels]
    if "sqrt_dim" in labels and candidates:
        text = format_choice(choose_default(table, candidates))
        print(text)
        paths["choice"] = out / f"{name}_choice.txt"
        paths["choice"].write_text(text + "\n")
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="dse-experiment population", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the study's YAML file")
    parser.add_argument("--out", default=None, help="output folder (overrides the config's `out`)")
    parser.add_argument("--data-dir", default=None, help="torchvision MNIST root (overrides `data_dir`)")
    args = parser.parse_args(argv)
    config = load_config(args.config, {"out": args.out, "data_dir": args.data_dir})
    started, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(config["threads"])
    try:
        rows, table = run_population(config)
        print(format_table(table))
        for kind, path in write_outputs(rows, table, config).items():
            print(f"{kind}: {path}")
    finally:
        torch.set_num_threads(threads)
    print(f"population study: {(time.perf_counter() - started) / 60:.1f} min")

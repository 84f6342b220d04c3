"""`dse-experiment population --config configs/population/mnist_cpu.yaml`: DSMI against accuracy across models.

The paper's cross-model study (DSMI(Z; Y) of 962 pretrained ImageNet models against their
top-1 accuracy) in miniature: small MLPs and ConvNets trained here on real MNIST, each
measured on one fixed probe of the test set (DSE, DSMI(Z; Y), DSMI(Z; X), CSE, CSMI(Z; Y),
RankMe), with its accuracy on the whole test set. Writes, under `out`:

- `{name}_models.csv`: one row per model (spec, accuracy, measures, seconds);
- `{name}_correlations.csv`: Pearson and Spearman correlation of each measure with
  accuracy, with p-values (also printed);
- `{name}.png`: accuracy against each measure, ConvNets and MLPs coloured apart.

The config (YAML) holds `data_dir`, `train_images`, `probe_size`, `sigma` (a number,
"sqrt_dim" or "median"), `t`, `batch_size`, `lr`, `seed`, `out`, `name`, a `grid` per family
(every combination of its `width`, `depth`, `steps` and `seed` lists) and `models`, a list
of further single specs.
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
from .metrics import correlations, format_table, measure, plot_population, write_csv
from .models import ModelSpec, build_model, representations_and_accuracy, train_model

DEFAULTS = {
    "data_dir": "data",
    "train_images": 20_000,
    "probe_size": 2_000,
    "sigma": "sqrt_dim",
    "t": 1,
    "batch_size": 128,
    "lr": 1e-3,
    "seed": 0,
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
    return config


def model_specs(config: dict) -> list[ModelSpec]:
    """Every combination of each family's grid, then the listed single models (duplicates dropped)."""
    specs = []
    for family, grid in config["grid"].items():
        lists = [grid.get(key, default) for key, default in (("width", None), ("depth", None), ("steps", None), ("seed", [0]))]
        if any(values is None for values in lists):
            raise ValueError(f"grid.{family} needs lists 'width', 'depth' and 'steps', got {grid!r}")
        specs += [ModelSpec(family, *combination) for combination in itertools.product(*lists)]
    specs += [ModelSpec(**entry) for entry in config["models"]]
    unique = list(dict.fromkeys(specs))
    if len(unique) < 3:
        raise ValueError(f"the population needs at least 3 models to correlate, got {len(unique)}")
    return unique


def load_mnist(data_dir: str | pathlib.Path, train: bool, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
    """Train, measure and correlate every model of `config`; returns (rows, correlation table)."""
    specs = model_specs(config)
    train_images, train_labels = load_mnist(config["data_dir"], True, config["train_images"])
    test_images, test_labels = load_mnist(config["data_dir"], False)
    probe = fixed_probe(test_labels, config["probe_size"], config["seed"])
    input_clusters = spectral_clusters(test_images[probe].flatten(1).double(), n_clusters=10, seed=config["seed"])
    print(f"{len(specs)} models; {len(train_images)} training images; probe of {len(probe)} test images; "
          f"accuracy on all {len(test_images)} test images")  # fmt: skip
    rows, started = [], time.perf_counter()
    for index, spec in enumerate(specs, 1):
        tick = time.perf_counter()
        model = build_model(spec, tuple(train_images.shape[1:]))
        loss = train_model(model, train_images, train_labels, spec.steps, spec.seed, config["batch_size"], config["lr"])
        z, accuracy = representations_and_accuracy(model, test_images, test_labels)
        trained = time.perf_counter()
        values = measure(z[probe], test_labels[probe], input_clusters, config["sigma"], config["t"])
        row = {"model": spec.name, **vars(spec), "parameters": sum(p.numel() for p in model.parameters()),
               "dim_z": z.shape[1], "final_loss": loss, "accuracy": accuracy, **values,
               "train_seconds": trained - tick, "measure_seconds": time.perf_counter() - trained}  # fmt: skip
        rows.append(row)
        elapsed = time.perf_counter() - started
        print(f"[{index}/{len(specs)}] {spec.name:<28} acc {accuracy:.3f}  DSE {values['dse']:.2f}  "
              f"DSMI(Z;Y) {values['dsmi_y']:.2f}  train {row['train_seconds']:.1f}s  measure {row['measure_seconds']:.1f}s  "
              f"elapsed {elapsed / 60:.1f} min, about {elapsed / index * (len(specs) - index) / 60:.1f} min left", flush=True)  # fmt: skip
    return rows, correlations(rows)


def write_outputs(rows: list[dict], table: list[dict], config: dict) -> dict[str, pathlib.Path]:
    out, name = pathlib.Path(config["out"]), config["name"]
    title = f"{len(rows)} models on MNIST; probe of {config['probe_size']} test images; sigma {config['sigma']}"
    return {
        "models": write_csv(rows, out / f"{name}_models.csv"),
        "correlations": write_csv(table, out / f"{name}_correlations.csv"),
        "figure": plot_population(rows, table, out / f"{name}.png", title=title),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="dse-experiment population", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", required=True, help="the study's YAML file")
    parser.add_argument("--out", default=None, help="output folder (overrides the config's `out`)")
    parser.add_argument("--data-dir", default=None, help="torchvision MNIST root (overrides `data_dir`)")
    args = parser.parse_args(argv)
    config = load_config(args.config, {"out": args.out, "data_dir": args.data_dir})
    rows, table = run_population(config)
    print(format_table(table))
    for kind, path in write_outputs(rows, table, config).items():
        print(f"{kind}: {path}")

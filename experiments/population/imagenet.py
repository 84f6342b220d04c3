"""The paper's ImageNet study: DSE and DSMI of pretrained timm models against their accuracy.

    pip install -e ".[experiments,timm]"
    python -m dse_experiments.population.imagenet --imagenet-val /data/imagenet/val \\
        --accuracy-csv results-imagenet.csv --models resnet50.a1_in1k vit_small_patch16_224.augreg_in21k_ft_in1k
    python -m dse_experiments.population.imagenet --imagenet-val /data/imagenet/val \\
        --accuracy-csv results-imagenet.csv --all-from-csv          # every model of the table

The probe, as in the paper: the ImageNet validation images of the 20 classes of Imagenette
and Imagewoof (10 easy and 10 fine-grained dog classes), the first 50 of each class, each
in 3 augmented copies (random resized crop and flip, drawn once with a fixed seed and
reused for every model): N = 3,000. Z is the model's pooled pre-logit feature (timm's
`num_classes=0`); the paper's sigma = sqrt(dim Z) (`sqrt_dim`), and by default every
bandwidth of the MNIST study beside it (`--sigmas`). Y is the class; X is the copies downsampled to
64 x 64 and grouped once into 20 spectral clusters. Accuracies come from a table with
columns `model` and `top1` (timm publishes `results-imagenet.csv` in its repository).

Needs the ImageNet validation set in class folders (`val/<wnid>/*.JPEG`, as after the
usual valprep script) and network access for timm's pretrained weights; neither is
available where this project is tested, so the tests run it on tiny generated images with
randomly initialized timm models (`pretrained=False`). Writes `{out}/imagenet_models.csv`,
`{out}/imagenet_correlations.csv`, `{out}/imagenet.png` and `{out}/imagenet_scatter.png`
(the MNIST study's layout: long rows, one per model and bandwidth).
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib
import time
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from dse_callback import downsample_images, spectral_clusters

from .figures import plot_correlations, plot_scatter
from .metrics import BANDWIDTHS, CORRELATION_COLUMNS, correlation_table, format_table, measure, write_csv

IMAGENETTE = (
    "n01440764",
    "n02102040",
    "n02979186",
    "n03000684",
    "n03028079",
    "n03394916",
    "n03417042",
    "n03425413",
    "n03445777",
    "n03888605",
)
IMAGEWOOF = (
    "n02086240",
    "n02087394",
    "n02088364",
    "n02089973",
    "n02093754",
    "n02096294",
    "n02099601",
    "n02105641",
    "n02111889",
    "n02115641",
)
PAPER_CLASSES = IMAGENETTE + IMAGEWOOF

# (name, pretrained) -> (model returning Z (N, D), its input (size, mean, std)).
ModelFactory = Callable[[str, bool], tuple[torch.nn.Module, tuple[int, tuple, tuple]]]


def class_images(
    val_dir: str | pathlib.Path, classes: Sequence[str] = PAPER_CLASSES, per_class: int = 50
) -> tuple[list, list]:
    """The first `per_class` images (sorted by file name) of each class folder, and class indices."""
    images, labels = [], []
    for label, wnid in enumerate(classes):
        folder = pathlib.Path(val_dir) / wnid
        files = sorted(path for path in folder.glob("*") if path.suffix.lower() in (".jpeg", ".jpg", ".png"))
        if len(files) < per_class:
            raise FileNotFoundError(
                f"{folder} has {len(files)} images, {per_class} needed; is it ImageNet val in class folders?"
            )
        images += [Image.open(path).convert("RGB") for path in files[:per_class]]
        labels += [label] * per_class
    return images, labels


def crop_boxes(images: Sequence[Image.Image], copies: int, seed: int = 0) -> list[tuple]:
    """(image index, top, left, height, width, flip) of each augmented copy, drawn once.

    RandomResizedCrop's default scale and ratio; a private seed, so every model sees the
    same copies and the caller's RNG is left alone.
    """
    boxes = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index, image in enumerate(images):
            for _ in range(copies):
                top, left, height, width = RandomResizedCrop.get_params(image, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
                boxes.append((index, top, left, height, width, bool(torch.rand(()) < 0.5)))
    return boxes


def render(images: Sequence[Image.Image], boxes: Sequence[tuple], size: int, mean=None, std=None) -> torch.Tensor:
    """The copies as a (N, 3, size, size) batch, normalized by mean and std when given."""
    tensors = []
    for index, top, left, height, width, flip in boxes:
        crop = TF.resized_crop(images[index], top, left, height, width, [size, size], antialias=True)
        tensor = TF.pil_to_tensor(crop).float() / 255.0
        tensor = TF.hflip(tensor) if flip else tensor
        tensors.append(TF.normalize(tensor, mean, std) if mean is not None else tensor)
    return torch.stack(tensors)


def timm_model(name: str, pretrained: bool) -> tuple[torch.nn.Module, tuple[int, tuple, tuple]]:
    """A timm model without its classifier (forward gives the pooled pre-logit Z) and its input."""
    try:
        import timm
    except ImportError as error:
        raise ImportError("the ImageNet study needs timm: pip install -e '.[timm]'") from error
    model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    config = timm.data.resolve_data_config({}, model=model)
    return model, (config["input_size"][-1], tuple(config["mean"]), tuple(config["std"]))


def model_family(model: torch.nn.Module) -> str:
    """ "transformer" for models with a patch embedding or attention blocks, else "cnn"."""
    names = {type(module).__name__ for module in model.modules()}
    is_transformer = hasattr(model, "patch_embed") or any(name.endswith("Attention") for name in names)
    return "transformer" if is_transformer else "cnn"


def read_accuracies(path: str | pathlib.Path | None) -> dict[str, float]:
    """model name -> top-1 accuracy (in [0, 1]) from a CSV with columns `model` and `top1` (percent)."""
    if path is None:
        return {}
    with open(path) as stream:
        return {row["model"]: float(row["top1"]) / 100.0 for row in csv.DictReader(stream)}


@torch.no_grad()
def representations(model: torch.nn.Module, batch: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model(batch[start : start + batch_size]).flatten(1) for start in range(0, len(batch), batch_size)]
    )


def run_study(
    val_dir,
    models: Sequence[str],
    accuracies: dict[str, float],
    factory: ModelFactory = timm_model,
    pretrained: bool = True,
    classes: Sequence[str] = PAPER_CLASSES,
    per_class: int = 50,
    copies: int = 3,
    seed: int = 0,
    bandwidths: Sequence = BANDWIDTHS,
) -> list[dict]:
    """Measure every model on the shared probe; one row per model and bandwidth (accuracy NaN where unknown)."""
    images, labels = class_images(val_dir, classes, per_class)
    boxes = crop_boxes(images, copies, seed)
    y = torch.tensor([labels[box[0]] for box in boxes])
    x_clusters = spectral_clusters(
        downsample_images(render(images, boxes, 64)).double(), n_clusters=len(classes), seed=seed
    )
    print(f"probe: {len(classes)} classes x {per_class} images x {copies} copies = {len(boxes)} points")
    rows, started = [], time.perf_counter()
    for index, name in enumerate(models, 1):
        tick = time.perf_counter()
        model, (size, mean, std) = factory(name, pretrained)
        z = representations(model, render(images, boxes, size, mean, std))
        shared, per_bandwidth = measure(z, y, x_clusters, bandwidths)
        head = {
            "model": name,
            "family": model_family(model),
            "parameters": sum(p.numel() for p in model.parameters()),
            "dim_z": z.shape[1],
            "image_size": size,
            "accuracy": accuracies.get(name, math.nan),
            **shared,
        }
        seconds = time.perf_counter() - tick
        rows += [{**head, **values, "seconds": seconds} for values in per_bandwidth]
        elapsed = time.perf_counter() - started
        print(
            f"[{index}/{len(models)}] {name}: top-1 {head['accuracy']:.3f}  DSMI(Z;Y) "
            + " ".join(f"{v['sigma']} {v['dsmi_y']:.2f}" for v in per_bandwidth)
            + f"  ({elapsed / 60:.1f} min, about {elapsed / index * (len(models) - index) / 60:.1f} min left)",
            flush=True,
        )
    return rows


def write_outputs(rows: list[dict], out: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """The models CSV always; the correlations and the figure when accuracies are known."""
    out = pathlib.Path(out)
    paths = {"models": write_csv(rows, out / "imagenet_models.csv")}
    known = [row for row in rows if math.isfinite(row["accuracy"])]
    n_known = len({row["model"] for row in known})
    if n_known >= 3:
        table = correlation_table(known)
        print(format_table(table))
        paths["correlations"] = write_csv(table, out / "imagenet_correlations.csv", CORRELATION_COLUMNS)
        title = f"{n_known} timm models, Imagenette + Imagewoof probe"
        paths["figure"] = plot_correlations(table, out / "imagenet.png", title=title)
        paths["scatter"] = plot_scatter(known, out / "imagenet_scatter.png", target_label="ImageNet top-1", title=title)
    else:
        print(f"accuracies known for {n_known} models; correlations need at least 3 (--accuracy-csv)")
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dse_experiments.population.imagenet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--imagenet-val", required=True, help="ImageNet validation images in <wnid>/ folders")
    parser.add_argument("--models", nargs="*", default=[], help="timm model names")
    parser.add_argument("--accuracy-csv", default=None, help="CSV with columns model, top1 (percent)")
    parser.add_argument("--all-from-csv", action="store_true", help="measure every model listed in --accuracy-csv")
    parser.add_argument("--no-pretrained", action="store_true", help="random weights (a smoke test, no download)")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigmas", nargs="+", default=list(BANDWIDTHS), help="bandwidths: sqrt_dim, numbers, presets")
    parser.add_argument("--out", default="results/imagenet_population")
    args = parser.parse_args(argv)
    accuracies = read_accuracies(args.accuracy_csv)
    models = list(args.models) + (sorted(set(accuracies) - set(args.models)) if args.all_from_csv else [])
    if not models:
        parser.error("give --models NAME... or --accuracy-csv with --all-from-csv")
    if args.per_class < 2 or args.copies < 1:
        parser.error(f"--per-class must be >= 2 and --copies >= 1, got {args.per_class} and {args.copies}")
    rows = run_study(
        args.imagenet_val,
        models,
        accuracies,
        pretrained=not args.no_pretrained,
        per_class=args.per_class,
        copies=args.copies,
        seed=args.seed,
        bandwidths=args.sigmas,
    )
    for kind, path in write_outputs(rows, args.out).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()

"""The options of a tracker and a monitor, each declared once, with its default, type and meaning.

Three frozen dataclasses hold them: `ProbeSettings` (what is probed and how it is read and
forwarded), `MeasureSettings` (which metrics, the bandwidth, the solver) and, for the
adapters, `MonitorSettings` (when to probe, what to report). `DSETracker`, `DSEMonitor` and
the Hugging Face callback take the fields as keyword arguments; `with_settings` writes them
into each `__init__`'s signature (LightningCLI and `help()` read it) and `split_settings`
sorts the keywords a call received back into the dataclasses. A new option is one field here.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..kernel.geometry.bandwidth import Bandwidth, resolve_sigma
from ..kernel.validation import check_choice, check_positive, check_positive_int, check_precision
from ..probe.batches import check_optional_key
from ..probe.capture import CAPTURE_MODES
from ..probe.pooling import POOL_MODES
from .metrics import check_metrics


def _option(default, doc: str):
    return field(default=default, metadata={"doc": doc})


def _check_optional_int(value, name: str, minimum: int) -> None:
    if value is not None:
        check_positive_int(value, name, minimum)


@dataclass(frozen=True)
class ProbeSettings:
    """What the probe holds, and how its batches are read and forwarded."""

    probe_size: int = _option(10_000, "at most this many probe samples, a fixed seeded subset")
    probe_batch_size: int | None = _option(
        None, "rows per probe forward call (no gradients are kept); None: 256 on the CPU, 1024 on a GPU"
    )
    num_workers: int | None = _option(
        None, "DataLoader workers of the probe's one reading pass; None: the validation loader's, else a default"
    )
    max_cache_bytes: int | None = _option(
        None, "a cap on the cached probe inputs; None: a quarter of the device's free memory"
    )
    capture: str = _option("input", 'record each watched layer\'s "input" or "output"')
    input_size: int = _option(64, "images are downsampled so that no side exceeds this before clustering X")
    input_key: str | None = _option(None, "key (or attribute) of the model's inputs in a batch, at any nesting level")
    label_key: str | None = _option(None, "key (or attribute) of the labels in a batch, at any nesting level")
    batch_to_inputs: Callable[[Any], Any] | None = _option(
        None, "callable batch -> inputs, for any other batch layout (wins over input_key)"
    )
    forward: Callable[[Any, Any], Any] | None = _option(
        None, "callable (model, inputs) for models not called as model(inputs)"
    )
    output_key: str | None = _option(
        None,
        'the field of a tuple, dict or ModelOutput a layer returns (e.g. "last_hidden_state"); None: its first tensor',
    )
    pool: str | None = _option(
        None,
        '"mean", "first", "last" or "flatten" for (B, T, H) sequence activations; None: "mean" for sequences, '
        "(B, H) left alone, conv maps flattened",
    )
    mask_key: str | None = _option(
        "attention_mask", "key of the attention mask in a batch, used when present by mean/first/last; None: no mask"
    )

    def __post_init__(self):
        check_positive_int(self.probe_size, "probe_size", minimum=2)
        _check_optional_int(self.probe_batch_size, "probe_batch_size", 1)
        _check_optional_int(self.num_workers, "num_workers", 0)
        _check_optional_int(self.max_cache_bytes, "max_cache_bytes", 0)
        check_choice(self.capture, "capture", CAPTURE_MODES)
        check_positive_int(self.input_size, "input_size")
        check_choice(self.pool, "pool", (None, *POOL_MODES))
        for name in ("input_key", "label_key", "output_key", "mask_key"):
            check_optional_key(getattr(self, name), name)
        for name in ("batch_to_inputs", "forward"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be a callable or None, got {value!r}")

    def forward_options(self) -> dict[str, Any]:
        """The options of every probe forward pass (`probe_forward`, `dry_run`)."""
        names = ("capture", "forward", "output_key", "pool")
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class MeasureSettings:
    """Which metrics are measured, and how."""

    metrics: Sequence[str] = _option(
        ("dse", "dsmi_y", "dsmi_x"), "any of dse, dsmi_y, dsmi_x, cse, csmi_y, csmi_x, rankme"
    )
    sigma: float | str | Bandwidth = _option(
        "rms",
        'the Gaussian bandwidth: a scale-free preset "rms" (the RMS radius of Z; chosen by the population study), '
        '"median" or "knn", a Bandwidth(kind, scale, k), or a number (the paper\'s fixed sigma, 10); resolved once '
        "per probe and layer, and shared by every metric",
    )
    t: float = _option(1, "diffusion time")
    solver: str = _option(
        "auto", '"auto" (exact up to a size per device, slq with an error bar above), "exact" or "slq"'
    )
    precision: str | None = _option(None, '"float64", "float32", or None (float64 on the CPU, float32 on GPUs)')
    n_input_clusters: int | None = _option(None, "clusters of X for DSMI(Z; X); None: the number of classes")
    seed: int = _option(0, "seeds the probe's choice, the forward pass's RNG, the DSMI subsets and the clustering")
    async_metrics: bool = _option(
        False, "compute the metrics in a background thread on the primary process while training goes on"
    )
    profile: bool = _option(
        False,
        "also compute each layer's entropy profile (DSE at c x sigma over a log grid of c) at every probe, drawn "
        "as one image per layer (epochs x c, coloured by DSE / log2 N) so saturation shows at a glance",
    )
    collective_timeout: float = _option(
        300.0,
        "under DDP, seconds a rank waits for the others in one of the probe's collectives (its own gloo groups) "
        "before that probe logs NaN with one warning on every rank; above the longest step one rank does alone "
        "(clustering X, a metric)",
    )

    def __post_init__(self):
        object.__setattr__(self, "metrics", check_metrics(self.metrics))
        resolve_sigma(self.sigma)  # kept as passed: the history spells it ("rms", "10")
        check_positive(self.t, "t")
        check_choice(self.solver, "solver", ("auto", "exact", "slq"))
        check_precision(self.precision)
        _check_optional_int(self.n_input_clusters, "n_input_clusters", 2)
        check_positive_int(self.seed, "seed", minimum=0)
        check_choice(self.async_metrics, "async_metrics", (False, True))
        check_choice(self.profile, "profile", (False, True))
        check_positive(self.collective_timeout, "collective_timeout")


@dataclass(frozen=True)
class MonitorSettings:
    """When an adapter probes, and what it reports beside the scalars."""

    every_n_epochs: int = _option(1, "probe after every n-th training epoch (plus the epoch-0 baseline)")
    log_spectrum: bool | None = _option(
        None,
        "figures (spectrum, information plane) to every logger that takes images (TensorBoard, W&B, MLflow, "
        "Comet), and as PNG files for a CSV logger or none; None: to the loggers that take images, when "
        "matplotlib is there",
    )
    record_metrics: Sequence[str] = _option(
        (), 'names of other logged metrics (for example "val_acc") copied into each history row'
    )

    def __post_init__(self):
        check_positive_int(self.every_n_epochs, "every_n_epochs")
        check_choice(self.log_spectrum, "log_spectrum", (None, False, True))
        object.__setattr__(self, "record_metrics", tuple(self.record_metrics))


def settings_parameters(*classes) -> list[inspect.Parameter]:
    """The fields of settings dataclasses as keyword-only parameters, with resolved types."""
    parameters = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for option in dataclasses.fields(cls):
            kind, annotation = inspect.Parameter.KEYWORD_ONLY, hints[option.name]
            parameters.append(inspect.Parameter(option.name, kind, default=option.default, annotation=annotation))
    return parameters


def with_settings(*classes):
    """Decorate an `__init__(self, ..., **options)`: its signature lists the classes' fields
    in place of `**options`, so LightningCLI and `help()` see each option with its default."""

    def decorate(init):
        own = list(inspect.signature(init).parameters.values())
        kept = [parameter for parameter in own if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
        parameters = kept + settings_parameters(*classes)
        init.__signature__ = inspect.Signature(parameters)
        init.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty}
        return init

    return decorate


def split_settings(options: dict[str, Any], *classes, owner: str) -> tuple:
    """One instance of each class from the keyword `options`; an unknown name is a TypeError
    that lists the valid ones."""
    known = {option.name: cls for cls in classes for option in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"{owner} got unknown option(s) {unknown}; valid options: {sorted(known)}")
    return tuple(cls(**{name: value for name, value in options.items() if known[name] is cls}) for cls in classes)


def settings_values(settings) -> dict[str, Any]:
    """{field: value} of one settings instance, values as they are (no copies)."""
    return {option.name: getattr(settings, option.name) for option in dataclasses.fields(settings)}


def settings_doc(*classes) -> str:
    """Google-style "name: meaning (default ...)" entries of the classes' fields, one line each,
    for the "Args:" section of a class docstring (napoleon misreads some wrapped entries)."""
    entries = []
    for cls in classes:
        for option in dataclasses.fields(cls):
            entries.append(f"        {option.name}: {option.metadata['doc']} (default {option.default!r}).")
    return "\n".join(entries)

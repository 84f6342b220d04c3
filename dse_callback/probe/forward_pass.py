"""One probe forward pass: every watched layer recorded in a single pass over the probe.

Flow of a probe through this module (`probe_forward`):

1. Set up isolation: every global RNG forked and restored (so training with the monitor
   stays bit-identical to training without it), every submodule in eval mode with its own
   flag restored afterwards, `torch.inference_mode()`, and one hook per watched layer
   (`LayerRecorders`), removed in `finally`.
2. For each probe batch (`ProbeSet.batches(device)`, this process's share under DDP):
   floating inputs cast to the model's floating dtype (a float64 NumPy probe on a float32
   model), then `convert_input(inputs)` (the Trainer's precision plugin: bf16/fp16/fp64
   casts), then `forward(model, inputs)` under `forward_context()` (the plugin's autocast or
   default dtype), exactly as a validation step runs. The batch's attention mask goes to the
   recorders, which pick each layer's tensor and pool it to rows (`capture`, `pooling`).
   When DSMI(Z; X) still needs its input clusters, the raw inputs are also downsampled and kept.
3. Each layer's rows are concatenated in probe order and cast to float32 (float64 stays)
   before any math; the padding batches' rows (last) are dropped; a layer whose row count
   differs from the rows fed is an error. Under DDP the tracker then gathers the shares.

Errors propagate: the caller (the tracker) turns them into one warning and NaN values.
`dry_run` forwards a few rows the same way, once, before training, and raises a
`DryRunError` that shows the batch: configuration errors surface there, not as NaN.
No Lightning here: the glue passes the precision plugin's functions in.
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from ..kernel.reference.clustering import downsample_images
from .batches import describe_batch
from .capture import EvalMode, LayerRecorders
from .probe_set import ProbeSet


class DryRunError(ValueError):
    """The dry run of a few probe rows failed: a configuration error, raised before training."""


def call_module(module: nn.Module, inputs: Any) -> Any:
    """The default forward: `module(inputs)`."""
    return module(inputs)


@contextlib.contextmanager
def isolated_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Run with every global RNG seeded to `seed`, then restore all of them exactly.

    A run with the monitor must train bit for bit like one without it, even when the
    probe's dataset applies random transforms or DataLoader workers draw a base seed.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def module_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def floating_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating parameter (or buffer); None when it has none."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def cast_floating(inputs: Any, dtype: torch.dtype | None) -> Any:
    """Every floating tensor of a nest of inputs cast to `dtype` (integers, token ids, stay).

    Example:
        >>> x, ids = cast_floating((torch.zeros(2, dtype=torch.float64), torch.arange(2)), torch.float32)
        >>> x.dtype, ids.dtype
        (torch.float32, torch.int64)
    """
    if dtype is None:
        return inputs
    return tree_map(lambda v: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v, inputs)


def as_float(z: torch.Tensor) -> torch.Tensor:
    """Activations ready for the kernel: float64 stays, every other dtype becomes float32."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def flat_inputs(inputs: torch.Tensor, size: int) -> torch.Tensor:
    """Inputs as rows for clustering X: images downsampled to at most `size` per side."""
    inputs = as_float(inputs)
    return downsample_images(inputs, size) if inputs.ndim == 4 else inputs.reshape(len(inputs), -1)


@dataclass
class ForwardResult:
    """What one probe pass recorded.

    Attributes:
        representations: {name: Z (N, D), float32 or float64}, in probe order.
        inputs: the inputs as rows (N, F) for clustering X, or None when not asked for.
        batches: forward calls made (one per probe batch).
        pooling: {name: the pooling applied} ("none", "mean", "first", "last", "flatten").
    """

    representations: dict[str, torch.Tensor]
    inputs: torch.Tensor | None
    batches: int
    pooling: dict[str, str] = field(default_factory=dict)


def probe_forward(
    model: nn.Module,
    probe: ProbeSet,
    layers: dict[str, str | None],
    capture: str = "input",
    *,
    seed: int = 0,
    device: torch.device | None = None,
    convert_input: Callable[[Any], Any] | None = None,
    forward_context: Callable[[], AbstractContextManager] | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    collect_inputs: bool = False,
    input_size: int = 64,
    output_key: str | None = None,
    pool: str | None = None,
) -> ForwardResult:
    """Run the probe through `model` once, recording every layer in `layers`.

    Args:
        model: the network (for Lightning, the LightningModule).
        probe: the prepared probe set.
        layers: {name: dotted layer name or None for the input of the last nn.Linear}.
        capture: record each layer's "input" or "output".
        seed: seeds the forked global RNGs during the pass.
        device: where the batches go; the model's device when None.
        convert_input: the precision cast of the inputs (identity when None).
        forward_context: a factory of the context to run `forward` in (none when None).
        forward: callable (model, inputs) -> anything; `model(inputs)` when None.
        collect_inputs: also return the inputs as rows, for clustering X.
        input_size: images are downsampled to at most this per side for clustering.
        output_key: the field of a tuple, dict or `ModelOutput` to record (None: the first tensor).
        pool: "mean", "first", "last", "flatten" or None, for (B, T, H) and larger activations.

    Returns:
        A `ForwardResult`.
    """
    device = module_device(model) if device is None else device
    run = _BatchRunner(model, convert_input, forward_context, forward)
    recorders = LayerRecorders(model, layers, capture, output_key, pool)
    kept_inputs, batches, rows, fed = [], 0, len(probe.share), 0
    try:
        with _isolated(model, device, seed), recorders:
            for inputs, mask, _, padding in probe.batches(device):
                if collect_inputs and not (padding and kept_inputs):  # an empty share keeps 0 rows
                    flat = flat_inputs(inputs, input_size)
                    kept_inputs.append(flat[:0] if padding else flat)
                run(inputs, mask, recorders)
                batches += 1
                fed += batch_rows(inputs)
        # The padding batches come last: the first `rows` rows are this process's share.
        representations = {name: as_float(z) for name, z in recorders.activations().items()}
    finally:
        recorders.remove()
    _check_rows(recorders, representations, fed, batches)
    representations = {name: z[:rows] for name, z in representations.items()}
    kept = torch.cat(kept_inputs) if kept_inputs else None
    return ForwardResult(representations, kept, batches, recorders.pooling)


def dry_run(
    model: nn.Module,
    probe: ProbeSet,
    layers: dict[str, str | None],
    capture: str = "input",
    *,
    rows: int = 4,
    seed: int = 0,
    device: torch.device | None = None,
    convert_input: Callable[[Any], Any] | None = None,
    forward_context: Callable[[], AbstractContextManager] | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    output_key: str | None = None,
    pool: str | None = None,
) -> ForwardResult:
    """Forward the probe's first `rows` samples once, as a probe runs, and raise what would fail.

    Runs under the same isolation as a probe (RNG forked and restored, eval mode restored per
    submodule, inference mode, hooks removed), so training is unchanged. Arguments as for
    `probe_forward`.

    Raises:
        DryRunError: reading the batch, the forward call, a layer's output (type, key,
            pooling), a hook that never fired, or a layer's row count failed; the message
            shows the batch (`describe_batch`) and the original error is chained.
    """
    device = module_device(model) if device is None else device
    run = _BatchRunner(model, convert_input, forward_context, forward)
    batch = None
    try:
        inputs, mask, _, batch = probe.head_batch(rows, device)
        recorders = LayerRecorders(model, layers, capture, output_key, pool)
        try:
            with _isolated(model, device, seed), recorders:
                run(inputs, mask, recorders)
            representations = {name: as_float(z) for name, z in recorders.activations().items()}
        finally:
            recorders.remove()
        _check_rows(recorders, representations, batch_rows(inputs), 1)
    except Exception as error:
        shown = "could not be read" if batch is None else f"was {describe_batch(batch)}"
        raise DryRunError(
            f"DSEMonitor's dry run of {rows} probe rows failed before training ({type(error).__name__}: {error}). "
            f"The batch {shown}. Check layer=, capture=, output_key=, pool=, mask_key=, forward=, input_key= and "
            "batch_to_inputs=."
        ) from error
    return ForwardResult(representations, None, 1, recorders.pooling)


class _BatchRunner:
    """One forward call of a probe batch: floating inputs cast to the model's dtype, the
    precision plugin's `convert_input`, the batch's mask to the recorders, `forward` under
    `forward_context`."""

    def __init__(self, model, convert_input=None, forward_context=None, forward=None):
        self.model = model
        self.dtype = floating_dtype(model)
        self.convert_input = convert_input or (lambda inputs: inputs)
        self.forward_context = forward_context or contextlib.nullcontext
        self.forward = forward or call_module

    def __call__(self, inputs: Any, mask: torch.Tensor | None, recorders: LayerRecorders) -> None:
        recorders.set_mask(mask)
        with self.forward_context():
            self.forward(self.model, self.convert_input(cast_floating(inputs, self.dtype)))


@contextlib.contextmanager
def _isolated(model: nn.Module, device: torch.device, seed: int) -> Iterator[None]:
    """RNG forked and restored, every submodule in eval mode (flags restored), inference mode."""
    with isolated_rng(device, seed), EvalMode(model), torch.inference_mode():
        yield


def _check_rows(recorders: LayerRecorders, representations: dict, fed: int, batches: int) -> None:
    for name, z in representations.items():
        if len(z) != fed:
            recorder = recorders.recorders[name]
            raise RuntimeError(
                f"layer {recorder.label!r} produced {len(z)} rows for the {fed} probe rows it was fed (it ran "
                f"{recorder.calls} times in {batches} batches); hook a layer that runs once per forward pass"
            )


def batch_rows(inputs: Any) -> int:
    """Rows in a batch of inputs: the length of its first tensor."""
    leaves = [leaf for leaf in tree_flatten(inputs)[0] if isinstance(leaf, torch.Tensor)]
    return len(leaves[0]) if leaves else 0

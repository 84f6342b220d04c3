"""One probe forward pass: every watched layer recorded in a single pass over the probe.

Flow of a probe through this module (`probe_forward`):

1. Set up isolation: every global RNG forked and restored (so training with the monitor
   stays bit-identical to training without it), every submodule in eval mode with its own
   flag restored afterwards, `torch.inference_mode()`, and one hook per watched layer
   (`LayerRecorders`), removed in `finally`.
2. For each probe batch (`ProbeSet.batches(device)`, this process's share under DDP):
   `convert_input(inputs)` (the Trainer's precision plugin: bf16/fp16/fp64 casts), then
   `forward(model, inputs)` under `forward_context()` (the plugin's autocast or default
   dtype), exactly as a validation step runs. When DSMI(Z; X) still needs its input
   clusters, the raw inputs are also downsampled and kept.
3. Each layer's rows are concatenated in probe order and cast to float32 (float64 stays)
   before any math; the padding batches' rows (last) are dropped; a layer whose row count
   differs from the rows fed is an error. Under DDP the tracker then gathers the shares.

Errors propagate: the caller (the tracker) turns them into one warning and NaN values.
No Lightning here: the glue passes the precision plugin's functions in.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..kernel.reference.clustering import downsample_images
from .capture import EvalMode, LayerRecorders
from .probe_set import ProbeSet


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
    """

    representations: dict[str, torch.Tensor]
    inputs: torch.Tensor | None
    batches: int


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

    Returns:
        A `ForwardResult`.
    """
    device = module_device(model) if device is None else device
    convert_input = convert_input or (lambda inputs: inputs)
    forward_context = forward_context or contextlib.nullcontext
    forward = forward or call_module
    recorders = LayerRecorders(model, layers, capture)
    kept_inputs, batches, rows, fed = [], 0, len(probe.share), 0
    try:
        with isolated_rng(device, seed), EvalMode(model), torch.inference_mode(), recorders:
            for inputs, _, padding in probe.batches(device):
                if collect_inputs and not (padding and kept_inputs):  # an empty share keeps 0 rows
                    flat = flat_inputs(inputs, input_size)
                    kept_inputs.append(flat[:0] if padding else flat)
                with forward_context():
                    forward(model, convert_input(inputs))
                batches += 1
                fed += batch_rows(inputs)
        # The padding batches come last: the first `rows` rows are this process's share.
        representations = {name: as_float(z) for name, z in recorders.activations().items()}
    finally:
        recorders.remove()
    for name, z in representations.items():
        if len(z) != fed:
            recorder = recorders.recorders[name]
            raise RuntimeError(
                f"layer {recorder.label!r} produced {len(z)} rows for the {fed} probe rows it was fed (it ran "
                f"{recorder.calls} times in {batches} batches); hook a layer that runs once per forward pass"
            )
    representations = {name: z[:rows] for name, z in representations.items()}
    return ForwardResult(representations, torch.cat(kept_inputs) if kept_inputs else None, batches)


def batch_rows(inputs: Any) -> int:
    """Rows in a batch of inputs: the length of its first tensor."""
    leaves = [leaf for leaf in tree_flatten(inputs)[0] if isinstance(leaf, torch.Tensor)]
    return len(leaves[0]) if leaves else 0

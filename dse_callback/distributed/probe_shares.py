"""How a probe runs across processes: the `Runtime` the glue passes in, and the gather.

`forward_shares`, on every process: its contiguous share of the probe (`ProbeSet.shard`)
through the model (`forward_pass.probe_forward`), then:

1. `all_succeeded`: one tiny all-gather of each process's "my forward worked" flag, so a
   failure anywhere (one warning) sends every process down the same (NaN) path and no
   process waits for a gather the others skip;
2. `gather_probe`: each layer's Z, the labels and (until X is clustered) the inputs as
   rows go through `sharding.gather_rows` (pad, all-gather, trim), so every process holds
   all N rows in probe order: no sampler padding, no duplicates.

With one process both are the identity. No Lightning here: the glue passes the
strategy's collectives in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from ..probe.forward_pass import ForwardResult, probe_forward
from .sharding import gather_rows


def _identity(value: Any) -> Any:
    return value


@dataclass
class Runtime:
    """How a probe runs inside a training framework; the defaults fit one plain process.

    Attributes:
        convert_input: casts the inputs to the training precision (identity when None).
        forward_context: a factory of the context the forward runs in (autocast, dtype).
        broadcast: sends the primary process's object to every process.
        is_primary: whether this process writes files and runs asynchronous metrics (rank 0).
        rank, world_size: this process's place among the processes that probe together.
        all_gather: tensor (M, ...) -> (world_size, M, ...) on every process; needed when
            world_size > 1.
    """

    convert_input: Callable[[Any], Any] | None = None
    forward_context: Callable[[], AbstractContextManager] | None = None
    broadcast: Callable[[Any], Any] = _identity
    is_primary: bool = True
    rank: int = 0
    world_size: int = 1
    all_gather: Callable[[torch.Tensor], torch.Tensor] | None = None


def all_succeeded(ok: bool, runtime: Runtime, device: torch.device) -> bool:
    """Whether every process's forward pass worked (a collective when world_size > 1)."""
    if runtime.world_size == 1:
        return ok
    flags = runtime.all_gather(torch.tensor([1.0 if ok else 0.0], device=device))
    return bool(flags.min() > 0)


def gather_probe(
    result: ForwardResult, labels: torch.Tensor | None, n: int, runtime: Runtime, has_labels: bool
) -> tuple[ForwardResult, torch.Tensor | None]:
    """All N rows of every layer, of the labels and of the kept inputs, in probe order.

    `has_labels` says whether the probe's items carry labels, which a process whose share
    is empty (N < P) cannot see for itself; it then gathers 0 labels like the others.
    """
    if runtime.world_size == 1:
        return result, labels

    def gather(rows: torch.Tensor) -> torch.Tensor:
        return gather_rows(rows, n, runtime.rank, runtime.world_size, runtime.all_gather)

    representations = {name: gather(z) for name, z in result.representations.items()}
    inputs = None if result.inputs is None else gather(result.inputs)
    if has_labels and labels is None:
        device = next(iter(result.representations.values())).device
        labels = torch.empty(0, dtype=torch.int64, device=device)
    return ForwardResult(representations, inputs, result.batches), (gather(labels) if has_labels else None)


def forward_shares(model, probe_set, layers, runtime: Runtime, device, warn, **options) -> tuple[Any, Any]:
    """(ForwardResult of all N rows, labels) on every process; (None, None) after a failure anywhere.

    `options` go to `probe_forward` (capture, seed, forward, collect_inputs, input_size);
    `warn(reason, message)` reports a failure once.
    """
    try:
        result = probe_forward(
            model,
            probe_set,
            layers,
            device=device,
            convert_input=runtime.convert_input,
            forward_context=runtime.forward_context,
            **options,
        )
    except Exception as error:  # nothing the monitor does may end a training run
        warn(
            f"forward:{type(error).__name__}",
            f"DSEMonitor's probe forward pass failed ({type(error).__name__}: {error}); logging NaN and "
            "going on. Check layer=, forward= and batch_to_inputs=.",
        )
        result = None
    if not all_succeeded(result is not None, runtime, device):
        return None, None
    return gather_probe(result, probe_set.labels, len(probe_set), runtime, probe_set.has_labels)

"""How a probe runs across processes: the `Runtime` the glue passes in, and the gather.

`forward_shares`, on every process, with the probe's `session.ProbeSession`:

1. its contiguous share of the probe (`ProbeSet.shard`) through the model
   (`forward_pass.probe_forward`); a failure is recorded, not raised;
2. `agree`: every process learns whether any forward failed (then each warns once and all
   log NaN; no process waits for a gather the others skip);
3. `gather_probe`: each layer's Z, the labels and (until X is clustered) the inputs as
   rows go through `sharding.gather_rows` (pad, all-gather, trim) on the probe's own
   group, so every process holds all N rows in probe order (no sampler padding, no
   duplicates); a second agreement says whether every gather worked.

With one process there is no collective. No Lightning here: the glue passes the
precision plugin's functions in, and the collectives are the session's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from ..probe.forward_pass import ForwardResult, probe_forward
from .session import ProbeSession
from .sharding import gather_rows


@dataclass
class Runtime:
    """How a probe runs inside a training framework; the defaults fit one plain process.

    Under an initialized torch.distributed the probe's collectives run on gloo groups of
    its own (`groups.ProbeGroups`), whose waits are bounded by `collective_timeout`;
    `all_gather` serves only frameworks whose processes do not use torch.distributed.

    Attributes:
        convert_input: casts the inputs to the training precision (identity when None).
        forward_context: a factory of the context the forward runs in (autocast, dtype).
        is_primary: whether this process writes files and runs asynchronous metrics (rank 0).
        rank, world_size: this process's place among the processes that probe together.
        all_gather: tensor (M, ...) -> (world_size, M, ...) on every process; needed when
            world_size > 1 without torch.distributed (its waits are not bounded).
    """

    convert_input: Callable[[Any], Any] | None = None
    forward_context: Callable[[], AbstractContextManager] | None = None
    is_primary: bool = True
    rank: int = 0
    world_size: int = 1
    all_gather: Callable[[torch.Tensor], torch.Tensor] | None = None


def gather_probe(
    result: ForwardResult, labels: torch.Tensor | None, n: int, session: ProbeSession, has_labels: bool
) -> tuple[ForwardResult, torch.Tensor | None]:
    """All N rows of every layer, of the labels and of the kept inputs, in probe order.

    `has_labels` says whether the probe's items carry labels, which a process whose share
    is empty (N < P) cannot see for itself; it then gathers 0 labels like the others.
    """
    if session.world_size == 1:
        return result, labels

    def gather(rows: torch.Tensor) -> torch.Tensor:
        return gather_rows(rows, n, session.rank, session.world_size, session.all_gather)

    representations = {name: gather(z) for name, z in result.representations.items()}
    inputs = None if result.inputs is None else gather(result.inputs)
    if has_labels and labels is None:
        device = next(iter(result.representations.values())).device
        labels = torch.empty(0, dtype=torch.int64, device=device)
    return ForwardResult(representations, inputs, result.batches), (gather(labels) if has_labels else None)


def forward_shares(model, probe_set, layers, session: ProbeSession, device, **options) -> tuple[Any, Any]:
    """(ForwardResult of all N rows, labels) on every process; (None, None) after a failure anywhere.

    `options` go to `probe_forward` (capture, seed, forward, collect_inputs, input_size).
    A failure warns once on every process (through the session's agreements).
    """
    runtime = session.runtime
    result = session.attempt(
        probe_forward,
        model,
        probe_set,
        layers,
        device=device,
        convert_input=runtime.convert_input,
        forward_context=runtime.forward_context,
        **options,
    )
    if not session.agree("forward pass", " Check layer=, forward= and batch_to_inputs=.", renew=False):
        return None, None
    if session.world_size == 1:
        return result, probe_set.labels
    gathered = session.attempt(gather_probe, result, probe_set.labels, len(probe_set), session, probe_set.has_labels)
    if not session.agree("gather of the representations"):
        return None, None
    return gathered

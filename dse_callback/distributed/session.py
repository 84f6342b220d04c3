"""One probe's collectives on every rank, and the agreements that keep the ranks in step.

A probe runs in steps, on every rank in the same order: the forward pass; the gathers of
the representations; the input clusters and the row-sharded DSE; the metric values. Each
step ends with `agree`, one small all-gather of every rank's failure (or none) on the
status group (`groups.ProbeGroups`), so that every rank takes the same path afterwards:

1. a rank that fails inside a step (an exception, out of memory, or a collective of the
   work group that timed out) records it (`fail`, `attempt`) and issues no further work
   collective in that step, so it can never pair with another rank's different collective;
   it goes straight to the agreement;
2. the other ranks, blocked in a work collective the failed rank skipped, time out within
   `collective_timeout`, record that, and reach the agreement too;
3. the agreement tells every rank every failure: each warns once (`DSEMonitorWarning`,
   the same text on every rank), the probe logs NaN everywhere, and the work group is
   renewed together (gloo after a timeout may hold half a collective's messages).

With one process the agreement is local (no collective): a failure warns and gives NaN.
An agreement that itself fails leaves this rank unable to know what the others decided:
it stops issuing collectives (`ProbeGroups.lost`) and logs NaN for the rest of the run.
No Lightning here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .sharding import torch_all_gather

# Bytes of each rank's failure message in an agreement (longer ones are cut).
_MESSAGE_BYTES = 480
_SEPARATOR = "\x1f"  # between the error type and the message in an agreement


class StepFailed(Exception):
    """A failure that a step already caught and described (`kind`: the original error's type)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class ProbeSession:
    """The collectives of one probe on this rank; see the module docstring.

    Args:
        runtime: the probe's `Runtime` (precision glue, rank, world size, a fallback all-gather).
        warn: `warn(reason, message)`, once per reason (the tracker's `OnceWarner`).
        device: where the fallback all-gather's tensors live (the model's device).
        groups: the tracker's `ProbeGroups`: its gloo groups when torch.distributed runs,
            else None groups and the runtime's all-gather (then waits are not bounded).
    """

    def __init__(self, runtime, warn: Callable, device: torch.device, groups):
        self.runtime, self.warn, self.device, self.groups = runtime, warn, device, groups
        self.rank, self.world_size, self.is_primary = runtime.rank, runtime.world_size, runtime.is_primary
        self.failure: tuple[str, str] | None = None  # (error type, message) since the last agreement
        self.agreed = True  # False once an agreement found a failure: this probe's results are NaN

    @property
    def place(self) -> tuple[int, int]:
        """(rank, world_size)."""
        return self.rank, self.world_size

    @property
    def group(self) -> Any:
        """The torch.distributed group of the kernel's sharded solve (None: the default group)."""
        return self.groups.work

    def fail(self, error: BaseException) -> None:
        """Record this rank's first failure of the step."""
        if self.failure is None:
            if isinstance(error, StepFailed):
                self.failure = (error.kind, str(error))
            else:
                self.failure = (type(error).__name__, f"{type(error).__name__}: {error}")

    def attempt(self, step: Callable, *args, **kwargs) -> Any:
        """`step(*args, **kwargs)`, or None when it raises (recorded) or this rank already failed."""
        if self.failure is not None:
            return None
        try:
            return step(*args, **kwargs)
        except Exception as error:  # the agreement reports it; nothing may end a training run
            self.fail(error)
            return None

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """tensor (M, ...) -> (P, M, ...) on the work group; raises once this rank has failed."""
        if self.failure is not None:
            raise StepFailed(*self.failure)
        try:
            return self._gather(tensor, self.groups.work)
        except Exception as error:
            self.fail(error)
            raise

    def from_primary(self, value: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The primary process's (n,) integer `value` (or None) on every rank, on the CPU.

        One all-gather of a flag and the values; None where it failed (recorded).
        """
        if self.world_size == 1:
            return value
        packed = torch.zeros(n + 1, dtype=torch.int64, device=self.device)
        if self.is_primary and value is not None:
            packed[0], packed[1:] = 1, value.to(self.device)
        gathered = self.attempt(self.all_gather, packed)
        if gathered is None:
            return None
        sent = [row for row in gathered.cpu() if row[0] == 1]
        return sent[0][1:].clone() if sent else None

    def agree(self, what: str, hint: str = "", renew: bool = True) -> bool:
        """Whether no rank failed since the last agreement (a collective with several processes).

        After a failure every rank warns once with the same text (what failed on which rank,
        then `hint`), `agreed` turns False and, with `renew`, the work group is replaced.
        """
        failures = self._failures(what)
        self.failure = None
        if failures is None:  # lost: no collective, NaN
            self.agreed = False
            return False
        if not failures:
            return True
        self.agreed = False
        first = failures[min(failures)]
        if self.world_size == 1:
            message = f"DSEMonitor's probe {what} failed ({first[1]}); logging NaN and going on.{hint}"
        else:
            where = "; ".join(f"rank {rank} ({text})" for rank, (_, text) in sorted(failures.items()))
            message = f"DSEMonitor's probe {what} failed on {where}; every rank logs NaN and training goes on.{hint}"
        self.warn(f"{what}:{first[0]}", message)
        if renew and self.world_size > 1:
            self.attempt(self.groups.renew)
            if self.failure is not None:  # the ranks could not make a fresh group together
                self._lose(what, self.failure)
        return False

    def _failures(self, what: str) -> dict[int, tuple[str, str]] | None:
        """{rank: (error type, message)} of every failed rank; None when this rank is lost."""
        if self.world_size == 1:
            return {0: self.failure} if self.failure else {}
        if self.groups.lost:
            return None
        codes = _encode(self.failure, self.device)
        try:
            gathered = self._gather(codes, self.groups.status)
        except Exception as error:
            self._lose(what, (type(error).__name__, f"{type(error).__name__}: {error}"))
            return None
        return {rank: failure for rank, failure in enumerate(map(_decode, gathered.cpu())) if failure}

    def _lose(self, what: str, failure: tuple[str, str]) -> None:
        self.groups.lost, self.agreed = True, False
        self.warn(
            "lost",
            f"DSEMonitor's ranks could not agree after the probe's {what} ({failure[1]}); this rank issues no "
            "more probe collectives and logs NaN for the rest of the run, and training goes on.",
        )

    def _gather(self, tensor: torch.Tensor, group) -> torch.Tensor:
        if group is None:
            return self.runtime.all_gather(tensor)
        return torch_all_gather(group)(tensor)


def _encode(failure: tuple[str, str] | None, device: torch.device) -> torch.Tensor:
    """A failure as (1 + _MESSAGE_BYTES,) int64: the byte count, then UTF-8 bytes (0: none)."""
    codes = torch.zeros(1 + _MESSAGE_BYTES, dtype=torch.int64)
    if failure is not None:
        data = _SEPARATOR.join(failure).encode()[:_MESSAGE_BYTES]
        codes[0] = len(data)
        codes[1 : 1 + len(data)] = torch.tensor(list(data), dtype=torch.int64)
    return codes.to(device)


def _decode(codes: torch.Tensor) -> tuple[str, str] | None:
    length = int(codes[0])
    if length == 0:
        return None
    text = bytes(codes[1 : 1 + length].tolist()).decode(errors="replace")
    kind, _, message = text.partition(_SEPARATOR)
    return kind, message

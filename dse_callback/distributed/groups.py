"""The probe's own process groups, whose every wait is bounded by `collective_timeout`.

Under DDP a rank that fails inside the probe's collective work would leave the others
blocked until the training's process-group timeout (30 minutes by default). The probe
therefore runs its collectives on two groups of its own, created by every rank together
(in the monitor's `setup`, or at a tracker's first distributed probe):

- `work`, timeout T: the probe's data (the rows of Z, the labels and inputs, the input
  clusters, the metric values and spectra) and the kernel's row-sharded solve;
- `status`, timeout 2T: the agreements between the probe's steps (`session.ProbeSession`).
  A rank that failed early waits there while the others time out of `work`, at most T
  after they reach the collective it skipped, so 2T leaves them room.

Both use gloo, whatever the training's backend: a gloo collective that times out raises a
RuntimeError in the waiting rank, which the probe catches (one warning, NaN), whereas an
NCCL timeout aborts the process by default (TORCH_NCCL_ASYNC_ERROR_HANDLING) and would
end the training. GPU tensors therefore go through the CPU; the probe's data (Z is (N, D),
the solver's blocks (N, p)) is small next to a training step's. The training's own groups
are never touched. After an agreed failure the ranks renew `work` together.
"""

from __future__ import annotations

import math
from datetime import timedelta

import torch

from .probe_shares import Runtime
from .session import ProbeSession


def distributed_world_size() -> int:
    """The default group's size under an initialized torch.distributed, else 1."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class ProbeGroups:
    """A tracker's two gloo groups: created on demand, renewed after a failure, closed at the end.

    Without torch.distributed (one process, or a framework with collectives of its own)
    there are no groups, and a session uses the `Runtime`'s all-gather.

    Args:
        timeout: T, the seconds a rank waits in one of the probe's collectives.

    Attributes:
        work, status: the groups, or None.
        lost: an agreement failed here: this rank issues no more probe collectives.
    """

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.work = None
        self.status = None
        self.lost = False

    def open(self) -> None:
        """Create both groups now, under torch.distributed with several processes, unless open.

        A collective: every rank calls it at the same point (the monitor's `setup`).
        """
        if self.work is None and distributed_world_size() > 1:
            self.work, self.status = _new_group(self.timeout), _new_group(2 * self.timeout)
            self.lost = False

    def renew(self) -> None:
        """Replace `work` by a fresh group (a collective, after an agreed failure); nothing
        without groups."""
        if self.work is not None:
            _destroy(self.work)
            self.work = None
            self.work = _new_group(self.timeout)

    def close(self) -> None:
        """Destroy both groups (the end of a run); `open` makes new ones."""
        _destroy(self.work)
        _destroy(self.status)
        self.work = self.status = None

    def session(self, runtime, warn, device: torch.device) -> ProbeSession:
        """One probe's `ProbeSession` for `runtime`; opens the groups on first use (a collective).

        Raises:
            ValueError: runtime.world_size > 1 without torch.distributed and without an
                all_gather, or a world size that differs from torch.distributed's.
        """
        world = distributed_world_size()
        if runtime.world_size > 1 and world > 1:
            if world != runtime.world_size:
                raise ValueError(
                    f"runtime.world_size is {runtime.world_size} but torch.distributed runs {world} processes; "
                    "the probe's collectives need every process of the default group"
                )
            if not self.lost:
                self.open()
        elif runtime.world_size > 1 and runtime.all_gather is None:
            raise ValueError(
                f"runtime.world_size is {runtime.world_size}: initialize torch.distributed, or pass "
                "Runtime(all_gather=...) (tensor (M, ...) -> (world_size, M, ...))"
            )
        return ProbeSession(runtime, warn, device, self)


def _new_group(timeout: float):
    import torch.distributed as dist

    return dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout), group_desc="dse_callback_probe")


def _destroy(group) -> None:
    """Destroy `group` if torch.distributed still knows it (destroying the default group
    first, as some launchers do at exit, has already taken every group down)."""
    import torch.distributed as dist

    if group is None or not dist.is_initialized():
        return
    try:
        dist.destroy_process_group(group)
    except ValueError:  # already gone with the default group
        pass


def plain_session(rank: int, world_size: int, all_gather, warn, device: torch.device) -> ProbeSession:
    """A session over a given `all_gather` (tensor -> (P, ...)), agreements included, with no
    groups of its own (its waits are those of `all_gather`)."""
    runtime = Runtime(rank=rank, world_size=world_size, all_gather=all_gather, is_primary=rank == 0)
    return ProbeSession(runtime, warn, device, ProbeGroups(timeout=math.inf))  # never opened

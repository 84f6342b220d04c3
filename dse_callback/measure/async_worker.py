"""Probe metrics computed off the training path, by one background thread.

The flow: after the probe's synchronous forward pass, the caller snapshots the
representations (`snapshot`: detached copies, so training may overwrite nothing they
hold) and `submit`s a measure function with them, a key (the probe's epoch) and a context
(its step); training goes on. `ready()` hands back the results finished so far, `drain()`
waits for every pending one; each result carries its context, so it is logged at the
probe's own step however late it arrives. Call `drain()` before `fit` returns, before a
checkpoint is saved and on an exception; `state_dict()` holds what is finished but not yet
collected, so a checkpoint taken in between loses nothing.

A failing measure becomes NaN for each expected name and one warning, raised in the
collecting thread (warnings from a worker thread are easy to lose). The worker issues no
collectives: under DDP, asynchronous metrics are computed on rank 0 only, because a
collective from a second thread interleaves unpredictably with training's own and can
deadlock. On CUDA the worker runs on its own stream, after the snapshot's copy finished.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map


class AsyncMetricsWarning(UserWarning):
    """A background measurement failed; its values are NaN and training goes on."""


@dataclasses.dataclass
class AsyncResult:
    """One finished measurement: `values` by name, the caller's `context`, any `error`."""

    key: Any
    values: dict[str, Any]
    context: dict[str, Any]
    seconds: float
    error: str | None = None


def snapshot(tree: Any, device: torch.device | str | None = None) -> Any:
    """Detached copies of every tensor in a nest of tensors (optionally on `device`).

    Example:
        >>> z = torch.ones(2, 2)
        >>> copy = snapshot({"z": z})
        >>> z.add_(1.0)[0, 0].item(), copy["z"][0, 0].item()
        (2.0, 1.0)
    """

    def copy(value):
        if not isinstance(value, torch.Tensor):
            return value
        target = value.device if device is None else torch.device(device)
        return value.detach().to(target, copy=True)

    return tree_map(copy, tree)


class AsyncMetrics:
    """A one-thread queue of measurements whose results come back in submission order.

    Example:
        >>> worker = AsyncMetrics()
        >>> worker.submit(1, lambda z: {"mean": float(z.mean())}, torch.ones(3), names=["mean"], context={"step": 10})
        >>> [(r.key, r.values, r.context) for r in worker.drain()]
        [(1, {'mean': 1.0}, {'step': 10})]
        >>> worker.close()  # nothing left to collect
        []
    """

    def __init__(self, thread_name: str = "dse-async-metrics"):
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._lock = threading.Lock()
        self._jobs: list[tuple[Any, concurrent.futures.Future, list[str], dict]] = []
        self._finished: list[AsyncResult] = []  # restored from a checkpoint, not yet collected
        self._stream = None

    @property
    def pending(self) -> int:
        """Measurements submitted and not yet collected."""
        with self._lock:
            return len(self._jobs) + len(self._finished)

    def submit(
        self,
        key: Any,
        measure: Callable[..., dict[str, Any]],
        *args: Any,
        names: Sequence[str],
        context: dict[str, Any] | None = None,
    ) -> None:
        """Queue `measure(*args)`, which returns {name: value}; `names` get NaN if it fails.

        `args` must be snapshots (see `snapshot`): the worker reads them while training runs.
        """
        if not callable(measure):
            raise TypeError(f"measure must be callable, got {type(measure).__name__}")
        names = list(names)
        ready_event = self._record_event(args)
        future = self._executor.submit(self._run, measure, args, ready_event)
        with self._lock:
            self._jobs.append((key, future, names, dict(context or {})))

    def ready(self) -> list[AsyncResult]:
        """The results finished so far, in submission order, removed from the queue."""
        with self._lock:
            done = 0
            while done < len(self._jobs) and self._jobs[done][1].done():
                done += 1
            jobs, self._jobs = self._jobs[:done], self._jobs[done:]
            restored, self._finished = self._finished, []
        return restored + [self._result(*job) for job in jobs]

    def drain(self) -> list[AsyncResult]:
        """Wait for every pending measurement and return all uncollected results."""
        with self._lock:
            futures = [job[1] for job in self._jobs]
        concurrent.futures.wait(futures)
        return self.ready()

    def close(self) -> list[AsyncResult]:
        """`drain()`, then stop the thread; the object cannot take more work."""
        results = self.drain()
        self._executor.shutdown(wait=True)
        return results

    def state_dict(self) -> dict[str, Any]:
        """Every submitted measurement, finished (this waits), as plain values for a checkpoint."""
        results = self.drain()
        with self._lock:
            self._finished = results  # still to be collected by the next ready() or drain()
        return {"finished": [dataclasses.asdict(result) for result in results]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            self._finished = [AsyncResult(**result) for result in state.get("finished", [])]

    # ------------------------------------------------------------------ worker side

    def _run(self, measure, args, ready_event) -> tuple[dict[str, Any], float]:
        start = time.perf_counter()
        with torch.inference_mode(), self._side_stream(ready_event):
            values = measure(*args)
            if ready_event is not None:
                torch.cuda.current_stream().synchronize()  # done with the snapshot's memory
        return dict(values), time.perf_counter() - start

    def _record_event(self, args):
        leaves, _ = tree_flatten(args)
        devices = {leaf.device for leaf in leaves if isinstance(leaf, torch.Tensor) and leaf.is_cuda}
        if not devices:
            return None
        event = torch.cuda.Event()
        event.record()  # after the snapshot's copies on the training stream
        return event

    def _side_stream(self, ready_event):
        if ready_event is None:
            return contextlib.nullcontext()
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        self._stream.wait_event(ready_event)
        return torch.cuda.stream(self._stream)

    @staticmethod
    def _result(key, future, names, context) -> AsyncResult:
        try:
            values, seconds = future.result()
            return AsyncResult(key, values, context, seconds)
        except Exception as error:  # a metric must never end a training run
            message = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"background measurement {key!r} failed ({message}); logging NaN for {names}",
                AsyncMetricsWarning,
                stacklevel=3,
            )
            return AsyncResult(key, {name: float("nan") for name in names}, context, float("nan"), message)

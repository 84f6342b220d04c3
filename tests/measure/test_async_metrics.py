import threading
import time

import pytest
import torch

from dse_callback import diffusion_spectral_entropy
from dse_callback.measure.async_worker import AsyncMetrics, AsyncMetricsWarning, snapshot


def points(seed: int) -> torch.Tensor:
    return torch.randn(60, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3


def measure(z):
    return {"dse": diffusion_spectral_entropy(z, sigma=10.0), "rows": len(z)}


@pytest.fixture
def worker():
    worker = AsyncMetrics()
    yield worker
    worker.close()


def test_background_values_equal_synchronous_ones_and_keep_their_context(worker):
    for epoch in range(3):
        worker.submit(epoch, measure, snapshot(points(epoch)), names=["dse", "rows"], context={"step": 100 * epoch})
    results = worker.drain()
    assert [r.key for r in results] == [0, 1, 2] and [r.context["step"] for r in results] == [0, 100, 200]
    for epoch, result in enumerate(results):
        assert result.values == {"dse": measure(points(epoch))["dse"], "rows": 60.0}
        assert result.error is None and result.seconds >= 0
    assert worker.pending == 0 and worker.drain() == []


def test_the_snapshot_is_measured_not_the_tensor_training_changes_later(worker):
    z = points(0)
    gate = threading.Event()
    worker.submit("blocked", lambda: gate.wait(5) and {}, names=[])
    worker.submit(0, measure, snapshot(z), names=["dse", "rows"])
    z.mul_(2.0)  # training goes on while the worker is busy
    gate.set()
    (_, result) = worker.drain()
    assert result.values["dse"] == measure(points(0))["dse"] != measure(z)["dse"]


def test_ready_returns_only_what_is_finished_and_drain_flushes_everything(worker):
    gate = threading.Event()
    worker.submit(0, lambda: {"x": 1.0}, names=["x"])
    worker.submit(1, lambda: {"x": 2.0} if gate.wait(5) else {}, names=["x"])
    worker.submit(2, lambda: {"x": 3.0}, names=["x"])
    deadline = time.monotonic() + 5
    first = []
    while not first and time.monotonic() < deadline:
        first = worker.ready()
    assert [r.key for r in first] == [0]  # 2 waits behind 1: results stay in order
    assert worker.ready() == [] and worker.pending == 2
    gate.set()
    assert [(r.key, r.values["x"]) for r in worker.drain()] == [(1, 2.0), (2, 3.0)]


def test_a_failing_measurement_gives_nan_and_one_warning_and_the_worker_goes_on(worker):
    def broken(z):
        raise RuntimeError("eigensolver exploded")

    worker.submit(0, broken, points(0), names=["dse", "dsmi"])
    worker.submit(1, measure, points(1), names=["dse", "rows"])
    with pytest.warns(AsyncMetricsWarning, match="eigensolver exploded") as caught:
        failed, fine = worker.drain()
    assert len(caught) == 1
    assert set(failed.values) == {"dse", "dsmi"} and all(v != v for v in failed.values.values())
    assert "RuntimeError" in failed.error and fine.values["rows"] == 60.0


def test_state_dict_holds_every_submitted_result_and_a_new_worker_hands_them_back(worker):
    worker.submit(0, lambda: (time.sleep(0.05), {"x": 0.5})[1], names=["x"], context={"step": 7})
    state = worker.state_dict()  # waits: a checkpoint holds every finished probe
    assert [r["values"] for r in state["finished"]] == [{"x": 0.5}]
    resumed = AsyncMetrics()
    try:
        resumed.load_state_dict(state)
        assert resumed.pending == 1
        (result,) = resumed.drain()
        assert (result.key, result.values, result.context) == (0, {"x": 0.5}, {"step": 7})
    finally:
        resumed.close()
    assert [r.key for r in worker.drain()] == [0]  # the original still owes it to its caller


def test_measure_must_be_callable(worker):
    with pytest.raises(TypeError, match="measure"):
        worker.submit(0, None, names=[])

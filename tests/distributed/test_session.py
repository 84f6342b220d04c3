"""The probe session's agreements, in one process: two ranks simulated by two threads.

`FakeWorld.all_gather` pairs the threads' calls like a collective (each puts its tensor in
its slot, waits for the other, returns the stack), so the agreements run the code that real
ranks run, with the runtime's all-gather standing in for the gloo groups.
"""

from __future__ import annotations

import copy
import inspect
import threading

import pytest
import torch

from dse_callback import DSETracker, Runtime
from dse_callback.distributed.groups import ProbeGroups
from dse_callback.distributed.session import ProbeSession, StepFailed


class FakeWorld:
    """An all-gather for two threads; `broken` ranks raise instead (a collective that failed)."""

    def __init__(self, size: int = 2, broken: tuple[int, ...] = ()):
        self.size, self.broken = size, broken
        self.slots = [None] * size
        self.barrier = threading.Barrier(size, timeout=20)
        self.calls = [0] * size
        self.threads = set()  # the names of the threads that issued a collective

    def all_gather_of(self, rank: int):
        def all_gather(tensor: torch.Tensor) -> torch.Tensor:
            self.calls[rank] += 1
            self.threads.add(threading.current_thread().name)
            if rank in self.broken:
                raise RuntimeError("Timed out waiting 5000ms for recv operation to complete")
            self.slots[rank] = tensor.clone()
            self.barrier.wait()
            gathered = torch.stack(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before everyone has read it
            return gathered

        return all_gather


class Warnings:
    def __init__(self):
        self.seen = []

    def __call__(self, reason, message, category=None):
        self.seen.append((reason, message))


def sessions(world: FakeWorld, groups=None):
    """One session per simulated rank, over the world's all-gather (no torch groups)."""
    out = []
    for rank in range(world.size):
        runtime = Runtime(rank=rank, world_size=world.size, is_primary=rank == 0, all_gather=world.all_gather_of(rank))
        out.append(ProbeSession(runtime, Warnings(), torch.device("cpu"), groups or ProbeGroups(timeout=5.0)))
    return out


def on_every_rank(step, ranks):
    """step(rank, session) on one thread per rank; their results in rank order."""
    results = [None] * len(ranks)

    def run(rank):
        results[rank] = step(rank, ranks[rank])

    threads = [threading.Thread(target=run, args=(rank,), name=f"rank{rank}") for rank in range(len(ranks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_a_failure_on_one_rank_reaches_every_rank_with_its_message():
    world = FakeWorld()
    ranks = sessions(world)

    def step(rank, session):
        session.attempt(lambda: 1 / 0 if rank == 1 else None)
        return session.agree("measurement", " A hint.")

    assert on_every_rank(step, ranks) == [False, False]
    messages = [session.warn.seen for session in ranks]
    assert messages[0] == messages[1] and len(messages[0]) == 1
    reason, message = messages[0][0]
    assert reason == "measurement:ZeroDivisionError"
    assert message == (
        "DSEMonitor's probe measurement failed on rank 1 (ZeroDivisionError: division by zero); "
        "every rank logs NaN and training goes on. A hint."
    )
    assert [session.agreed for session in ranks] == [False, False]
    # The next step starts clean: nothing failed, every rank agrees, no new warning.
    assert on_every_rank(lambda rank, session: session.agree("measurement"), ranks) == [True, True]
    assert [len(session.warn.seen) for session in ranks] == [1, 1]


def test_no_failure_is_agreed_without_a_warning():
    ranks = sessions(FakeWorld())
    assert on_every_rank(lambda rank, session: session.agree("forward pass"), ranks) == [True, True]
    assert all(session.agreed and not session.warn.seen for session in ranks)


def test_a_failed_rank_issues_no_more_collectives_in_its_step():
    world = FakeWorld()
    session = sessions(world)[0]
    session.fail(MemoryError("out of memory"))
    with pytest.raises(StepFailed, match="MemoryError: out of memory"):
        session.all_gather(torch.zeros(2))
    assert session.attempt(lambda: "ran") is None
    assert world.calls == [0, 0]


def test_long_and_non_ascii_messages_survive_the_agreement_cut_to_size():
    ranks = sessions(FakeWorld())

    def step(rank, session):
        if rank == 0:
            session.fail(ValueError("é" * 1000))
        return session.agree("gather")

    on_every_rank(step, ranks)
    message = ranks[1].warn.seen[0][1]
    assert "rank 0 (ValueError: éé" in message and len(message.encode()) < 700


def test_the_primary_values_reach_every_rank():
    ranks = sessions(FakeWorld())
    clusters = torch.tensor([2, 0, 1, 1])

    def step(rank, session):
        return session.from_primary(clusters if rank == 0 else None, 4)

    for received in on_every_rank(step, ranks):
        assert torch.equal(received, clusters)
    assert on_every_rank(lambda rank, session: session.from_primary(None, 4), ranks) == [None, None]


def test_a_rank_whose_agreement_fails_is_lost_and_stops_issuing_collectives():
    world = FakeWorld(broken=(0,))
    groups = ProbeGroups(timeout=5.0)
    session = sessions(world, groups)[0]
    assert session.agree("measurement") is False
    assert groups.lost and not session.agreed
    assert [reason for reason, _ in session.warn.seen] == ["lost"]
    assert "could not agree after the probe's measurement" in session.warn.seen[0][1]
    later = sessions(world, groups)[0]  # the next probe's session: no collective, NaN
    assert later.agree("forward pass") is False and not later.agreed
    assert world.calls[0] == 1 and later.warn.seen == []


def test_one_process_warns_as_before_and_needs_no_collective():
    session = ProbeSession(Runtime(), Warnings(), torch.device("cpu"), ProbeGroups(timeout=5.0))
    assert session.agree("forward pass") is True
    session.attempt(lambda: (_ for _ in ()).throw(RuntimeError("needs training mode")))
    assert session.agree("forward pass", " Check layer=.", renew=False) is False
    assert session.warn.seen == [
        (
            "forward pass:RuntimeError",
            "DSEMonitor's probe forward pass failed (RuntimeError: needs training mode); logging NaN and going on. "
            "Check layer=.",
        )
    ]


def test_several_processes_need_torch_distributed_or_an_all_gather():
    with pytest.raises(ValueError, match="runtime.world_size is 2: initialize torch.distributed"):
        ProbeGroups(timeout=5.0).session(Runtime(world_size=2, rank=1), Warnings(), torch.device("cpu"))


def test_collective_timeout_is_an_option_of_the_tracker_and_the_monitor():
    assert inspect.signature(DSETracker).parameters["collective_timeout"].default == 300.0
    assert DSETracker(collective_timeout=7.5).groups.timeout == 7.5
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match=f"collective_timeout must be a finite number > 0, got {bad}"):
            DSETracker(collective_timeout=bad)
    pl = pytest.importorskip("pytorch_lightning")
    assert pl is not None
    from dse_callback import DSEMonitor

    assert inspect.signature(DSEMonitor).parameters["collective_timeout"].default == 300.0


@pytest.mark.parametrize("asynchronous", [False, True])
def test_two_ranks_measure_the_one_process_values_and_asynchronous_metrics_issue_no_collective(asynchronous):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    probe = (torch.randn(40, 5, generator=generator) + labels[:, None] * 3.0, labels)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    metrics, keys = ("dse", "dsmi_y", "dsmi_x"), ("dse/Z", "dsmi/Z_Y", "dsmi/Z_X")
    single = DSETracker(probe, metrics=metrics).measure(model, 0)
    world = FakeWorld()
    trackers = [DSETracker(probe, metrics=metrics, async_metrics=asynchronous) for _ in range(2)]

    def step(rank, tracker):
        runtime = Runtime(rank=rank, world_size=2, is_primary=rank == 0, all_gather=world.all_gather_of(rank))
        values = tracker.measure(copy.deepcopy(model), 0, runtime=runtime)  # each rank its own hooks
        return dict(tracker.collect(wait=True)).get(0, {}) if asynchronous else values

    values = on_every_rank(step, trackers)
    assert {key: values[0][key] for key in keys} == {key: single[key] for key in keys}
    if asynchronous:  # only the primary measures, in the background, which issues no collective
        assert values[1] == {} and world.threads == {"rank0", "rank1"}
    else:
        assert {key: values[1][key] for key in keys} == {key: single[key] for key in keys}
    for tracker in trackers:
        tracker.release()


def test_each_rank_resolves_a_layers_bandwidth_once_per_probe_profile_included(monkeypatch):
    from dse_callback.measure.measurer import Measurer

    resolved = {}  # {thread name: bandwidth resolutions}
    original = Measurer.bandwidth_of

    def counting(self, z):
        name = threading.current_thread().name
        resolved[name] = resolved.get(name, 0) + 1
        return original(self, z)

    monkeypatch.setattr(Measurer, "bandwidth_of", counting)
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(40) % 2
    probe = (torch.randn(40, 5, generator=generator) + labels[:, None] * 3.0, labels)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    metrics = ("dse", "dsmi_y", "rankme")  # each rank owns some, and the primary draws the profile
    single = DSETracker(probe, metrics=metrics, profile=True)
    single_values = single.measure(model, 0)
    world = FakeWorld()
    trackers = [DSETracker(probe, metrics=metrics, profile=True) for _ in range(2)]

    def step(rank, tracker):
        runtime = Runtime(rank=rank, world_size=2, is_primary=rank == 0, all_gather=world.all_gather_of(rank))
        return tracker.measure(copy.deepcopy(model), 0, runtime=runtime)

    values = on_every_rank(step, trackers)
    assert resolved == {"MainThread": 1, "rank0": 1, "rank1": 1}
    assert values[0]["dse/Z"] == values[1]["dse/Z"] == single_values["dse/Z"]
    assert trackers[0].profiles[0]["Z"] == single.profiles[0]["Z"]  # the primary's, at the same bandwidth
    for tracker in (*trackers, single):
        tracker.release()

"""The torch loop's copies of device results into the host store, on a worker thread (CUDA's
default) or inline (the CPU's): both are run here on the CPU, the worker by switching it on.

They must deliver every value to its place whatever the layout, never let a later copy
overwrite a staged one before it is delivered, write the store only once it is prepared
(without the loop waiting for that), and surface a failure in the worker as an error of the
run, with the worker gone afterwards.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelcollapse.distributions import target_distribution  # noqa: E402
from modelcollapse.metrics import resolve_metrics  # noqa: E402
from modelcollapse.scenarios import FullySynthetic, MostRecent  # noqa: E402
from modelcollapse.torch_backend import loop as torch_loop  # noqa: E402
from modelcollapse.torch_backend import run_loop_torch  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])]


@pytest.fixture(params=[True, False], ids=["worker", "inline"])
def background(request, monkeypatch):
    """Copies on a worker thread or inline, on every device type."""
    for kind in ("cpu", "cuda"):
        monkeypatch.setitem(torch_loop.BACKGROUND_COPIES, kind, request.param)
    return request.param


def _copier_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("modelcollapse-copy")]


@pytest.mark.parametrize("device", DEVICES)
def test_strided_blocks_of_mixed_types_land_in_place(device, background):
    """A bool block and a float64 block, both column slices of wider device arrays, into
    column slices of wider host arrays; later sends reuse the staging buffer without
    disturbing what earlier ones delivered."""
    gen = torch.Generator().manual_seed(0)
    flags_host = np.zeros((5, 12), dtype=bool)
    table_host = np.full((2, 5, 12), np.nan)
    copier = torch_loop._HostCopier(torch.device(device))
    try:
        expected_flags, expected_table = flags_host.copy(), table_host.copy()
        for start, width in ((0, 3), (3, 4), (7, 5)):
            flags = torch.rand((5, 6), generator=gen) < 0.5
            table = torch.rand((2, 5, 6), generator=gen, dtype=torch.float64)
            columns = slice(start, start + width)
            copier.send([(flags.to(device)[:, :width],
                          torch.from_numpy(flags_host)[:, columns]),
                         (table.to(device)[:, :, :width],
                          torch.from_numpy(table_host)[:, :, columns])])
            expected_flags[:, columns] = flags[:, :width].numpy()
            expected_table[:, :, columns] = table[:, :, :width].numpy()
        copier.finish()
    finally:
        copier.close()
    np.testing.assert_array_equal(flags_host, expected_flags)
    np.testing.assert_array_equal(table_host, expected_table)
    assert not _copier_threads()


def test_copies_wait_for_the_store_and_the_loop_does_not(background):
    """A copy's host leg waits until the store is prepared; on the worker, the send that
    queues it does not (the loop goes on launching generations meanwhile)."""
    gate, prepared = threading.Event(), threading.Event()

    def prepare():
        gate.wait(timeout=30)
        prepared.set()

    copier = torch_loop._HostCopier(torch.device("cpu"))
    host = np.zeros(4)
    try:
        if not background:
            gate.set()  # inline, preparing the store is the first thing done
        copier.prepare_store(prepare)
        copier.send([(torch.ones(4, dtype=torch.float64), torch.from_numpy(host))])
        assert prepared.is_set() == (not background)
        if background:
            np.testing.assert_array_equal(host, 0.0)  # not before the store is ready
            gate.set()
        copier.finish()
        np.testing.assert_array_equal(host, 1.0)
    finally:
        gate.set()
        copier.close()
    assert not _copier_threads()


def test_a_send_waits_for_the_copy_two_sends_back_not_the_last(monkeypatch):
    """On the worker, with the store not prepared yet, two sends are queued without waiting
    (each has a staging buffer of its own); the third waits for the first, so for the store."""
    monkeypatch.setitem(torch_loop.BACKGROUND_COPIES, "cpu", True)
    gate = threading.Event()
    copier = torch_loop._HostCopier(torch.device("cpu"))
    host = np.zeros((3, 4))
    try:
        copier.prepare_store(lambda: gate.wait(timeout=10))
        for i in range(2):
            copier.send([(torch.full((4,), i + 1.0, dtype=torch.float64),
                          torch.from_numpy(host[i]))])
        assert not gate.is_set() and not host.any()
        threading.Timer(0.2, gate.set).start()
        copier.send([(torch.full((4,), 3.0, dtype=torch.float64), torch.from_numpy(host[2]))])
        assert gate.is_set()
        np.testing.assert_array_equal(host[0], 1.0)  # the first copy, which the third awaited
        copier.finish()
        np.testing.assert_array_equal(host, np.arange(1.0, 4.0)[:, None].repeat(4, axis=1))
    finally:
        gate.set()
        copier.close()


def test_a_failed_store_preparation_fails_the_copies(background):
    """Its error reaches the loop: at once inline, at the next finish on the worker (after
    every copy in flight has ended), and the copy waiting for it is not made."""
    def broken():
        raise OSError("the store cannot be mapped")

    copier = torch_loop._HostCopier(torch.device("cpu"))
    host = np.zeros(4)
    try:
        if not background:
            with pytest.raises(OSError, match="cannot be mapped"):
                copier.prepare_store(broken)
            return
        copier.prepare_store(broken)
        copier.send([(torch.ones(4, dtype=torch.float64), torch.from_numpy(host))])
        with pytest.raises(OSError, match="cannot be mapped"):
            copier.finish()
        assert copier.in_flight == [[], []] and not copier.store_ready
        np.testing.assert_array_equal(host, 0.0)
    finally:
        copier.close()
    assert not _copier_threads()


def test_reserved_staging_buffers_serve_every_send(background):
    """After reserve, sends of the reserved tensors or of column slices of them stage into
    the same two buffers, taking turns (no page-locking at a send); an inline CPU copier
    stages nothing."""
    values = torch.rand((2, 50, 9), dtype=torch.float64)
    flags = torch.rand((50, 9)) < 0.5
    flags_host, values_host = np.zeros((50, 20), dtype=bool), np.zeros((2, 50, 20))
    copier = torch_loop._HostCopier(torch.device("cpu"))
    try:
        copier.reserve([values, flags])
        copier.finish()
        if not background:
            assert [buffer.numel() for buffer in copier.buffers] == [0, 0]
            return
        buffers = [buffer.data_ptr() for buffer in copier.buffers]
        assert len(set(buffers)) == 2
        for start, width in ((0, 9), (9, 4), (13, 7)):
            columns = slice(start, start + width)
            copier.send([(flags[:, :width], torch.from_numpy(flags_host)[:, columns]),
                         (values[:, :, :width], torch.from_numpy(values_host)[:, :, columns])])
            assert [buffer.data_ptr() for buffer in copier.buffers] == buffers
        copier.finish()
        np.testing.assert_array_equal(values_host[:, :, 9:13], values[:, :, :4].numpy())
        np.testing.assert_array_equal(flags_host[:, :9], flags.numpy())
    finally:
        copier.close()


def test_a_failed_copy_fails_the_run_and_ends_the_worker(monkeypatch, background):
    """An error in a copy (on the worker thread or not) reaches the caller of the loop, which
    leaves no worker behind."""
    def broken(staged, copied, store_ready):
        raise OSError("the host store cannot be written")

    monkeypatch.setattr(torch_loop, "_deliver", broken)
    p0 = target_distribution(30, 20, 0.1, seed=0)[None]
    with pytest.raises(OSError, match="host store"):
        run_loop_torch(p0, FullySynthetic(8), n_runs=20, n_generations=5, entropy=1,
                       names=resolve_metrics(None), progress=False)
    assert not _copier_threads()


@pytest.mark.parametrize("scenario", [FullySynthetic(6), MostRecent(6, 2)],
                         ids=lambda s: s.describe())
def test_log_window_width_changes_no_value(scenario, monkeypatch, background):
    """Windows of 1, 3 and 32 generations (one copy per generation, copies in flight while
    runs are dropped, one copy for the whole run) give the same Result."""
    p0 = target_distribution(30, 12, 0.15, seed=2)[None]
    results = []
    for width in (1, 3, 32):
        monkeypatch.setattr(torch_loop, "LOG_WIDTH", width)
        res = run_loop_torch(p0, scenario, n_runs=60, n_generations=17, entropy=5,
                             names=resolve_metrics(None), progress=False)
        results.append(res)
    assert np.isfinite(results[0].data["absorption_time"].values).any()
    for other in results[1:]:
        for name in results[0].data.data_vars:
            np.testing.assert_array_equal(results[0].data[name].values,
                                          other.data[name].values)


class _Calls:
    """Stand-ins for CUDA streams and events that record what the loop asks of them."""

    def __init__(self):
        self.calls: list[tuple[str, ...]] = []
        self.compute = self.Stream(self, "compute")

    class Stream:
        def __init__(self, calls, name):
            self.calls, self.name = calls, name

        def wait_stream(self, other):
            self.calls.calls.append(("wait_stream", self.name, other.name))

        def wait_event(self, event):
            self.calls.calls.append(("wait_event", self.name, event.stream))

    class Event:
        def __init__(self, calls):
            self.calls, self.stream = calls, None

        def record(self, stream):
            self.stream = stream.name
            self.calls.calls.append(("record", stream.name))

        def synchronize(self):
            self.calls.calls.append(("synchronize", self.stream))


def test_cuda_copies_and_log_writes_keep_their_order(monkeypatch, background):
    """The CUDA branches, on a CPU with stand-ins for streams and events: each device → host
    copy runs on the copier's stream after the generations that wrote the log (and keeps its
    sources' memory), the host leg waits for the copy, and the log is not written again
    before the copy has read it (a write or settle of the log waits for the last copy's
    event first). The Result is the one the CPU branches give."""
    calls = _Calls()
    monkeypatch.setattr(torch.cuda, "Event", lambda: _Calls.Event(calls))
    monkeypatch.setattr(torch.cuda, "Stream", lambda dev: _Calls.Stream(calls, "copy"))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda dev=None: calls.compute)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: _on(calls, stream))
    monkeypatch.setattr(torch.Tensor, "record_stream",
                        lambda tensor, stream: calls.calls.append(("keep", stream.name)),
                        raising=False)
    for method in ("write", "settle"):
        original = getattr(torch_loop._MetricLog, method)
        monkeypatch.setattr(torch_loop._MetricLog, method, _recorded(calls, method, original))
    monkeypatch.setattr(torch_loop, "LOG_WIDTH", 4)

    class PinnedCopier(torch_loop._HostCopier):
        """The CUDA copier, with pageable memory for its page-locked staging buffer."""

        def __init__(self, dev):
            super().__init__(dev)
            self.pinned, self.stream = True, torch.cuda.Stream(dev)

        def _grow(self, turn, nbytes):
            if nbytes > self.buffers[turn].numel():
                self.buffers[turn] = torch.empty(nbytes, dtype=torch.uint8)

    p0 = target_distribution(50, 20, 0.08, seed=0)[None]

    def run():
        return run_loop_torch(p0, FullySynthetic(10), n_runs=50, n_generations=13, entropy=3,
                              names=resolve_metrics(None), progress=False)

    expected = run()
    calls.calls.clear()
    monkeypatch.setattr(torch_loop, "_HostCopier", PinnedCopier)
    result = run()
    for name in expected.data.data_vars:
        np.testing.assert_array_equal(result.data[name].values, expected.data[name].values)

    log = calls.calls
    sends = [i for i, call in enumerate(log) if call == ("record", "copy")]
    assert len(sends) == 4  # generations 0-4, 5-8, 9-12, 13
    for i in sends:
        assert log[i - 2:i] == [("wait_stream", "copy", "compute"), ("on", "copy")]
        assert log[i + 1:i + 3] == [("keep", "copy")] * 2
        later = log[i + 1:]
        writes = [j for j, call in enumerate(later) if call[0] in ("write", "settle")]
        if writes:
            assert ("wait_event", "compute", "copy") in later[:writes[0]]
    assert log.count(("synchronize", "copy")) == len(sends)


@contextlib.contextmanager
def _on(calls, stream):
    calls.calls.append(("on", stream.name))
    yield


def _recorded(calls, name, method):
    """``method``, noted once it has returned (it waits for the copy before it writes)."""
    def recorded(self, *args, **kwargs):
        result = method(self, *args, **kwargs)
        calls.calls.append((name,))
        return result
    return recorded

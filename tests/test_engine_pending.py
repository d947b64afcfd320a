"""``wait=False``: append under a caller's own lock, wait for durability outside it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import lithair_lab as ll
from lithair_lab.engine import Pending
from lithair_lab.engine.models import open_models, shop_models
from lithair_lab.engine.writers import AppendFile

from engine_support import read_back


@pytest.fixture
def slow_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fsync of a journal or id file takes 3 ms more (a slow disk), and is counted by file name."""
    calls: list[str] = []
    real = AppendFile.sync

    def sync(self: AppendFile) -> None:
        calls.append(self.path.name)
        time.sleep(0.003)
        real(self)

    monkeypatch.setattr(AppendFile, "sync", sync)
    return calls


@pytest.mark.parametrize("mode", ["sync", "async", "group"])
def test_pending_holds_the_envelopes_and_wait_makes_them_durable(tmp_path: Path, mode: str) -> None:
    with ll.open_store(tmp_path, mode=mode) as store:  # type: ignore[arg-type]
        one = store.append("ProductCreated", {"id": "p1"}, aggregate_id="p1", event_id="e1", wait=False)
        many = store.append_many([{"event_type": "ProductCreated", "payload": {"id": "p2"}, "aggregate_id": "p2"}], wait=False)
        assert isinstance(one, Pending) and isinstance(many, Pending)
        assert store.state["Product"]["p1"] == {"id": "p1"}, "the state is updated at once"
        assert [e.event_id for e in one.wait()] == ["e1"]
        [env] = many.wait()
        assert many.wait() == [env], "waiting twice is harmless"
        if mode != "async":  # async promises only the buffer: its records reach the file on a flush
            assert [s.env for s in read_back(tmp_path)] == [*one.envelopes, env]
        assert store.append_many([], wait=False).wait() == []


def test_writers_serialized_by_their_own_lock_share_fsyncs(tmp_path: Path, slow_fsyncs: list[str]) -> None:
    outer = threading.Lock()
    threads, per_thread = 8, 25
    with ll.open_store(tmp_path, mode="group") as store:
        slow_fsyncs.clear()

        def work(t: int) -> None:
            for i in range(per_thread):
                with outer:  # e.g. a model layer checking constraints before it writes
                    pending = store.append("T", {"t": t, "i": i}, wait=False)
                pending.wait()
                assert read_back_has(tmp_path, pending.envelopes[0].event_id)

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        fsyncs = slow_fsyncs.count("events.raftlog")
    assert store.event_count == threads * per_thread
    # Waiting under the lock would cost one fsync per event (200); outside it they are shared.
    assert fsyncs <= threads * per_thread // 2, f"{fsyncs} fsyncs for {threads * per_thread} events"


def read_back_has(directory: Path, event_id: str) -> bool:
    return event_id.encode() in (directory / "events.raftlog").read_bytes()


def test_model_store_waits_for_its_fsync_outside_its_lock(tmp_path: Path, slow_fsyncs: list[str]) -> None:
    threads, per_thread = 8, 15
    with open_models(tmp_path / "shop", shop_models(), mode="group") as db:
        slow_fsyncs.clear()
        acknowledged: list[str] = []

        def work(t: int) -> None:
            for i in range(per_thread):
                obj = db.create("users", {"id": f"u{t}-{i}", "email": f"u{t}-{i}@example.com"})
                assert read_back_has(tmp_path / "shop", f"u{t}-{i}@example.com"), "answered before it was written"
                acknowledged.append(obj["id"])

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        fsyncs = slow_fsyncs.count("events.raftlog")
        with db.transaction():  # a transaction's batch is waited for when its block ends
            db.create("users", {"id": "tx1", "email": "tx1@example.com"})
            db.create("users", {"id": "tx2", "email": "tx2@example.com"})
        assert read_back_has(tmp_path / "shop", "tx2@example.com")
    assert len(acknowledged) == threads * per_thread
    assert fsyncs <= threads * per_thread // 2, f"{fsyncs} fsyncs for {threads * per_thread} creates"

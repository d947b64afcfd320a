"""``LT_EVENT_MAX_BATCH`` bounds the writer's writes; ``LT_DISABLE_INDEX`` has nothing to disable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import lithair_lab as ll
from lithair_lab.engine.config import StoreConfig
from lithair_lab.engine.writers import AppendFile

from engine_support import read_back


def test_event_max_batch_comes_from_the_argument_or_the_variables() -> None:
    assert StoreConfig.resolve(environ={}).max_batch == 0
    assert StoreConfig.resolve(environ={"RS_EVENT_MAX_BATCH": "7"}).max_batch == 7
    assert StoreConfig.resolve(environ={"RS_EVENT_MAX_BATCH": "7", "LT_EVENT_MAX_BATCH": "5"}).max_batch == 5
    assert StoreConfig.resolve(max_batch=2, environ={"LT_EVENT_MAX_BATCH": "5"}).max_batch == 2
    with pytest.raises(ValueError, match="`max_batch`"):
        StoreConfig.resolve(max_batch=-1)


@pytest.mark.parametrize("mode", ["async", "group"])
def test_no_write_holds_more_than_max_batch_events_and_a_batch_is_never_split(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    real = AppendFile.write

    def write(self: AppendFile, data: bytes) -> None:
        if self.path.name == "events.raftlog":
            writes.append(bytes(data).count(b"\n"))
        real(self, data)

    monkeypatch.setattr(AppendFile, "write", write)
    monkeypatch.setenv("LT_EVENT_MAX_BATCH", "3")
    with ll.open_store(tmp_path, mode=mode, flush_interval_ms=1) as store:  # type: ignore[arg-type]
        assert store.config.max_batch == 3

        def work(t: int) -> None:
            for i in range(40):
                store.append("T", {"t": t, "i": i})

        pool = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        store.append_many([{"event_type": "T", "payload": {"big": i}} for i in range(10)])
    assert sum(writes) == 170 == len(read_back(tmp_path))
    assert 10 in writes, "the batch of 10 is written whole, by one write"
    assert max(w for w in writes if w != 10) <= 3, writes


def test_an_upstream_index_is_reported_stale_and_left_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LT_DISABLE_INDEX", "0")  # asking for the index changes nothing: we never write one
    with ll.open_store(tmp_path) as store:
        store.append("T", {}, event_id="e1")
        assert store.stale_index is None
    assert not (tmp_path / "events.raftidx").exists()
    index = b'{"aggregate_id":"x","offset":0}\n'
    (tmp_path / "events.raftidx").write_bytes(index)
    with ll.open_store(tmp_path) as store:
        assert store.stale_index == tmp_path / "events.raftidx"
        store.append("T", {}, event_id="e2")
    assert (tmp_path / "events.raftidx").read_bytes() == index, "not rewritten, not deleted"

"""The engine's first promises: append, state, replay on reopen, duplicates refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import lithair_lab as ll
from lithair_lab.formats import jsonlines
from lithair_lab.formats.envelope import envelope_from_obj

import orjson


def test_append_updates_state_and_reopen_replays_it(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with ll.open_store(d) as store:
        store.append("ProductCreated", {"id": "p1", "name": "Pen", "price": 1.5}, aggregate_id="p1")
        store.append("ProductUpdated", {"price": 2}, aggregate_id="p1")
        store.append("ProductCreated", {"id": "p2", "name": "Ink"}, aggregate_id="p2")
        store.append("ProductDeleted", {}, aggregate_id="p2", event_id="del-p2")
        live = store.state
        assert live == {"Product": {"p1": {"id": "p1", "name": "Pen", "price": 2}}}
        assert store.event_count == 4
        last = store.last_hash
    with ll.open_store(d) as store:
        assert store.state == live
        assert store.event_count == 4
        assert store.last_hash == last


def test_duplicate_is_refused_in_process_and_after_restart(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        store.append("Deposited", {"amount": 1}, event_id="cmd-1")
        with pytest.raises(ll.DuplicateEventError, match="`cmd-1`"):
            store.append("Deposited", {"amount": 1}, event_id="cmd-1")
        store.append("Deposited", {"amount": 5})
        with pytest.raises(ll.DuplicateEventError, match="json:"):
            store.append("Deposited", {"amount": 5})
    with ll.open_store(tmp_path) as store:
        with pytest.raises(ll.DuplicateEventError):
            store.append("Deposited", {"amount": 2}, event_id="cmd-1")
        with pytest.raises(ll.DuplicateEventError):
            store.append("Other", {"amount": 5})
        assert store.event_count == 2


def test_lines_are_crc_framed_envelopes_with_a_chain(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        a = store.append("T", {"x": 1}, event_id="a", timestamp=10)
        b = store.append("T", {"x": 2}, event_id="b", timestamp=11)
    lines = (tmp_path / "events.raftlog").read_bytes().splitlines()
    envs = []
    for line in lines:
        kind, body, ok = jsonlines.split_line(line)
        assert (kind, ok) == ("crc", True)
        envs.append(envelope_from_obj(orjson.loads(body)))
    assert envs == [a, b]
    assert a.previous_hash is None and b.previous_hash == a.event_hash


def test_a_store_left_open_at_exit_still_writes_what_it_acknowledged(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, lithair_lab as ll\n"
        "s = ll.open_store(sys.argv[1], mode='async', flush_interval_ms=10**6, max_events_buffer=10**9)\n"
        "for i in range(100):\n    s.append('T', {'i': i})\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    assert len((tmp_path / "events.raftlog").read_bytes().splitlines()) == 100


def test_a_dropped_store_releases_its_lock(tmp_path: Path) -> None:
    store = ll.open_store(tmp_path)
    store.append("T", {})
    del store
    with ll.open_store(tmp_path) as again:
        assert again.event_count == 1


@pytest.mark.parametrize("mode", ["sync", "async", "group"])
def test_a_failed_write_stops_the_store_until_reopened(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from lithair_lab.engine import writers

    store = ll.open_store(tmp_path, mode=mode)
    store.append("T", {"i": 0}, event_id="ok")
    store.flush()
    real = writers.AppendFile.write

    def full_disk(self: writers.AppendFile, data: bytes) -> None:
        if self.path.name == "events.raftlog":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, data)

    monkeypatch.setattr(writers.AppendFile, "write", full_disk)
    with pytest.raises(OSError):
        store.append("T", {"i": 1}, event_id="lost")
        store.flush()  # async: the failure surfaces at the barrier
    with pytest.raises((ll.LithairLabError, OSError), match="reopen|open the directory again|writer thread failed"):
        store.append("T", {"i": 2}, event_id="after")
    monkeypatch.setattr(writers.AppendFile, "write", real)
    if mode == "sync":
        store.close()
    else:
        with pytest.raises(OSError):
            store.close()  # the writer thread's failure is reported again; the lock is released anyway
    with ll.open_store(tmp_path) as again:
        assert again.event_count == 1
        again.append("T", {"i": 1}, event_id="lost")  # it was never written, so it is not a duplicate

"""Bad input gets a clear error and leaves the store unchanged and usable; config from LT_/RS_ variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import lithair_lab as ll
from lithair_lab.engine.config import StoreConfig
from lithair_lab.formats import bincode, jsonlines
from lithair_lab.formats.envelope import Envelope

from engine_support import read_back
from worked import WORKED_FRAME, WORKED_LINE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event_type": "", "payload": {}}, "`event_type` must be a non-empty string, got ''"),
        ({"event_type": 5, "payload": {}}, "`event_type` must be a non-empty string, got 5"),
        ({"event_type": "T", "payload": {1, 2}}, "`payload` is not JSON-serializable"),
        ({"event_type": "T", "payload": {"x": object()}}, "`payload` is not JSON-serializable"),
        ({"event_type": "T", "payload": {"n": 2**70}}, "`payload` is not JSON-serializable"),
        ({"event_type": "T", "payload": {}, "timestamp": -1}, "`timestamp` must be a non-negative integer"),
        ({"event_type": "T", "payload": {}, "timestamp": 1.5}, "`timestamp` must be a non-negative integer"),
        ({"event_type": "T", "payload": {}, "timestamp": True}, "`timestamp` must be a non-negative integer"),
        ({"event_type": "T", "payload": {}, "timestamp": 2**64}, "`timestamp` must be a non-negative integer"),
        ({"event_type": "T", "payload": {}, "event_id": "a\nb"}, "contains a line break"),
        ({"event_type": "T", "payload": {}, "event_id": "a\rb"}, "contains a line break"),
        ({"event_type": "T", "payload": {}, "event_id": 7}, "`event_id` must be a string or None, got int"),
        ({"event_type": "T\ud800", "payload": {}}, "is not valid Unicode"),
        ({"event_type": "T", "payload": {}, "aggregate_id": "\udfff"}, "is not valid Unicode"),
        ({"event_type": "T", "payload": "\ud800"}, "`payload` is not JSON-serializable"),
        ({"event_type": "T", "payload": {}, "aggregate_id": 7}, "`aggregate_id` must be a string or None, got int"),
    ],
)
def test_bad_event_is_refused_and_changes_nothing(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with ll.open_store(tmp_path) as store:
        store.append("T", {"ok": 1}, event_id="first")
        before = (store.event_count, store.last_hash, (tmp_path / "events.raftlog").read_bytes())
        with pytest.raises(ll.InvalidEventError, match=message.replace("`", ".").replace("(", r"\(")):
            store.append(**kwargs)
        with pytest.raises(ll.InvalidEventError):
            store.append_many([{"event_type": "T", "payload": {"fine": 1}}, kwargs])
        store.flush()
        assert (store.event_count, store.last_hash, (tmp_path / "events.raftlog").read_bytes()) == before
        store.append("T", {"ok": 2}, event_id="second")  # still usable
    assert [s.env.event_id for s in read_back(tmp_path)] == ["first", "second"]


def test_oversized_payload_is_refused(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        with pytest.raises(ll.InvalidEventError, match="above the 67,108,864-byte limit"):
            store.append("T", "x" * (64 * 1024 * 1024))
        assert store.event_count == 0
        store.append("T", {"small": True})


def test_raw_json_is_validated_and_stored_verbatim(tmp_path: Path) -> None:
    with pytest.raises(ll.InvalidEventError, match="not valid JSON"):
        ll.RawJSON('{"a": ')
    with ll.open_store(tmp_path) as store:
        env = store.append("ProductCreated", ll.RawJSON('{"id": "p1", "price": 1.50}'), aggregate_id="p1")
        assert env.payload == '{"id": "p1", "price": 1.50}'
        assert store.state["Product"]["p1"] == {"id": "p1", "price": 1.5}
    assert read_back(tmp_path)[0].env.payload == '{"id": "p1", "price": 1.50}'


def test_append_many_is_all_or_nothing_on_duplicates(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        store.append("T", {}, event_id="a")
        for batch in (
            [{"event_type": "T", "payload": {}, "event_id": "b"}, {"event_type": "T", "payload": {}, "event_id": "a"}],
            [{"event_type": "T", "payload": {}, "event_id": "c"}, {"event_type": "T", "payload": {}, "event_id": "c"}],
        ):
            with pytest.raises(ll.DuplicateEventError):
                store.append_many(batch)
        with pytest.raises(ll.InvalidEventError, match="only the keywords of `append`"):
            store.append_many([{"event_type": "T", "payload": {}, "id": "x"}])
        envs = store.append_many([{"event_type": "T", "payload": {"i": i}, "event_id": f"n{i}"} for i in range(3)])
        assert [e.event_id for e in envs] == ["n0", "n1", "n2"]
        assert store.event_count == 4
    assert [s.env.event_id for s in read_back(tmp_path)] == ["a", "n0", "n1", "n2"]


def test_a_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "events.raftlog"
    f.write_text("")
    with pytest.raises(ll.FormatError, match="is a file, not a data directory"):
        ll.open_store(f)


def test_a_directory_of_another_format_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ll.FormatError, match="is not a Lithair data directory: it holds `data.csv`, `notes.txt`"):
        ll.open_store(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "notes.txt"]


def test_a_journal_of_the_other_encoding_is_refused(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        store.append("T", {})
    with pytest.raises(ll.FormatError, match="the journal is json, but binary records were asked for"):
        ll.open_store(tmp_path, binary=True)
    with ll.open_store(tmp_path) as store:  # binary=None follows the journal
        assert not store.binary


def test_unframed_binary_is_reported_not_decoded(tmp_path: Path) -> None:
    body = bincode.encode_body(Envelope("T", "e1", 1700000000, "{}").chained(None))
    (tmp_path / "events.raftlog").write_bytes(body + b"\n")  # upstream's old async writer
    with pytest.raises(ll.FormatError, match="unframed binary"):
        ll.open_store(tmp_path)


def test_a_second_writer_process_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    code = (
        "import sys, lithair_lab as ll\n"
        "try:\n    ll.open_store(sys.argv[1])\n"
        "except ll.StoreLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    with ll.open_store(tmp_path):
        with pytest.raises(ll.StoreLockedError, match=f"pid {os.getpid()}"):
            ll.open_store(tmp_path)  # a second store in the same process is refused too
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 3, out.stderr
        assert f"is locked for writing by pid {os.getpid()}" in out.stdout
    ll.open_store(tmp_path).close()


def test_worked_json_line_is_written_byte_for_byte(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        store.append(
            "ProductCreated", {"id": "p1", "name": "Pen", "price": 1.5}, aggregate_id="p1",
            event_id="Product:Created:p1:6f1c2a1e-0000-4000-8000-000000000001", timestamp=1767225600,
        )  # fmt: skip
    assert (tmp_path / "events.raftlog").read_bytes() == WORKED_LINE


def test_worked_binary_frame_is_written_byte_for_byte_and_files_grow_per_append(tmp_path: Path) -> None:
    with ll.open_store(tmp_path, binary=True) as store:
        store.append("T", ll.RawJSON("{}"), event_id="e1", timestamp=1700000000)
        journal = tmp_path / "events.raftlog"
        assert journal.read_bytes() == WORKED_FRAME
        for i in range(5):
            size = journal.stat().st_size
            env = store.append("T", {"i": i}, timestamp=1700000000 + i)
            assert journal.stat().st_size == size + len(bincode.encode_frame(env))


def test_binary_append_snapshot_reopen_round_trip(tmp_path: Path) -> None:
    with ll.open_store(tmp_path, binary=True) as store:
        for i in range(10):
            store.append("ProductCreated", {"id": f"p{i}", "name": "é✓"}, aggregate_id=f"p{i}")
        store.snapshot()
        store.append("ProductDeleted", {}, aggregate_id="p3")
        live = store.state
    with ll.open_store(tmp_path) as store:
        assert store.binary
        assert store.state == live
        assert "p3" not in store.state["Product"]


def test_meta_is_written_once_in_the_lithair_db_form(tmp_path: Path) -> None:
    ll.open_store(tmp_path).close()
    meta = tmp_path / "meta.raftmeta"
    text = meta.read_bytes()
    obj = orjson.loads(text)
    assert obj["format"] == "lithair-db" and obj["version"] == "1.0.0"
    assert text.startswith(b'{\n  "created_at"')
    os.utime(meta, (0, 0))
    ll.open_store(tmp_path).close()
    assert meta.read_bytes() == text and meta.stat().st_mtime == 0


def test_hash_chain_can_be_disabled(tmp_path: Path) -> None:
    with ll.open_store(tmp_path, hash_chain=False) as store:
        env = store.append("T", {})
        assert env.event_hash is None and env.previous_hash is None
    line = (tmp_path / "events.raftlog").read_bytes()
    assert line.endswith(b'"event_hash":null,"previous_hash":null}\n')
    assert jsonlines.split_line(line.rstrip(b"\n"))[2]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"mode": "sync", "fsync": False, "binary": None, "hash_chain": True, "max_log_file_size": 0}),
        ({"LT_OPT_PERSIST": "true"}, {"mode": "async"}),
        ({"RS_OPT_PERSIST": "1", "RS_FSYNC_ON_APPEND": "TRUE"}, {"mode": "async", "fsync": True}),
        ({"RS_OPT_PERSIST": "1", "LT_OPT_PERSIST": "0"}, {"mode": "sync"}),  # LT_ wins
        ({"LT_ENABLE_BINARY": "1", "LT_DISABLE_HASH_CHAIN": "1"}, {"binary": True, "hash_chain": False}),
        ({"LT_ENABLE_BINARY": "0"}, {"binary": False}),
        ({"LT_MAX_LOG_FILE_SIZE": "1048576", "LT_BUFFER_SIZE": "4096"}, {"max_log_file_size": 1 << 20, "buffer_size": 4096}),
        ({"LT_MAX_EVENTS_BUFFER": "10", "LT_FLUSH_INTERVAL_MS": "5"}, {"max_events_buffer": 10, "flush_interval_ms": 5}),
        ({"LT_DEDUP_PERSIST": "false"}, {"dedup_persist": False}),
    ],
)
def test_config_from_upstream_variables(environ: dict[str, str], expected: dict[str, Any]) -> None:
    config = StoreConfig.resolve(environ=environ)
    assert {k: getattr(config, k) for k in expected} == expected


def test_arguments_win_over_variables_and_bad_values_are_named() -> None:
    assert StoreConfig.resolve(mode="group", environ={"LT_OPT_PERSIST": "1"}).mode == "group"
    with pytest.raises(ValueError, match="`mode` must be one of 'sync', 'async', 'group', got 'fast'"):
        StoreConfig.resolve(mode="fast")
    with pytest.raises(ValueError, match="`LT_MAX_LOG_FILE_SIZE`/`RS_MAX_LOG_FILE_SIZE` must be an integer"):
        StoreConfig.resolve(environ={"LT_MAX_LOG_FILE_SIZE": "big"})
    with pytest.raises(ValueError, match="`fsync=False` contradicts `mode='group'`"):
        StoreConfig.resolve(mode="group", fsync=False)
    with pytest.raises(ValueError, match="`max_log_file_size` must be a non-negative integer"):
        StoreConfig.resolve(max_log_file_size=-1)


def test_open_store_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RS_OPT_PERSIST", "1")
    monkeypatch.setenv("LT_ENABLE_BINARY", "true")
    monkeypatch.setenv("LT_MAX_LOG_FILE_SIZE", "300")
    with ll.open_store(tmp_path) as store:
        assert store.config.mode == "async" and store.binary
        for i in range(10):
            store.append("T", {"i": i})
    assert (tmp_path / "events.raftlog.1").exists()
    assert (tmp_path / "events.raftlog").read_bytes()[:8].count(0) >= 4  # a length prefix, not JSON
    with ll.open_store(tmp_path, mode="sync") as store:  # an argument wins over the variable
        assert store.config.mode == "sync" and store.event_count == 10

"""``append_many`` is all or nothing across a crash: a batch cut short is a torn tail."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

import lithair_lab as ll
from lithair_lab.engine.recovery import BATCH_FIELD

from benchmarks.kill_engine import batch_child, collect, read_journal, spawn, verify_chain
from engine_support import assert_chain, read_back


def batch(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"event_type": "ProductCreated", "payload": {"id": f"{prefix}{i}"}, "aggregate_id": f"{prefix}{i}", "event_id": f"{prefix}-{i}", "timestamp": 1767225600 + i}
        for i in range(n)
    ]


def test_batch_records_carry_a_countdown_and_single_appends_stay_plain(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        store.append("ProductCreated", {"id": "p0"}, aggregate_id="p0", event_id="solo")
        store.append_many(batch("b", 3))
        store.append_many(batch("one", 1))
    lines = (tmp_path / "events.raftlog").read_bytes().splitlines()
    objs = [orjson.loads(line[9:]) for line in lines]
    assert [o.get(BATCH_FIELD) for o in objs] == [None, 2, 1, None, None]
    assert list(objs[0]) == ["event_type", "event_id", "timestamp", "payload", "aggregate_id", "event_hash", "previous_hash"]
    assert list(objs[1])[-1] == BATCH_FIELD, "the marker is an extra field after the seven of the envelope"
    # The shared readers take the marked records as ordinary envelopes, hash chain included.
    stored = [s.env for s in read_back(tmp_path)]
    assert [e.event_id for e in stored] == ["solo", "b-0", "b-1", "b-2", "one-0"]
    assert_chain(stored)
    frame = ll.read(tmp_path)
    assert frame["event_id"].to_list() == ["solo", "b-0", "b-1", "b-2", "one-0"]


def test_readers_ignore_the_binary_batch_range_file(tmp_path: Path) -> None:
    with ll.open_store(tmp_path, binary=True) as store:
        store.append_many(batch("b", 3))
    assert (tmp_path / ".lithair_lab.batch").exists()
    assert ll.read(tmp_path)["event_id"].to_list() == ["b-0", "b-1", "b-2"]
    assert ll.read_damage(tmp_path).height == 0


@pytest.mark.parametrize("keep", [1, 2, "torn-third"])
def test_a_batch_cut_short_is_cut_aside_whole_and_can_be_retried(tmp_path: Path, keep: int | str) -> None:
    with ll.open_store(tmp_path) as store:
        store.append_many(batch("a", 2))
        store.append_many(batch("b", 3))
    journal = tmp_path / "events.raftlog"
    data = journal.read_bytes()
    starts = [0] + [i + 1 for i, c in enumerate(data) if c == ord("\n")]
    cut = starts[2 + 3] - 7 if keep == "torn-third" else starts[2 + keep]  # type: ignore[operator]
    journal.write_bytes(data[:cut])
    (tmp_path / "dedup.raftids").write_bytes(b"a-0\na-1\n")  # ids are written after their records, so a crash left none

    with ll.open_store(tmp_path) as store:
        assert store.event_count == 2
        assert sorted(store.state["Product"]) == ["a0", "a1"]
        [side] = store.torn_tails
        assert side.read_bytes() == data[starts[2] : cut], "the unfinished batch is kept aside, not deleted"
        assert journal.read_bytes() == data[: starts[2]]
        store.append_many(batch("b", 3))  # its ids were never acknowledged: the retry is not a duplicate
    assert journal.read_bytes() == data
    assert_chain([s.env for s in read_back(tmp_path)])


def test_a_batch_is_never_split_by_a_rotation(tmp_path: Path) -> None:
    with ll.open_store(tmp_path, max_log_file_size=600) as store:
        for k in range(6):
            store.append_many(batch(f"r{k}", 4))
    for f in [*sorted(tmp_path.glob("events.raftlog.*")), tmp_path / "events.raftlog"]:
        counts = [orjson.loads(line[9:]).get(BATCH_FIELD, 0) for line in f.read_bytes().splitlines()]
        assert counts == [3, 2, 1, 0] * (len(counts) // 4), f"{f.name} holds part of a batch"
    assert len(read_back(tmp_path)) == 24


# ------------------------------------------------------------------ kill test


def _kill_round(directory: Path, opts: dict[str, Any], rng: random.Random) -> tuple[int, int]:
    token = os.urandom(3).hex()
    acks = directory.parent / f"acks-{token}"
    buf = collect(spawn(batch_child, str(directory), opts, token, rng.randrange(2**32), acks=acks), acks, rng, 0.05)
    acked = [line.decode().rsplit("-", 2) for line in bytes(buf).split(b"\n") if line]

    with ll.open_store(directory, max_log_file_size=20_000, **opts) as store:
        count = store.event_count
        torn = len(store.torn_tails)
    envs = read_journal(directory)  # the shared codec: fails on any partial record
    assert len(envs) == count
    verify_chain(envs)
    batches: dict[str, list[int]] = {}
    for e in envs:
        if e.event_id.startswith(token):
            _, b, i, n = e.event_id.rsplit("-", 3)
            batches.setdefault(f"{b}-{n}", []).append(int(i))
    for key, members in batches.items():
        assert members == list(range(int(key.split("-")[1]))), f"batch {key} is partial after reopen: {members}"
    missing = [f"{b}-{n}" for _, b, n in acked if f"{b}-{n}" not in batches]
    assert not missing, f"acknowledged batches lost: {missing[:3]}"
    return len(acked), torn


@pytest.mark.parametrize("mode", ["sync", "group", "binary"])
def test_sigkill_leaves_only_whole_batches(tmp_path: Path, mode: str) -> None:
    opts: dict[str, Any] = {"sync": {"mode": "sync", "fsync": True}, "group": {"mode": "group"}}.get(
        mode, {"mode": "group", "binary": True}
    )
    rng = random.Random(f"batches-{mode}")
    acked = 0
    for _ in range(12):
        a, _torn = _kill_round(tmp_path / "store", opts, rng)
        acked += a
    assert acked > 0, "no batch was ever acknowledged: the rounds proved nothing"


def test_a_binary_batch_cut_short_is_cut_aside_whole(tmp_path: Path) -> None:
    with ll.open_store(tmp_path, binary=True) as store:
        store.append_many(batch("a", 2))
        whole = (tmp_path / "events.raftlog").read_bytes()
        store.append_many(batch("b", 3))
    journal = tmp_path / "events.raftlog"
    data = journal.read_bytes()
    # A crash after two of the three frames (a short write): the file ends exactly on a frame boundary.
    frames, pos = [], len(whole)
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 8], "little")
        frames.append(pos)
        pos += 8 + n
    cut = frames[2]
    journal.write_bytes(data[:cut])
    (tmp_path / "dedup.raftids").write_bytes(b"a-0\na-1\n")
    with ll.open_store(tmp_path) as store:
        assert store.binary and store.event_count == 2
        [side] = store.torn_tails
        assert side.read_bytes() == data[len(whole) : cut]
        assert journal.read_bytes() == whole
        store.append_many(batch("b", 3))
    assert journal.read_bytes() == data
    with ll.open_store(tmp_path) as store:  # a whole batch is never cut, and the range is forgotten
        assert store.event_count == 5 and not store.torn_tails

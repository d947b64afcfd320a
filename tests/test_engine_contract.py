"""The store contract, run for every writer mode (sync, async, group, binary).

Each test reads as a story of what a user is promised; `make_store` is the one
factory. Checks of the bytes go through tests/engine_support.py, which uses the
shared codec and not the engine's replay.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lithair_lab as ll
from lithair_lab.engine import Store

from engine_support import assert_chain, read_back

MODES: dict[str, dict[str, Any]] = {
    "sync": {"mode": "sync"},
    "async": {"mode": "async", "flush_interval_ms": 5},
    "group": {"mode": "group"},
    "binary": {"mode": "sync", "binary": True},
    "binary-async": {"mode": "async", "binary": True, "flush_interval_ms": 5},
}

MakeStore = Callable[..., Store]


@pytest.fixture(params=list(MODES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    opts = MODES[request.param]

    def make(path: Path | None = None, **more: Any) -> Store:
        return ll.open_store(path or tmp_path / "store", **{**opts, **more})

    return make


def add(state: dict, env: Any, data: Any) -> None:
    """A custom reducer: running totals per aggregate."""
    row = state.setdefault("Counter", {}).setdefault(env.aggregate_id, {"sum": 0, "n": 0})
    row["sum"] += data["amount"]
    row["n"] += 1


def test_empty_store_has_empty_state_and_reopens_empty(make_store: MakeStore) -> None:
    with make_store() as store:
        assert store.state == {}
        assert store.event_count == 0
        assert store.last_hash is None
    with make_store() as store:
        assert store.state == {} and store.event_count == 0


def test_crud_state_survives_reopen(make_store: MakeStore) -> None:
    with make_store() as store:
        store.append("ProductCreated", {"id": "p1", "name": "Pen", "price": 1.5}, aggregate_id="p1")
        store.append("ProductCreated", {"id": "p2", "name": "Ink", "price": 3}, aggregate_id="p2")
        store.append("ProductUpdated", {"price": 2}, aggregate_id="p1")  # partial: merges
        store.append("ProductDeleted", {"id": "p2"}, aggregate_id="p2")
        store.append("ProductCreated", {"id": "p2", "name": "Ink v2"}, aggregate_id="p2")  # a new life
        store.append("UserCreated", {"id": 7, "name": "Ada"})  # key from the payload's primary key
        store.append("SomethingHappened", {"x": 1})  # neither CRUD nor registered: no state change
        expected = {
            "Product": {"p1": {"id": "p1", "name": "Pen", "price": 2}, "p2": {"id": "p2", "name": "Ink v2"}},
            "User": {"7": {"id": 7, "name": "Ada"}},
        }
        assert store.state == expected
        assert store.versions["Product"]["p1"][0] == 2
        assert store.versions["Product"]["p2"][0] == 1  # the delete ended the first life
        versions = store.versions
    with make_store() as store:
        assert store.state == expected
        assert store.versions == versions
        assert store.event_count == 7


def test_custom_reducers_replay_on_open(make_store: MakeStore) -> None:
    with make_store(reducers={"Added": add}) as store:
        for i in range(10):
            store.append("Added", {"amount": i}, aggregate_id="c", event_id=f"a{i}")
        assert store.state["Counter"]["c"] == {"sum": 45, "n": 10}
    with make_store(reducers={"Added": add}) as store:
        assert store.state["Counter"]["c"] == {"sum": 45, "n": 10}


def test_duplicates_are_refused_in_process_across_restart_and_rotation(make_store: MakeStore) -> None:
    with make_store(max_log_file_size=1500) as store:
        first = store.append("T", {"n": 0}, event_id="id-0")
        with pytest.raises(ll.DuplicateEventError) as err:
            store.append("T", {"n": "retry"}, event_id="id-0")
        assert err.value.key == "id-0"
        for i in range(1, 40):
            store.append("T", {"n": i}, event_id=f"id-{i}")
        assert (store.path / "events.raftlog.1").exists(), "expected the journal to have rotated"
        with pytest.raises(ll.DuplicateEventError):
            store.append("T", {"n": 0}, event_id="id-0")  # its record is in a rotated segment now
        assert store.event_count == 40
    with make_store(max_log_file_size=1500) as store:
        for i in (0, 17, 39):
            with pytest.raises(ll.DuplicateEventError):
                store.append("T", {}, event_id=f"id-{i}")
        store.append("T", {"n": 40}, event_id="id-40")
    envs = [s.env for s in read_back(store.path)]
    assert [e.event_id for e in envs] == [f"id-{i}" for i in range(41)]
    assert envs[0] == first
    assert_chain(envs)


def test_a_refused_duplicate_changes_nothing(make_store: MakeStore) -> None:
    with make_store() as store:
        store.append("ProductCreated", {"id": "p1", "v": 1}, aggregate_id="p1", event_id="x")
        before = (store.event_count, store.last_hash, dict(store.state["Product"]))
        with pytest.raises(ll.DuplicateEventError):
            store.append("ProductCreated", {"id": "p1", "v": 2}, aggregate_id="p1", event_id="x")
        assert (store.event_count, store.last_hash, dict(store.state["Product"])) == before


def test_flush_is_a_barrier(make_store: MakeStore) -> None:
    with make_store(flush_interval_ms=10_000, max_events_buffer=10**6) as store:
        appended = [store.append("T", {"i": i}, event_id=str(i)) for i in range(50)]
        store.flush()
        assert [s.env for s in read_back(store.path)] == appended
        ids = (store.path / "dedup.raftids").read_bytes().split(b"\n")[:-1]
        assert ids == [str(i).encode() for i in range(50)]


def test_close_is_a_barrier_and_releases_the_lock(make_store: MakeStore) -> None:
    store = make_store(flush_interval_ms=10_000, max_events_buffer=10**6)
    appended = [store.append("T", {"i": i}) for i in range(20)]
    store.close()
    store.close()  # idempotent
    assert [s.env for s in read_back(store.path)] == appended
    with pytest.raises(ll.LithairLabError, match="closed"):
        store.append("T", {"late": True})
    make_store().close()  # the lock was released


def test_many_rotations_lose_nothing_and_keep_order(make_store: MakeStore) -> None:
    with make_store(max_log_file_size=2000) as store:
        appended = [store.append("T", {"i": i, "pad": "x" * (i % 50)}, event_id=f"e{i}") for i in range(300)]
    segments = sorted(p.name for p in store.path.glob("events.raftlog.*"))
    assert len(segments) >= 20
    stored = read_back(store.path)
    assert [s.env for s in stored] == appended
    assert_chain([s.env for s in stored])
    for p in store.path.glob("events.raftlog*"):
        assert p.stat().st_size <= 2000
    with make_store(max_log_file_size=2000) as store:
        assert store.event_count == 300
        assert store.last_hash == appended[-1].event_hash


def test_snapshot_then_reopen_replays_only_the_tail(make_store: MakeStore) -> None:
    calls: list[str] = []

    def counted(state: dict, env: Any, data: Any) -> None:
        calls.append(env.event_id)
        add(state, env, data)

    with make_store(reducers={"Added": counted}) as store:
        for i in range(30):
            store.append("Added", {"amount": 1}, aggregate_id="c", event_id=f"a{i}")
        cp = store.snapshot()
        assert cp.covered_events == 30
        for i in range(30, 35):
            store.append("Added", {"amount": 1}, aggregate_id="c", event_id=f"a{i}")
        live = store.state["Counter"]["c"]
    calls.clear()
    with make_store(reducers={"Added": counted}) as store:
        assert calls == [f"a{i}" for i in range(30, 35)]
        assert store.state["Counter"]["c"] == live == {"sum": 35, "n": 35}
        assert store.event_count == 35
        with pytest.raises(ll.DuplicateEventError):
            store.append("Added", {"amount": 1}, aggregate_id="c", event_id="a3")  # covered by the checkpoint


def test_checkpoint_stays_valid_across_rotation(make_store: MakeStore) -> None:
    with make_store(max_log_file_size=1200) as store:
        store.append("ProductCreated", {"id": "p0"}, aggregate_id="p0")
        store.snapshot()
        for i in range(1, 40):
            store.append("ProductCreated", {"id": f"p{i}"}, aggregate_id=f"p{i}")
        live = store.state
    assert (store.path / "events.raftlog.3").exists()
    with make_store(max_log_file_size=1200) as store:
        assert store.state == live
        assert store.event_count == 40


# 8 x 10,000 in the CPU-bound modes; fewer where each append waits for an fsync or costs more.
PER_THREAD = {"sync": 10_000, "async": 10_000, "group": 1_000, "binary": 2_000, "binary-async": 2_000}


def test_eight_threads_with_duplicates_give_exact_tallies(make_store: MakeStore, request: pytest.FixtureRequest) -> None:
    threads, per_thread, shared = 8, PER_THREAD[request.node.callspec.params["make_store"]], 50
    wins: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    lock = threading.Lock()

    def work(t: int, store: Store) -> None:
        mine = refusals = 0
        won: list[str] = []
        for i in range(per_thread):
            if i % 20 == 19:  # a retry of one of this thread's own earlier events
                eid = f"t{t}-{i - 10}"
            elif i % 20 == 7:  # an id every thread races for; exactly one wins
                eid = f"shared-{(i // 20) % shared}"
            else:
                eid = f"t{t}-{i}"
            try:
                store.append("Added", {"amount": 1}, aggregate_id=f"c{t % 2}", event_id=eid)
            except ll.DuplicateEventError:
                refusals += 1
            else:
                mine += 1
                won.append(eid)
        with lock:
            wins.update(won)
            refused[f"t{t}"] = refusals

    with make_store(reducers={"Added": add}) as store:
        pool = [threading.Thread(target=work, args=(t, store)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        total = sum(wins.values())
        own = threads * (per_thread - 2 * (per_thread // 20))
        assert total == own + shared
        assert max(wins.values()) == 1
        assert sum(refused.values()) == threads * per_thread - total
        state = store.state["Counter"]
        assert state["c0"]["sum"] + state["c1"]["sum"] == total
        live = {k: dict(v) for k, v in state.items()}
    envs = [s.env for s in read_back(store.path)]
    assert len(envs) == total
    assert Counter(e.event_id for e in envs) == wins
    assert_chain(envs)
    with make_store(reducers={"Added": add}) as store:
        assert store.state["Counter"] == live


def test_duplicates_are_refused_after_a_truncating_compaction(make_store: MakeStore) -> None:
    from lithair_lab.engine.policies import SmartCompaction

    with make_store() as store:
        for i in range(60):
            store.append("ProductUpdated", {"id": "p0", "v": i}, aggregate_id="p0", event_id=f"u{i}")
        report = store.compact(SmartCompaction(threshold=50, keep_recent=10))
        assert report.retained < 60  # records were dropped from the journal
        with pytest.raises(ll.DuplicateEventError):
            store.append("ProductUpdated", {"id": "p0", "v": -1}, aggregate_id="p0", event_id="u3")
    with make_store() as store:
        assert store.state["Product"]["p0"]["v"] == 59
        for eid in ("u0", "u3", "u59"):
            with pytest.raises(ll.DuplicateEventError):
                store.append("ProductUpdated", {"id": "p0", "v": -1}, aggregate_id="p0", event_id=eid)


def test_a_reader_of_a_journal_being_written_sees_only_whole_records(make_store: MakeStore) -> None:
    from lithair_lab.formats import bincode, jsonlines

    stop = threading.Event()
    bad: list[str] = []

    def reader(path: Path, binary: bool) -> None:
        while not stop.is_set():
            data = path.read_bytes() if path.exists() else b""
            if binary:
                pos = 0
                while pos + 8 <= len(data):
                    (n,) = bincode.LEN.unpack_from(data, pos)
                    if pos + 8 + n > len(data):
                        break  # a frame still being written: not a record yet
                    bincode.decode_body(data[pos + 8 : pos + 8 + n])
                    pos += 8 + n
            else:
                for line in data.split(b"\n")[:-1]:  # what follows the last newline is not a record yet
                    if not jsonlines.split_line(line)[2]:
                        bad.append(line[:60].decode(errors="replace"))

    with make_store() as store:
        t = threading.Thread(target=reader, args=(store.path / "events.raftlog", store.binary))
        t.start()
        try:
            for i in range(300):
                store.append("T", {"i": i, "pad": "x" * (i % 300)})
        finally:
            stop.set()
            t.join()
    assert not bad

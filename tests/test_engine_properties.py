"""Property tests: the engine's state equals a naive model, live and after any reopen."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from lithair_lab.engine.dedup import DedupIndex

from engine_support import read_back

KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=8), st.booleans(), st.none())
OBJ = st.dictionaries(st.sampled_from(["x", "y", "name"]), VALUES, max_size=3)
OP = st.one_of(
    st.tuples(st.sampled_from(["Created", "Updated", "Deleted", "Replicated", "AdminEdit"]), KEYS, OBJ),
    st.tuples(st.just("snapshot"), KEYS, OBJ),
    st.tuples(st.just("reopen"), KEYS, OBJ),
)


def naive(ops: list[tuple[str, str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """CRUD spelled out by hand: upsert, merge, delete."""
    items: dict[str, Any] = {}
    for op, key, obj in ops:
        if op in ("Created", "Replicated"):
            items[key] = obj
        elif op in ("Updated", "AdminEdit"):
            items[key] = {**items[key], **obj} if key in items else obj
        elif op == "Deleted":
            items.pop(key, None)
    return items


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(OP, max_size=25), binary=st.booleans(), rotate=st.sampled_from([0, 300]))
def test_state_matches_a_naive_fold_live_and_after_reopen(ops: list, binary: bool, rotate: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        opts = {"binary": binary, "max_log_file_size": rotate}
        store = ll.open_store(tmp, **opts)
        try:
            for i, (op, key, obj) in enumerate(ops):
                if op == "snapshot":
                    store.snapshot()
                elif op == "reopen":
                    store.close()
                    store = ll.open_store(tmp, **opts)
                else:
                    store.append(f"Item{op}", obj, aggregate_id=key, event_id=str(i), timestamp=i)
            assert set(store.state) <= {"Item"}
            assert store.state.get("Item", {}) == naive(ops)
            live, count = store.state, store.event_count
        finally:
            store.close()
        with ll.open_store(tmp, **opts) as again:
            assert again.state == live
            assert again.event_count == count


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.text(max_size=6), max_size=200), merge_at=st.sampled_from([1, 4, 1000]))
def test_dedup_index_behaves_like_a_set(keys: list[str], merge_at: int) -> None:
    index = DedupIndex(merge_at=merge_at)
    seen: set[str] = set()
    for k in keys:
        assert index.add(k) is (k not in seen)
        seen.add(k)
        assert k in index
    assert len(index) == len(seen)
    for k in list(seen)[:5]:
        index.discard(k)
        assert k not in index
    rebuilt = DedupIndex()
    rebuilt.update(keys + keys)  # repeats, as in an Era B log
    assert len(rebuilt) == len(seen) and all(k in rebuilt for k in seen)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.text(max_size=3), max_size=8), max_size=40),
    merge_at=st.sampled_from([1, 4, 1000]),
)
def test_dedup_add_all_adds_a_batch_whole_or_not_at_all(batches: list[list[str]], merge_at: int) -> None:
    index = DedupIndex(merge_at=merge_at)
    model: set[str] = set()
    for keys in batches:
        clash = next((k for i, k in enumerate(keys) if k in model or k in keys[:i]), None)
        assert index.add_all(keys) == clash
        if clash is None:
            model.update(keys)
        assert len(index) == len(model) and all(k in index for k in model)


@pytest.mark.parametrize("n", [100_000])
def test_dedup_index_memory_per_id_is_flat(n: int) -> None:
    tracemalloc.start()
    index = DedupIndex()
    for i in range(n):
        index.add(f"order-{i}-{i * 7919}")
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(index) == n
    assert current / n <= 64, f"{current / n:.1f} bytes per id"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(payload=JSON, event_type=st.text(min_size=1, max_size=12), aggregate=st.none() | st.text(max_size=8))
def test_any_json_payload_round_trips_exactly(payload: Any, event_type: str, aggregate: str | None) -> None:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in event_type + (aggregate or "")):
        event_type, aggregate = "T", None  # lone surrogates are refused (tested elsewhere)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with ll.open_store(tmp) as store:
                env = store.append(event_type, payload, aggregate_id=aggregate, timestamp=0)
        except ll.InvalidEventError:
            return  # e.g. a lone surrogate inside the payload's text: refused, nothing written
        with ll.open_store(tmp) as store:
            assert store.event_count == 1
            assert store.last_hash == env.event_hash
        [stored] = read_back(Path(tmp))
        assert stored.env == env
        assert orjson.loads(stored.env.payload) == orjson.loads(orjson.dumps(payload))

"""The idempotence index: the native digest table and the pure-Python sorted form hold the same set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lithair_lab.engine import dedup
from lithair_lab.engine.dedup import DedupIndex, DigestBatch, NativeDedupIndex
from lithair_lab.formats.envelope import native_encoder


def pure(merge_at: int = 65_536) -> DedupIndex:
    index = object.__new__(DedupIndex)  # the pure-Python form even when the native one is built
    index.__init__(merge_at=merge_at)
    return index


def both() -> list[DedupIndex]:
    return [pure(merge_at=4), DedupIndex()]


keys = st.text(max_size=8) | st.sampled_from(["", "json:" + "0" * 64, "é😀"])
ops = st.lists(st.tuples(st.sampled_from(["add", "discard", "has", "add_all"]), st.lists(keys, min_size=1, max_size=3)), max_size=80)


def test_digest_is_blake2b_128() -> None:
    assert dedup.digest("ev-1") == hashlib.blake2b(b"ev-1", digest_size=16).digest() == dedup.digest_bytes(b"ev-1")


def test_dedup_index_is_native_when_built() -> None:
    assert isinstance(DedupIndex(), NativeDedupIndex) == native_encoder


@settings(max_examples=150, deadline=None)
@given(ops)
def test_both_forms_answer_alike(script: list[tuple[str, list[str]]]) -> None:
    indexes = both()
    for op, ks in script:
        results = []
        for index in indexes:
            if op == "add":
                results.append(index.add(ks[0]))
            elif op == "discard":
                results.append(index.discard(ks[0]))
            elif op == "has":
                results.append(ks[0] in index)
            else:
                results.append(index.add_all(ks))
            results.append(len(index))
        assert results[: len(results) // 2] == results[len(results) // 2 :], (op, ks)
    a, b = (index.sorted_digests() for index in indexes)
    assert a.tobytes() == b.tobytes()


def test_bulk_loads_and_cache_round_trip(tmp_path: Path) -> None:
    ids = [f"order-{i}" for i in range(20_000)] + ["order-5", "order-7"]  # repeats are fine in bulk loads
    ids_path = tmp_path / "dedup.raftids"
    ids_path.write_bytes("".join(k + "\n" for k in ids).encode())
    for index in both():
        batch = DigestBatch()
        for k in ids:
            batch.add(k.encode())
        index.merge(batch)
        assert len(index) == 20_000
        assert "order-19999" in index and "order-20000" not in index
        assert not index.add("order-3") and index.add("new")
        dedup.save_cache(index, ids_path)
        cached = dedup.load_cache(ids_path)
        assert cached is not None and cached[1] == ids_path.stat().st_size
        assert len(cached[0]) == 20_001 and np.all(cached[0][:-1] < cached[0][1:])
        for again in both():
            again.load_sorted(cached[0])
            assert len(again) == 20_001 and "new" in again and not again.add("order-0")


@pytest.mark.skipif(not native_encoder, reason="the native encoder is not built")
def test_native_table_keeps_the_all_zero_digest_apart() -> None:
    from lithair_lab.formats._encode import DigestSet

    s = DigestSet()
    assert s.add_digest(bytes(16)) and not s.add_digest(bytes(16)) and s.has_digest(bytes(16))
    assert len(s) == 1 and s.digests() == bytes(16)
    s.discard_digest(bytes(16))
    assert len(s) == 0 and not s.has_digest(bytes(16))
    with pytest.raises(ValueError, match="16 bytes"):
        s.add_digest(b"short")

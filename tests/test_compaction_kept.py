"""Compaction holds no payloads, yet keeps exactly what the policy says over the whole event frame.

The oracle is the old way: the policy's mask over the full frame (``ll.read``, every
column, payloads included), the bytes of the records it keeps, and, for a policy
without a snapshot, the state those records rebuild (``ReplayState``). The engine
now holds only the columns a policy reads, with a keyless record's ``id`` standing
for its payload, and reads the kept payloads again from the files to check the state.
"""

from __future__ import annotations

import copy
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from lithair_lab.engine.policies import ENTITY_KEY, KeepLatestPerKey, MaxCountMaxAge, SmartCompaction, retention_mask
from lithair_lab.engine.reducers import ReplayState
from lithair_lab.errors import PolicyError
from lithair_lab.formats import checkpoint, layout
from lithair_lab.formats.envelope import Envelope

NOW = datetime.fromtimestamp(20, UTC)


class Custom:
    """A user's policy: ``retain`` is any expression over the event frame."""

    threshold = None
    backups = 1

    def __init__(self, name: str, expr: pl.Expr, *, snapshot: bool = True) -> None:
        self.name, self.expr, self.snapshot = name, expr, snapshot

    def retain(self, *, now: datetime) -> pl.Expr:
        return self.expr


POLICIES: dict[str, Any] = {
    "smart": SmartCompaction(threshold=10, keep_recent=3),
    "latest per key, no snapshot": KeepLatestPerKey(threshold=None, active_segment=2, tombstone_retention=timedelta(seconds=5)),
    "latest per key, snapshot": KeepLatestPerKey(threshold=None, active_segment=0, snapshot=True),
    "max count 2, no snapshot": MaxCountMaxAge(max_count=2),
    "reads payloads": Custom("payloads", pl.col("payload").str.contains('"v":1') | ENTITY_KEY.is_null()),
    "reads payloads, no snapshot": Custom("payloads", ~pl.col("payload").str.contains('"v":0'), snapshot=False),
    "wildcard": Custom("wildcard", pl.all_horizontal(pl.all().is_not_null()) | (pl.col("seq") % 3 == 0)),
    "seq, store and file": Custom("places", (pl.col("seq") % 2 == 0) & (pl.col("store") == "s") & pl.col("file").is_not_null()),
}

KEY = st.sampled_from(["a", "b", "c", 'q"\\é'])
OP = st.tuples(
    st.sampled_from(["ItemCreated", "ItemUpdated", "ItemDeleted", "Note"]),
    KEY,
    st.sampled_from(["aggregate", "id in payload", "numeric id", "no key"]),
    st.integers(0, 2),
)


def write(d: Path, ops: list, keyed: str, options: dict) -> None:
    with ll.open_store(d, **options) as s:
        for i, (event_type, key, how, v) in enumerate(ops):
            how = {"aggregate ids": "aggregate", "keyless": "id in payload"}.get(keyed, how)
            payload: dict[str, Any] = {"v": v, "pad": "x" * (i % 7)}
            if how in ("aggregate", "id in payload"):
                payload["id"] = key
            elif how == "numeric id":
                payload["id"] = len(key)
            s.append(event_type, payload, aggregate_id=key if how == "aggregate" else None, event_id=f"e{i}", timestamp=i)


def record_bytes(d: Path, whole: pl.DataFrame, mask: pl.Series) -> bytes:
    """The exact bytes of the masked records (each up to the next record of its file, or the file's end)."""
    data = {f: (d / f).read_bytes() for f in whole["file"].unique().to_list()}
    ends = whole.select("file", "offset", pl.col("offset").shift(-1).over("file").alias("end")).filter(mask)
    return b"".join(data[f][lo : len(data[f]) if hi is None else hi] for f, lo, hi in ends.iter_rows())


def rebuilds(kept: pl.DataFrame, registry: Any, state: dict) -> bool:
    replay = ReplayState(registry)
    for kind, et, eid, ts, payload, agg in kept.select(
        "record_kind", "event_type", "event_id", "timestamp", "payload", "aggregate_id"
    ).iter_rows():
        replay.apply(Envelope(et, eid, int(ts.timestamp()), payload, agg) if kind == "envelope" else None)
    return replay.models == state


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(OP, min_size=1, max_size=30),
    keyed=st.sampled_from(["aggregate ids", "keyless", "mixed"]),
    policy=st.sampled_from(sorted(POLICIES)),
    options=st.sampled_from([{}, {"binary": True}, {"max_log_file_size": 600}]),
)
def test_kept_records_dropped_ids_and_state_are_those_of_the_whole_frame(
    ops: list, keyed: str, policy: str, options: dict
) -> None:
    chosen = POLICIES[policy]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "s"
        write(d, ops, keyed, options)
        whole = ll.read(d)  # every column, payloads included: what a compaction held before
        mask = retention_mask(chosen, whole, now=NOW)
        kept, dropped = whole.filter(mask), whole.filter(~mask)
        expected_bytes = record_bytes(d, whole, mask)
        with ll.open_store(d, **options) as s:
            state, count = copy.deepcopy(s.state), s.event_count
            lost = not chosen.snapshot and kept.height < whole.height and not rebuilds(kept, s._state.registry, state)
            files = sorted(p.name for p in d.iterdir())
            event("refused" if lost else "compacted")
            if lost:
                with pytest.raises(PolicyError, match="would lose state"):
                    s.compact(chosen, now=NOW)
                assert sorted(p.name for p in d.iterdir()) == files
                return
            report = s.compact(chosen, now=NOW)
        assert (report.before, report.retained) == (whole.height, kept.height)
        cp = checkpoint.parse_manifest(orjson.loads((d / layout.SNAPSHOT).read_bytes()))
        assert cp.covered_events == kept.height
        assert (d / cp.journal).read_bytes()[: cp.offset] == expected_bytes  # exact bytes, in replay order
        ids = set((d / layout.DEDUP).read_text().split("\n"))
        assert set(dropped["event_id"].to_list()) <= ids
        with ll.open_store(d, **options) as s:
            assert s.state == state and s.event_count == count


def test_a_keyless_store_is_compacted_by_key_without_holding_payloads(tmp_path: Path) -> None:
    """Legacy records (no aggregate id, the key in the payload) are streams of their own per ``id``."""
    d = tmp_path / "legacy"
    with ll.open_store(d) as s:
        for i in range(40):
            s.append("ItemUpdated" if i >= 4 else "ItemCreated", {"id": f"k{i % 4}", "v": i}, event_id=f"e{i}", timestamp=i)
        s.append("Note", {"text": "no id"}, event_id="note", timestamp=40)
        state = copy.deepcopy(s.state)
        report = s.compact(KeepLatestPerKey(threshold=None, active_segment=0), now=NOW)
        # the newest record of each of the 4 keys, and the keyless note
        assert report.retained == 5
    with ll.open_store(d) as s:
        assert s.state == state
    kept = ll.read(d)
    assert kept["event_id"].to_list() == ["e36", "e37", "e38", "e39", "note"]


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.sampled_from(["a", "bb", "é", "x\r", "", "ccc", "a1"]), max_size=40),
    torn=st.booleans(),
    wanted=st.lists(st.sampled_from(["a", "bb", "é", "zz", "tail", "a1", "q"]), max_size=40),
    chunk=st.integers(1, 9),
)
def test_dedup_ids_are_read_in_chunks_of_whole_lines(lines: list, torn: bool, wanted: list, chunk: int) -> None:
    """``dedup.raftids`` is read a chunk at a time: the same bytes, and the same missing ids, as read whole."""
    from lithair_lab.engine.compaction import _missing_ids, _whole_lines

    data = "".join(v + "\n" for v in lines).encode() + (b"tail" if torn else b"")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / layout.DEDUP
        path.write_bytes(data + b"appended after the barrier\n")
        pieces = list(_whole_lines(path, len(data), chunk))
        assert b"".join(pieces) == data and all(p.endswith(b"\n") for p in pieces[:-1])
        known = set(data.decode().split("\n")) if data else set()
        expected = "".join(v + "\n" for v in dict.fromkeys(v for v in wanted if v not in known)).encode()
        assert _missing_ids(pl.Series("event_id", wanted, dtype=pl.String), path, len(data)) == expected

"""Event frames built directly (no files), for the time-travel tests.

Not tests themselves: ``frame_of`` turns a list of events into a frame with
the columns of ``EVENT_SCHEMA``, as ``ll.scan`` gives them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import polars as pl

from lithair_lab.formats import crud
from lithair_lab.formats.envelope import short_type
from lithair_lab.formats.schema import EVENT_SCHEMA

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def ev(event_type: str, payload: Any, key: str | None = None, ts: int = T0, *, raw: bool = False) -> dict[str, Any]:
    """One event; ``payload`` is JSON-encoded unless it is already a string."""
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return {"event_type": event_type, "payload": text, "aggregate_id": key, "timestamp": ts, "raw": raw}


def frame_of(events: list[dict[str, Any]]) -> pl.DataFrame:
    """An event frame (EVENT_SCHEMA) of ``events`` in order."""
    rows = []
    for i, e in enumerate(events):
        split = crud.split_type(e["event_type"]) if not e.get("raw") else None
        rows.append({
            "seq": i,
            "store": "s",
            "file": "events.raftlog",
            "offset": i * 100,
            "line": i + 1,
            "encoding": "crc",
            "record_kind": "raw" if e.get("raw") else "envelope",
            "event_type": None if e.get("raw") else e["event_type"],
            "short_type": None if e.get("raw") else short_type(e["event_type"]),
            "model": split[0] if split else None,
            "op": split[1] if split else None,
            "event_id": None if e.get("raw") else f"e{i}",
            "timestamp": dt.datetime.fromtimestamp(e["timestamp"], dt.timezone.utc),
            "aggregate_id": e["aggregate_id"],
            "payload": e["payload"],
            "event_hash": None,
            "previous_hash": None,
        })  # fmt: skip
    return pl.DataFrame(rows, schema=EVENT_SCHEMA)

"""Event frames with EVENT_SCHEMA columns, built from short tuples, for the compaction tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from lithair_lab.formats.crud import split_type
from lithair_lab.formats.envelope import short_type
from lithair_lab.formats.schema import EVENT_SCHEMA

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame(rows: list[tuple[str, str | None, dict[str, Any]] | tuple[str, str | None, dict[str, Any], int]]) -> pl.DataFrame:
    """Rows of ``(event_type, aggregate_id, payload[, seconds after T0])``; one second apart by default."""
    cols: dict[str, list[Any]] = {c: [] for c in EVENT_SCHEMA}
    offset = 0
    for i, row in enumerate(rows):
        et, agg, data = row[0], row[1], row[2]
        secs = row[3] if len(row) > 3 else i  # type: ignore[misc]
        payload = orjson.dumps(data).decode()
        mo = split_type(et)
        values = {
            "seq": i, "store": "s", "file": "events.raftlog", "offset": offset, "line": i + 1,
            "encoding": "crc", "record_kind": "envelope", "event_type": et, "short_type": short_type(et),
            "model": mo[0] if mo else None, "op": mo[1] if mo else None, "event_id": f"e{i}",
            "timestamp": T0 + timedelta(seconds=secs), "aggregate_id": agg, "payload": payload,
            "event_hash": None, "previous_hash": None,
        }  # fmt: skip
        offset += len(payload) + 80
        for c in cols:
            cols[c].append(values[c])
    return pl.DataFrame(cols, schema=EVENT_SCHEMA)


def product_updates(n_products: int, n_updates: int) -> pl.DataFrame:
    """``n_products`` creations then ``n_updates`` whole-object updates spread over them."""
    rows: list[Any] = [("ProductCreated", f"p{k}", {"id": f"p{k}", "price": 0}) for k in range(n_products)]
    rows += [
        ("ProductUpdated", f"p{i % n_products}", {"id": f"p{i % n_products}", "price": i + 1}) for i in range(n_updates)
    ]
    return frame(rows)

"""The event frame: one documented schema that every module uses.

One row per record, in replay order. ``record_kind`` tells an envelope from a
raw (non-envelope) legacy line, whose whole JSON is kept in ``payload``.
"""

from __future__ import annotations

import polars as pl

TIMESTAMP = pl.Datetime("us", "UTC")

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.UInt64(),  # position in the whole history, 0-based, replay order
    "store": pl.String(),  # store (directory) name; distinguishes stores under a parent dir
    "file": pl.String(),  # journal file name, relative to the store directory
    "offset": pl.UInt64(),  # byte offset of the record's first byte in `file`
    "line": pl.UInt64(),  # 1-based line number (JSON journals); null for binary
    "encoding": pl.String(),  # "crc" | "legacy" | "binary"
    "record_kind": pl.String(),  # "envelope" | "raw"
    "event_type": pl.String(),
    "short_type": pl.String(),  # after the last `::`
    "model": pl.String(),  # <Model> of a CRUD type, else null
    "op": pl.String(),  # Created | Updated | Deleted | Replicated | AdminEdit, else null
    "event_id": pl.String(),
    "timestamp": TIMESTAMP,  # Unix seconds as a UTC datetime
    "aggregate_id": pl.String(),
    "payload": pl.String(),  # the event's JSON string as stored
    "event_hash": pl.String(),
    "previous_hash": pl.String(),
}
EVENT_COLUMNS = tuple(EVENT_SCHEMA)

DAMAGE_SCHEMA: dict[str, pl.DataType] = {
    "store": pl.String(),
    "file": pl.String(),
    "offset": pl.UInt64(),
    "line": pl.UInt64(),
    "kind": pl.String(),  # bad_crc | bad_json | bad_utf8 | torn_tail | torn_frame | bad_frame | bad_checkpoint | ...
    "detail": pl.String(),
    "raw": pl.String(),  # the damaged bytes shown safely (escaped, truncated)
}

"""Column names of the frames that `lithair_lab.state` returns, written down once.

A state frame (one per model) has one row per live entity: the columns of
:data:`STATE_META` first, then one column per top-level field that some live
entity holds (even as null), then :data:`VALUE` when some entity's value is
not an object. An empty state has only the :data:`STATE_META` columns;
``state_at`` and ``TimeMachine`` follow the same rule. Widgets, the
compaction simulator and the CLI use these constants rather than spelling
the names.
"""

from __future__ import annotations

import polars as pl

from lithair_lab.formats.schema import TIMESTAMP

KEY = "_key"
"""The entity key: the event's ``aggregate_id``, else the payload's primary key."""
VERSION = "_version"
"""Number of changes in the entity's current life (1 after its create; restarts after a delete)."""
CHANGED_AT = "_changed_at"
"""Timestamp (UTC) of the entity's last change."""
CHANGED_SEQ = "_changed_seq"
"""Position (``seq``) of the event that last changed the entity."""
VALUE = "_value"
"""The entity's JSON text when its value is not a JSON object; present only when needed."""

STATE_META: dict[str, pl.DataType] = {
    KEY: pl.String(),
    VERSION: pl.UInt32(),
    CHANGED_AT: TIMESTAMP,
    CHANGED_SEQ: pl.Int64(),
}
"""The leading columns of every state frame, with their dtypes."""

ANOMALY_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "timestamp": TIMESTAMP,
    "event_type": pl.String(),
    "model": pl.String(),
    KEY: pl.String(),
    "kind": pl.String(),
    "detail": pl.String(),
}
"""Inconsistencies found while folding a history (see :data:`ANOMALY_KINDS`)."""

ANOMALY_KINDS: dict[str, str] = {
    "update_before_create": "an update of an entity that was not live: it starts from the update's payload alone",
    "delete_unknown": "a delete of an entity that was not live: no effect",
    "create_over_live": "a create of an entity that was already live: the payload replaces it (same life)",
    "missing_key": "a CRUD event with no `aggregate_id` and no primary key in its payload: not applied",
    "bad_payload": "a CRUD event whose payload is not valid JSON: applied as a null value, as the engine does",
    "not_object": "a CRUD event whose payload is not a JSON object: the entity's value becomes it",
}
"""Every anomaly kind and what the fold does about it."""

HISTORY_META: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "timestamp": TIMESTAMP,
    "event_type": pl.String(),
    "event_id": pl.String(),
    "action": pl.String(),  # upsert | merge | delete | custom
    VERSION: pl.UInt32(),
    "life": pl.UInt32(),
    "live": pl.Boolean(),
    "changes": pl.List(pl.Struct({"field": pl.String(), "old": pl.String(), "new": pl.String()})),
}
"""The leading columns of :func:`lithair_lab.state.history`; the entity's fields follow."""

DIFF_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    KEY: pl.String(),
    "change": pl.String(),  # created | deleted | updated
    "field": pl.String(),
    "old": pl.String(),
    "new": pl.String(),
}
"""One row per changed field of :func:`lithair_lab.state.diff` (values as JSON text)."""

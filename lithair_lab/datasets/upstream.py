"""Write an upstream-style Era B data directory, as Lithair's older engine left them.

The engine writes only today's form (Era C); to show and test that every
older variant reads, this module writes Era B bytes with the shared codec
(``formats``), never with a codec of its own:

- event types are full Rust paths (``my_app::models::ProductCreated``);
- CRUD ``event_id`` is ``Model:Op:pk`` and repeats on every update of a key;
- no hash chain: the hash keys are omitted, not null;
- CRC-prefixed lines, and a few older lines without CRC or without envelope
  (the old session store wrote raw event JSON);
- one rotation survives as ``events.raftlog.1`` (upstream deleted older ones);
- ``meta.raftmeta`` is upstream's, with its constant ``created_at``;
- ``state.raftsnap`` is a legacy raw snapshot ``{pk: object}``, which covers no
  journal record.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from ..formats import layout
from ..formats.crud import split_type
from ..formats.envelope import Envelope
from ..formats.jsonlines import frame_line
from .workloads import Event

RUST_PATH = "my_app::models::"
UPSTREAM_META = {
    "created_at": "2024-01-01T00:00:00Z",  # upstream writes this constant, not the real time
    "description": "Lithair event-sourced database",
    "format": "lithair-db",
    "version": "1.0.0",
}


def era_b_line(ev: Event, *, crc: bool = True) -> bytes:
    """One Era B journal line for ``ev`` (CRC-prefixed unless ``crc`` is False)."""
    model, op = split_type(ev.event_type) or (ev.event_type, "")
    env = Envelope(
        event_type=RUST_PATH + ev.event_type,
        event_id=f"{model}:{op}:{ev.aggregate_id}",
        timestamp=ev.timestamp,
        payload=orjson.dumps(ev.payload).decode(),
        aggregate_id=ev.aggregate_id,
    )
    body = env.to_json(era="B")
    return frame_line(body) if crc else body + b"\n"


def raw_line(ev: Event) -> bytes:
    """A line of the old session store: the event's own JSON, no envelope, no CRC."""
    return orjson.dumps({ev.event_type: ev.payload}) + b"\n"


def write_era_b(path: str | Path, events: Iterable[Event], *, rotate_after: int, legacy_first: int = 20) -> Path:
    """Write ``events`` as an Era B directory at ``path`` (which must not exist).

    Parameters
    ----------
    path
        The directory to create.
    events
        The events, in order; CRUD types only.
    rotate_after
        The first ``rotate_after`` records go to ``events.raftlog.1`` (the one
        rotation upstream kept), the rest to ``events.raftlog``.
    legacy_first
        How many of the first records are written as the old engine did: every
        other one a raw non-envelope line, the rest envelopes without CRC.
    """
    path = Path(path)
    path.mkdir(parents=True)
    lines: list[bytes] = []
    snapshot: dict[str, object] = {}
    for i, ev in enumerate(events):
        if i < legacy_first:
            lines.append(raw_line(ev) if i % 2 else era_b_line(ev, crc=False))
        else:
            lines.append(era_b_line(ev))
        if ev.event_type.startswith("Product"):  # the CRUD handler's snapshot of one model
            if ev.event_type.endswith("Deleted"):
                snapshot.pop(ev.aggregate_id, None)
            else:
                snapshot[ev.aggregate_id] = ev.payload
        if i + 1 == rotate_after:
            (path / f"{layout.ACTIVE}.1").write_bytes(b"".join(lines))
            lines = []
    (path / layout.ACTIVE).write_bytes(b"".join(lines))
    (path / layout.META).write_bytes(orjson.dumps(UPSTREAM_META, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    (path / layout.SNAPSHOT).write_bytes(orjson.dumps(snapshot))
    return path

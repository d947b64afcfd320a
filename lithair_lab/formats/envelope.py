"""The event envelope (FORMATS.md section 2) and its hash chain."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidEventError

ENVELOPE_FIELDS = (
    "event_type",
    "event_id",
    "timestamp",
    "payload",
    "aggregate_id",
    "event_hash",
    "previous_hash",
)
REQUIRED_FIELDS = ENVELOPE_FIELDS[:4]
U64_MAX = 2**64 - 1
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as stored: the 7 envelope fields plus any extra fields, in order.

    ``payload`` is the event's JSON *as a string*; it is hashed and stored exactly
    as given, never re-serialized.
    """

    event_type: str
    event_id: str
    timestamp: int
    payload: str
    aggregate_id: str | None = None
    event_hash: str | None = None
    previous_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self, *, era: str = "C") -> dict[str, Any]:
        """The envelope as an ordered dict; Era B omits absent hash fields."""
        d: dict[str, Any] = {
            "event_type": self.event_type,
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "payload": self.payload,
            "aggregate_id": self.aggregate_id,
        }
        if era == "C" or self.event_hash is not None:
            d["event_hash"] = self.event_hash
        if era == "C" or self.previous_hash is not None:
            d["previous_hash"] = self.previous_hash
        d.update(self.extra)
        return d

    def to_json(self, *, era: str = "C") -> bytes:
        """Compact JSON, fields in envelope order, non-ASCII kept as UTF-8."""
        return orjson.dumps(self.to_dict(era=era))

    def chained(self, previous_hash: str | None) -> Envelope:
        """A copy linked after ``previous_hash`` with its own hash computed."""
        h = event_hash(
            self.event_type, self.event_id, self.timestamp, self.payload, self.aggregate_id, previous_hash
        )
        return Envelope(
            self.event_type, self.event_id, self.timestamp, self.payload, self.aggregate_id,
            h, previous_hash, self.extra,
        )  # fmt: skip


def event_hash(
    event_type: str,
    event_id: str,
    timestamp: int,
    payload: str,
    aggregate_id: str | None,
    previous_hash: str | None,
) -> str:
    """SHA-256 of ``type|id|ts(u64 LE)|payload|aggregate|previous`` as lowercase hex."""
    # One buffer, one update: the engine hashes every append, so this is a hot path.
    # UTF-8 of a concatenation is the concatenation of the UTF-8s, so this hashes the same bytes.
    head = f"{event_type}|{event_id}|".encode()
    tail = f"|{payload}|{aggregate_id or ''}|{previous_hash or ''}".encode()
    return hashlib.sha256(head + _U64.pack(timestamp) + tail).hexdigest()


def envelope_from_obj(obj: Any) -> Envelope | None:
    """Build an Envelope from a decoded JSON object, or None if it is not one.

    An envelope needs string `event_type`, `event_id`, `payload` and an integer
    `timestamp` (not a bool); anything else is a raw, non-envelope record.
    """
    if not isinstance(obj, dict):
        return None
    et, eid, ts, pl = (obj.get(k) for k in REQUIRED_FIELDS)
    if not (isinstance(et, str) and isinstance(eid, str) and isinstance(pl, str)):
        return None
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    agg, eh, ph = obj.get("aggregate_id"), obj.get("event_hash"), obj.get("previous_hash")
    if not all(v is None or isinstance(v, str) for v in (agg, eh, ph)):
        return None
    extra = {k: v for k, v in obj.items() if k not in ENVELOPE_FIELDS}
    return Envelope(et, eid, ts, pl, agg, eh, ph, extra)


def idempotence_key(event_id: str | None, payload: str) -> str:
    """The app's ``event_id``, else ``json:`` + SHA-256 hex of the payload string."""
    if event_id:
        return event_id
    return "json:" + hashlib.sha256(payload.encode()).hexdigest()


def short_type(event_type: str) -> str:
    """The type after the last ``::`` (Era B wrote full Rust paths)."""
    return event_type.rsplit("::", 1)[-1]


class RawJSON(str):
    """A payload that is already JSON text, to be stored verbatim (not re-serialized).

    Used to re-write history exactly (restore, what-if): the string is checked
    to parse as JSON when it is made, then hashed and stored byte for byte.

    Raises
    ------
    InvalidEventError
        When the string is not valid JSON.

    Examples
    --------
    >>> RawJSON('{"price": 1.50}')
    RawJSON('{"price": 1.50}')
    """

    __slots__ = ()

    def __new__(cls, text: str) -> RawJSON:
        if not isinstance(text, str):
            msg = f"`RawJSON` takes a string of JSON text, got {type(text).__name__}"
            raise InvalidEventError(msg)
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as e:
            msg = f"`RawJSON` text is not valid JSON ({e})"
            raise InvalidEventError(msg) from None
        return super().__new__(cls, text)

    def __repr__(self) -> str:
        return f"RawJSON({str.__repr__(self)})"

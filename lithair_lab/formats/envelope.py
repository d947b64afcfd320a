"""The event envelope (FORMATS.md section 2), its hash chain, and the engine's line encoder.

:func:`encode_line` is the one writer of Era C JSON lines. It runs in C
(``_encode.c``) when the extension is built, else in Python; both give the
same bytes (tests compare them), and ``LITHAIR_LAB_PURE_PYTHON=1`` forces the
Python one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from operator import itemgetter
from typing import Any

import orjson

from ..errors import InvalidEventError
from .native import PURE_PYTHON_ENV

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
BATCH_FIELD = "lithair_lab_batch"
"""Extra envelope field (FORMATS.md 9: upstream ignores it) the engine writes on each
record of an ``append_many`` batch but the last: how many records of the batch follow it."""
U64_MAX = 2**64 - 1
_U64 = struct.Struct("<Q")


class Envelope(tuple):  # noqa: SLOT001 - a tuple is the cheapest immutable record to build
    """One event as stored: the 7 envelope fields plus any extra fields, in order.

    ``payload`` is the event's JSON *as a string*; it is hashed and stored exactly
    as given, never re-serialized.

    Immutable; built like a dataclass (``Envelope(event_type, event_id,
    timestamp, payload, aggregate_id=None, event_hash=None,
    previous_hash=None, extra=None)``, positionally or by keyword). Equality and
    hashing look at the 7 envelope fields only, not ``extra``. It is a tuple
    underneath because the engine builds one per append and a tuple is built in
    a tenth of a frozen dataclass's time.
    """

    __slots__ = ()
    __match_args__ = ENVELOPE_FIELDS

    event_type: str
    event_id: str
    timestamp: int
    payload: str
    aggregate_id: str | None
    event_hash: str | None
    previous_hash: str | None
    extra: dict[str, Any]

    def __new__(
        cls,
        event_type: str,
        event_id: str,
        timestamp: int,
        payload: str,
        aggregate_id: str | None = None,
        event_hash: str | None = None,
        previous_hash: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Envelope:
        return tuple.__new__(
            cls, (event_type, event_id, timestamp, payload, aggregate_id, event_hash, previous_hash, {} if extra is None else extra)
        )

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        # Never equal to a plain tuple (which would compare item by item, extra included).
        return isinstance(other, Envelope) and self[:7] == other[:7]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self[:7])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in zip((*ENVELOPE_FIELDS, "extra"), self, strict=True))
        return f"Envelope({fields})"

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


for _i, _name in enumerate((*ENVELOPE_FIELDS, "extra")):
    setattr(Envelope, _name, property(itemgetter(_i), doc=f"The envelope's `{_name}`."))
del _i, _name


def _py_event_hash(
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


def _py_encode_line(
    event_type: str,
    event_id: str,
    timestamp: int,
    payload: str,
    aggregate_id: str | None,
    previous_hash: str | None,
    chain: bool,
    batch_left: int,
) -> tuple[bytes, str | None]:
    """The pure-Python :data:`encode_line` (same bytes)."""
    h = event_hash(event_type, event_id, timestamp, payload, aggregate_id, previous_hash) if chain else None
    fields = {
        "event_type": event_type, "event_id": event_id, "timestamp": timestamp, "payload": payload,
        "aggregate_id": aggregate_id, "event_hash": h, "previous_hash": previous_hash,
    }  # fmt: skip
    if batch_left > 0:
        fields[BATCH_FIELD] = batch_left
    json = orjson.dumps(fields)
    return b"%08x:%s\n" % (zlib.crc32(json), json), h


def _native_encoder() -> Any:
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        from . import _encode
    except ImportError:  # built without a C compiler: the Python twins below give the same bytes
        return None
    return _encode


_encoder = _native_encoder()
native_encoder = _encoder is not None
"""True when :func:`encode_line` runs in C."""

event_hash = _encoder.event_hash if _encoder is not None else _py_event_hash
"""``event_hash(event_type, event_id, timestamp, payload, aggregate_id, previous_hash)``:
SHA-256 of ``type|id|ts(u64 LE)|payload|aggregate|previous`` as lowercase hex (in C when built)."""
encode_line = _encoder.encode_line if _encoder is not None else _py_encode_line
"""``encode_line(event_type, event_id, timestamp, payload, aggregate_id, previous_hash, chain, batch_left)``
-> ``(b"<crc>:<envelope JSON>\\n", event_hash)``: one Era C JSON journal line and the chain hash.

All 7 envelope fields in order, compact JSON as orjson writes it, CRC-32 prefix
(FORMATS.md section 2). With ``chain`` the ``event_hash`` is the SHA-256 chain
hash after ``previous_hash`` (else null, and None is returned); ``batch_left > 0``
adds the :data:`BATCH_FIELD` extra field. The engine's hot path: the C version
does in one call what the Python one does in five."""


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

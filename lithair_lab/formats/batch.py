"""Whole-file vectorized decoding: journal bytes -> envelope columns + damage rows.

This is the single codec for reading many records at once. It agrees record
for record with the per-record reference codec (:mod:`.jsonlines`,
:mod:`.envelope`, :mod:`.bincode`), which it reuses as the slow path for
damaged or unusual regions:

- JSON journals are decoded by the native envelope decoder (``_native.c``,
  GIL released, a chunk cut across two threads): it splits lines, checks
  CRCs and parses the envelopes into Arrow buffers that Polars takes without a
  copy. A line it cannot decide exactly as the reference does (anything but
  the writers' compact form: whitespace, an unknown or repeated key, a bad
  escape or bad UTF-8, a non-envelope, an integer beyond 64 bits) goes to the
  reference path (``orjson`` + :func:`.envelope.envelope_from_obj`).
- Without the native module (see :mod:`.native`), lines are split and
  CRC-checked by Polars and ``zlib.crc32`` and the bodies parsed by Polars'
  NDJSON reader in one call. A row goes to the reference path when that parse
  cannot vouch for it: a missing required field, a field whose compact form
  shows it is not a string, a ``\\u`` surrogate escape, a repeated envelope
  key (Polars keeps the first of two equal keys and orjson the last), or a
  chunk the NDJSON reader refuses (then the whole chunk is decoded record by
  record).
- Binary journals are walked frame by frame (each length prefix says where the
  next frame starts, so there is nothing to vectorize before the walk); bodies
  are decoded by :func:`.bincode.decode_body`.

Files are read in chunks aligned on record boundaries (:func:`read_journal`),
so memory stays flat whatever the file's size, and no record is ever larger
than ``max_record_size`` in memory: a longer line or frame is reported, not
loaded.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Literal

import orjson
import polars as pl

from . import bincode, crud, jsonlines, native
from .envelope import BATCH_FIELD, ENVELOPE_FIELDS, Envelope, envelope_from_obj, short_type
from .schema import DAMAGE_SCHEMA, EVENT_SCHEMA

Encoding = Literal["json", "binary", "unframed_binary", "empty"]

#: Columns of a decoded batch: the event frame without ``seq`` and ``store``,
#: which only the caller knows (position in the whole history, store name).
RECORD_SCHEMA: dict[str, pl.DataType] = {k: v for k, v in EVENT_SCHEMA.items() if k not in ("seq", "store")}
_DAMAGE_COLUMNS = {k: v for k, v in DAMAGE_SCHEMA.items() if k != "store"}

CHUNK_SIZE = 16 << 20
MAX_RECORD_SIZE = 256 << 20
HEAD_SIZE = 64 << 10  # bytes looked at to detect a file's encoding
RAW_PREVIEW = 200  # bytes of a damaged record shown in the damage report

# Damage kinds (DAMAGE_SCHEMA's `kind`).
BAD_CRC = "bad_crc"
BAD_JSON = "bad_json"
BAD_UTF8 = "bad_utf8"
TORN_TAIL = "torn_tail"
FRAME_PAST_EOF = "frame_past_eof"
BAD_FRAME = "bad_frame"
OVERSIZED = "oversized_record"
UNFRAMED_BINARY = "unframed_binary"

_NDJSON_SCHEMA = {
    "event_type": pl.String,
    "event_id": pl.String,
    "timestamp": pl.Int64,
    "payload": pl.String,
    "aggregate_id": pl.String,
    "event_hash": pl.String,
    "previous_hash": pl.String,
    BATCH_FIELD: pl.Int64,
}
_STRING_FIELDS = tuple(k for k in ENVELOPE_FIELDS if k != "timestamp")
_WS = b" \t\r\n\x0b\x0c"
_BLANK = r"^[ \t\r\x0b\x0c]*$"  # a line of ASCII whitespace only (bytes.strip's set)
# Unix seconds that fit a microsecond Datetime (i64); others become null.
_MAX_SECONDS = (2**63 - 1) // 1_000_000


@dataclass(frozen=True)
class Batch:
    """Records and damage decoded from one region of a journal.

    ``end_offset`` / ``end_line`` are where the next region starts: every byte
    before them was either a record, a blank line or reported as damage.
    """

    records: pl.DataFrame
    damage: pl.DataFrame
    end_offset: int
    end_line: int


def owned(column: str) -> pl.Expr:
    """A string column written anew, in buffers of its own.

    A column selected, filtered or gathered from a decoded batch stays a
    view into the batch's buffers and keeps all of them alive: rows kept
    across batches (a fold's state, a compaction's held columns) must own
    their strings, or memory grows with everything read. Nulls stay null.
    """
    return pl.concat_str([pl.col(column), pl.lit("")]).alias(column)


def detect_encoding(head: bytes) -> Encoding:
    """Tell JSON lines from binary frames by content (the first bytes of a file, up to 64 KiB).

    A JSON journal starts with text: ``{``, a CRC prefix, or some other
    printable byte. A binary frame starts with a little-endian u64 length whose
    high bytes are zero. Binary records written with a newline and no length
    (upstream's async writer) start with a bincode string length, usually a
    control byte, and their first line decodes as a bincode envelope.
    """
    if not head:
        return "empty"
    first = head.lstrip(b" \t\r\n")[:1]
    if first and (first[0] >= 0x20 and b"\x00" not in head[:16]):
        return "json"
    if len(head) >= bincode.FRAME_HEADER:
        (n,) = bincode.LEN.unpack_from(head)
        if 0 < n < 1 << 32:
            return "binary"
    nl = head.find(b"\n")
    while nl != -1:
        try:
            bincode.decode_body(head[:nl])
            return "unframed_binary"
        except (bincode.BincodeError, ValueError):
            nl = head.find(b"\n", nl + 1)
    return "json" if b"\x00" not in head else "binary"


def show_raw(data: bytes) -> str:
    """Damaged bytes shown safely: valid UTF-8 kept, the rest escaped, truncated."""
    cut = data[:RAW_PREVIEW]
    text = cut.decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return text + (f"… ({len(data)} bytes)" if len(data) > RAW_PREVIEW else "")


class _Damage:
    """Collects damage rows of one batch."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.rows: list[dict[str, Any]] = []

    def add(self, offset: int, line: int | None, kind: str, detail: str, raw: bytes) -> None:
        self.rows.append(
            {"file": self.file, "offset": offset, "line": line, "kind": kind, "detail": detail, "raw": show_raw(raw)}
        )

    def frame(self) -> pl.DataFrame:
        """The rows in file order (a chunk's fast path reports bad CRCs before the rows it sends to the slow path)."""
        if not self.rows:
            return empty_damage()
        return pl.DataFrame(self.rows, schema=_DAMAGE_COLUMNS, orient="row").sort("offset", maintain_order=True)


def empty_damage() -> pl.DataFrame:
    """A damage frame with no rows (``DAMAGE_SCHEMA`` without ``store``)."""
    return pl.DataFrame(schema=_DAMAGE_COLUMNS)


def empty_records() -> pl.DataFrame:
    """A record frame with no rows (:data:`RECORD_SCHEMA`)."""
    return pl.DataFrame(schema=RECORD_SCHEMA)


# ---------------------------------------------------------------------------
# Per-record reference path (also the slow path of the vectorized decoder)


def decode_json_record(body: bytes) -> tuple[Envelope | None, str | None, str | None]:
    """Decode one JSON record body: ``(envelope, raw_text, damage_kind)``.

    Exactly one of the three is set: an envelope; the raw JSON text of a valid
    non-envelope record; or the kind of damage (``bad_utf8``/``bad_json``).
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None, None, BAD_UTF8
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, BAD_JSON
    env = envelope_from_obj(obj)
    return (env, None, None) if env is not None else (None, text, None)


def _json_detail(body: bytes, kind: str) -> str:
    if kind == BAD_UTF8:
        try:
            body.decode()
        except UnicodeDecodeError as e:
            return f"invalid UTF-8 at byte {e.start} of the record ({e.reason})"
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return f"not JSON: {e}"
    return ""


def _record_row(env: Envelope | None, raw: str | None, encoding: str) -> dict[str, Any]:
    if env is not None:
        return {
            "encoding": encoding,
            "record_kind": "envelope",
            "event_type": env.event_type,
            "event_id": env.event_id,
            "ts": env.timestamp,
            "payload": env.payload,
            "aggregate_id": env.aggregate_id,
            "event_hash": env.event_hash,
            "previous_hash": env.previous_hash,
            "follows": _follows(env.extra.get(BATCH_FIELD)),
        }
    return {"encoding": encoding, "record_kind": "raw", "payload": raw}


def _follows(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 else None


_SLOW_SCHEMA = {
    "offset": pl.UInt64,
    "line": pl.UInt64,
    "encoding": pl.String,
    "record_kind": pl.String,
    "event_type": pl.String,
    "event_id": pl.String,
    "ts": pl.Int128,
    "payload": pl.String,
    "aggregate_id": pl.String,
    "event_hash": pl.String,
    "previous_hash": pl.String,
    "follows": pl.Int64,
}


def _finish(frame: pl.DataFrame, file: str) -> pl.DataFrame:
    """Add the derived columns (file, datetime, short type, model, op) and order as RECORD_SCHEMA."""
    ts = pl.col("ts")
    in_range = ts.is_between(-_MAX_SECONDS, _MAX_SECONDS)
    derived = frame.select(_DERIVED) if _DERIVED[0] in frame.columns else _derived(frame.get_column("event_type"))
    return pl.concat(
        [
            frame.select(
                pl.lit(file, pl.String).alias("file"),
                pl.col("offset").cast(pl.UInt64),
                pl.col("line").cast(pl.UInt64),
                pl.col("encoding").cast(pl.String),
                pl.col("record_kind").cast(pl.String),
                pl.col("event_type").cast(pl.String),
            ),
            derived,
            frame.select(
                pl.col("event_id").cast(pl.String),
                pl.when(in_range)
                .then(pl.from_epoch(ts.cast(pl.Int64, strict=False), "s"))
                .dt.replace_time_zone("UTC")
                .cast(EVENT_SCHEMA["timestamp"])
                .alias("timestamp"),
                *(pl.col(c).cast(pl.String) for c in ("aggregate_id", "payload", "event_hash", "previous_hash")),
            ),
        ],
        how="horizontal",
    )


_DERIVED = ("short_type", "model", "op")


@lru_cache(maxsize=4096)
def _type_parts(event_type: str) -> tuple[str, str | None, str | None]:
    """``(short_type, model, op)`` of one event type (:func:`.short_type`, :func:`.crud.split_type`)."""
    split = crud.split_type(event_type)
    return (short_type(event_type), *(split or (None, None)))


def _per_type(types: list[str], codes: pl.Series) -> pl.DataFrame:
    """The derived columns of rows whose event type is ``types[code]`` (null code: null)."""
    per_type = pl.DataFrame([_type_parts(t) for t in types], schema=dict.fromkeys(_DERIVED, pl.String), orient="row")
    return per_type.select(pl.all().gather(codes))


def _derived(event_type: pl.Series) -> pl.DataFrame:
    """``short_type``, ``model`` and ``op`` of each row, computed once per distinct type
    (a journal holds few) and spread over the rows by each row's code in the list of types."""
    types = event_type.drop_nulls().unique()
    return _per_type(types.to_list(), event_type.cast(pl.String).cast(pl.Enum(types)).to_physical())


def _slow_lines(
    buf: bytes, starts: list[int], lines: list[int], base_offset: int, damage: _Damage
) -> list[dict[str, Any]]:
    """Decode the lines starting at ``starts`` (relative to ``buf``) one by one."""
    rows = []
    for start, line in zip(starts, lines, strict=True):
        end = buf.find(b"\n", start)
        raw = buf[start : len(buf) if end == -1 else end]
        if not raw.strip(_WS):
            continue
        kind, body, ok = jsonlines.split_line(raw)
        offset = base_offset + start
        if not ok:
            damage.add(offset, line, BAD_CRC, f"stored CRC {raw[:8].decode()} does not match the record", raw)
            continue
        env, text, bad = decode_json_record(body)
        if bad is not None:
            damage.add(offset, line, bad, _json_detail(body, bad), raw)
            continue
        row = _record_row(env, text, kind)
        row["offset"], row["line"] = offset, line
        rows.append(row)
    return rows


def _line_starts(buf: bytes) -> list[int]:
    starts = [0]
    find = buf.find
    i = find(b"\n")
    while i != -1 and i + 1 < len(buf):
        starts.append(i + 1)
        i = find(b"\n", i + 1)
    return starts


# ---------------------------------------------------------------------------
# Vectorized JSON path


def decode_json(buf: bytes, *, file: str, offset: int = 0, line: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode whole JSON lines (``buf`` must end with a newline, or be empty).

    Returns ``(records, damage)``; ``offset`` and ``line`` are the position of
    ``buf`` in its file. Blank lines are skipped (they are not records).
    """
    records, damage, _ = _decode_json(buf, file=file, offset=offset, line=line)
    return records, damage


def _decode_json(
    buf: bytes | memoryview, *, file: str, offset: int, line: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """:func:`decode_json`, plus each record's ``lithair_lab_batch`` count (null when absent)."""
    damage = _Damage(file)
    if not buf:
        return empty_records(), damage.frame(), pl.Series("follows", [], pl.Int64)
    module = native.load()
    if module is None:
        buf = bytes(buf)  # the pure-Python path works on bytes
    fast = _json_native(module, buf, offset, line, damage) if module is not None else _json_fast(buf, offset, line, damage)
    if fast is None:  # not UTF-8, or '\r' in lines: the reference path decides
        starts = _line_starts(buf)
        rows = _slow_lines(buf, starts, list(range(line, line + len(starts))), offset, damage)
        frame = pl.DataFrame(rows, schema=_SLOW_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_SLOW_SCHEMA)
    else:
        frame = fast
    return _finish(frame, file), damage.frame(), frame.get_column("follows")


# Columns of a part decoded by the native pass (``decode_envelopes`` in _native.c), and its line flags.
_NATIVE_COLUMNS = (
    "start", "line", "flags", "ts", "follows", "type_code",
    "event_type", "event_id", "payload", "aggregate_id", "event_hash", "previous_hash",
)  # fmt: skip
_F_HAS_CRC, _F_CRC_BAD, _F_SLOW = 0x1, 0x2, 0x4
#: Threads the native pass cuts a chunk across (it releases the GIL).
NATIVE_THREADS = 2


def _native_frame(parts: list[tuple[tuple[Any, ...], list[str]]]) -> pl.DataFrame:
    """The parts of a native decode as one frame (Arrow buffers taken as they are), with the derived columns."""
    frames = []
    for columns, types in parts:
        part = pl.DataFrame([pl.Series(c).alias(name) for name, c in zip(_NATIVE_COLUMNS, columns, strict=True)])
        frames.append(pl.concat([part, _per_type(types, part.get_column("type_code"))], how="horizontal"))
    return pl.concat(frames, rechunk=False)


def _json_native(module: Any, buf: bytes | memoryview, base_offset: int, base_line: int, damage: _Damage) -> pl.DataFrame:
    """Decode ``buf``'s lines with the native envelope decoder; the lines it flags take the reference path.

    The decoder checks CRCs and parses the envelopes into Arrow buffers that
    Polars takes without a copy; a line it cannot decide exactly (anything but
    the writers' compact form, see ``_native.c``) is decoded by :func:`_slow_lines`.
    """
    frame = _native_frame(module.decode_envelopes(buf, NATIVE_THREADS))
    flags = pl.col("flags")
    rows = frame.select(
        (pl.col("start").cast(pl.UInt64) + base_offset).alias("offset"),
        (pl.col("line").cast(pl.UInt64) + base_line).alias("line"),
        pl.when((flags & _F_HAS_CRC) != 0).then(pl.lit("crc")).otherwise(pl.lit("legacy")).alias("encoding"),
        pl.lit("envelope", pl.String).alias("record_kind"),
        "event_type", "event_id", "ts", "payload", "aggregate_id", "event_hash", "previous_hash", "follows", *_DERIVED,
    )  # fmt: skip
    unsure = frame.get_column("flags") & (_F_CRC_BAD | _F_SLOW) != 0
    if not unsure.any():
        return rows
    buf = bytes(buf)  # a chunk may be a view of the reader's buffer: the reference path slices bytes
    for start, line, f in frame.filter(unsure).select("start", "line", "flags").iter_rows():
        if f & _F_CRC_BAD:
            _bad_crc(damage, _line_at(buf, start), base_offset + start, base_line + line)
    slow = frame.filter((flags & _F_SLOW) != 0)
    decoded = _slow_lines(
        buf, slow.get_column("start").to_list(), (slow.get_column("line") + base_line).to_list(), base_offset, damage
    )
    fast = rows.filter(~unsure)
    if not decoded:
        return fast
    slow_rows = pl.DataFrame(decoded, schema=_SLOW_SCHEMA, orient="row")
    slow_rows = pl.concat([slow_rows, _derived(slow_rows.get_column("event_type"))], how="horizontal")
    return pl.concat([fast, slow_rows], how="vertical_relaxed").sort("offset", maintain_order=True)


def _json_fast(buf: bytes, base_offset: int, base_line: int, damage: _Damage) -> pl.DataFrame | None:
    """Decode ``buf``'s lines with Polars' NDJSON reader, or None when only the reference path can.

    The pure-Python path: lines are split and CRCs checked by Polars and
    ``zlib.crc32``; the checks that fast-parsed rows agree with the reference
    codec follow.
    """
    split = _split_python(buf, base_offset, base_line, damage)
    if split is None:
        return None
    good, parsed = split
    if parsed is None:  # the NDJSON reader refused something: decode record by record
        rows = _slow_lines(buf, good.get_column("start").to_list(), good.get_column("line").to_list(), base_offset, damage)
        return pl.DataFrame(rows, schema=_SLOW_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_SLOW_SCHEMA)

    any_blank_body = bool(good.get_column("blank_body").any())
    nonblank = good.filter(~pl.col("blank_body")) if any_blank_body else good
    frame = pl.concat([nonblank, parsed], how="horizontal")
    required = ("event_type", "event_id", "timestamp", "payload")
    envelope = frame.select(
        pl.all_horizontal(pl.col(k).is_not_null() for k in required)
        & pl.all_horizontal(pl.col(k).is_null() | pl.col(f"quoted_{k}") for k in _STRING_FIELDS)
    ).to_series()
    # Regexes run only on the few rows that need them: a `\u` escape may be a lone
    # surrogate (orjson refuses it), and a row with no envelope field may be raw JSON.
    surrogate = _where(buf, frame, frame.get_column("escape_u"), r"\\u[dD][89a-fA-F]")
    # A repeated key: Polars keeps the first value and orjson (the reference) the last.
    unsure = surrogate | frame.get_column("duplicate")
    envelope = envelope & ~unsure
    all_absent = frame.select(pl.all_horizontal(pl.col(k).is_null() for k in required)).to_series()
    named = _where(buf, frame, all_absent & ~unsure, '"(event_type|event_id|timestamp|payload)"')
    raw = all_absent & ~unsure & ~named
    payload = frame.get_column("payload")
    if raw.any():  # a valid JSON line that is not an envelope: its text is the payload
        rows = raw.arg_true()
        payload = payload.scatter(rows, _bodies(buf, frame.gather(rows)))
    both = frame.with_columns(
        kind=pl.when(envelope).then(pl.lit("envelope")).when(raw).then(pl.lit("raw")).otherwise(pl.lit(None, pl.String)),
        payload=payload,
    ).select(
        (pl.col("start").cast(pl.UInt64) + base_offset).alias("offset"),
        pl.col("line"),
        pl.when("has_crc").then(pl.lit("crc")).otherwise(pl.lit("legacy")).alias("encoding"),
        pl.col("kind").alias("record_kind"),
        pl.col("event_type"),
        pl.col("event_id"),
        pl.col("timestamp").cast(pl.Int128).alias("ts"),
        pl.col("payload"),
        *(pl.col(k) for k in ("aggregate_id", "event_hash", "previous_hash")),
        pl.col(BATCH_FIELD).alias("follows"),
    )
    undecided = both.get_column("record_kind").is_null()
    if not undecided.any() and not any_blank_body:
        return both
    fast = both.filter(~undecided)
    slow = pl.concat(
        [both.filter(undecided).select("offset", "line"),
         good.filter(pl.col("blank_body")).select((pl.col("start").cast(pl.UInt64) + base_offset).alias("offset"), "line")]
    )  # fmt: skip
    starts = [o - base_offset for o in slow.get_column("offset").to_list()]
    rows = _slow_lines(buf, starts, slow.get_column("line").to_list(), base_offset, damage)
    if rows:
        fast = pl.concat([fast, pl.DataFrame(rows, schema=_SLOW_SCHEMA, orient="row")]).sort("offset")
    return fast


# A split of a chunk: the non-blank lines whose CRC is right (columns `start` in the
# chunk, `line` in the file, `has_crc`, `blank_body`, `escape_u`: a `\u` in the body,
# `duplicate`: an envelope key twice, `quoted_<field>`: `"<field>":"` in the body),
# and Polars' NDJSON parse of those whose body is not blank, row for row (None when
# the reader refused the buffer).
_Split = tuple[pl.DataFrame, pl.DataFrame | None]

def _split_python(buf: bytes, base_offset: int, base_line: int, damage: _Damage) -> _Split | None:
    """The same split with Polars and Python (``zlib.crc32`` per record), or None when not UTF-8 or CRLF."""
    try:
        text = pl.read_lines(buf, name="text").to_series()
    except pl.exceptions.ComputeError:
        return None  # invalid UTF-8 somewhere in the chunk
    lengths = text.str.len_bytes()
    if int(lengths.sum() or 0) + len(text) != len(buf):
        return None  # Polars dropped '\r' bytes: positions would be wrong
    t = pl.col("text")
    prefix_ok = (t.str.slice(8, 1) == ":") & ~t.str.slice(0, 1).is_in(["+", "-"]) & (pl.col("len") >= 9)
    lines = (
        pl.DataFrame({"text": text, "len": lengths})
        .lazy()
        .with_columns(
            line=pl.int_range(pl.len(), dtype=pl.UInt64) + base_line,
            start=(pl.col("len").cast(pl.Int64) + 1).cum_sum().shift(1, fill_value=0),
            stored=pl.when(prefix_ok).then(t.str.slice(0, 8).str.to_integer(base=16, strict=False)),
            blank=t.str.contains(_BLANK),
        )
        .with_columns(has_crc=pl.col("stored").is_not_null())
        .with_columns(body=pl.when("has_crc").then(t.str.slice(9)).otherwise(t))
        .with_columns(blank_body=pl.col("body").str.contains(_BLANK))
        .filter(~pl.col("blank"))
        .collect()
    )

    # One list of record bodies serves both the CRC check and the NDJSON buffer.
    has_crc = lines.get_column("has_crc")
    bodies: list[bytes] = lines.get_column("body").cast(pl.Binary).to_list()
    blank_body = lines.get_column("blank_body")
    parse_rows = bodies if not blank_body.any() else [b for b, blank in zip(bodies, blank_body, strict=True) if not blank]

    # Parse in a second thread (Polars releases the GIL) while this one computes CRCs.
    result: dict[str, pl.DataFrame | None] = {}
    worker = threading.Thread(target=_parse_into, args=(parse_rows, result))
    worker.start()
    if has_crc.all():
        computed = pl.Series("crc", list(map(zlib.crc32, bodies)), dtype=pl.Int64)
        crc_ok = computed == lines.get_column("stored")
    else:
        crc_ok = pl.Series("crc_ok", [True] * len(lines), dtype=pl.Boolean)
        crc_idx = has_crc.arg_true()
        if len(crc_idx):
            computed = pl.Series("crc", [zlib.crc32(bodies[i]) for i in crc_idx.to_list()], dtype=pl.Int64)
            crc_ok = crc_ok.scatter(crc_idx, computed == lines.get_column("stored").gather(crc_idx))
    worker.join()
    all_ok = bool(crc_ok.all())
    parsed = result.get("frame")
    if not all_ok:
        for start, line, raw in lines.filter(~crc_ok).select("start", "line", "text").iter_rows():
            _bad_crc(damage, raw.encode(), base_offset + start, line)
        if parsed is not None:  # parsed rows include damaged bodies: keep the good ones only
            parsed = parsed.filter(crc_ok.filter(~blank_body))
        else:  # perhaps only the damaged bodies were not JSON
            _parse_into([b for b, ok, blank in zip(bodies, crc_ok, blank_body, strict=True) if ok and not blank], result)
            parsed = result.get("frame")
        lines = lines.filter(crc_ok)
    body = pl.col("body")
    good = lines.select(
        "start", "line", "has_crc", "blank_body",
        body.str.contains("\\u", literal=True).alias("escape_u"),
        _duplicate_key(body).alias("duplicate"),
        *(body.str.contains(f'"{k}":"', literal=True).alias(f"quoted_{k}") for k in _STRING_FIELDS),
    )  # fmt: skip
    return good, parsed


def _duplicate_key(body: pl.Expr) -> pl.Expr:
    """An envelope key (``"<key>"`` then ``:``) appearing twice in a body."""
    keys = pl.Series([*ENVELOPE_FIELDS, BATCH_FIELD]).str.escape_regex().str.join("|").item()
    found = body.str.extract_all(f'"(?:{keys})"[ \t\r]*:')
    names = found.list.eval(pl.element().str.strip_chars_end(" \t\r:"))  # `"k":` and `"k" :` are one key
    return names.list.len() > names.list.unique().list.len()


def _bad_crc(damage: _Damage, raw: bytes, offset: int, line: int) -> None:
    damage.add(offset, line, BAD_CRC, f"stored CRC {raw[:8].decode()} does not match the record", raw)


def _line_at(buf: bytes, start: int) -> bytes:
    end = buf.find(b"\n", start)
    return buf[start : len(buf) if end == -1 else end]


def _bodies(buf: bytes, rows: pl.DataFrame) -> pl.Series:
    """The JSON text of a few rows of a split (``start``, ``has_crc``), sliced out of ``buf``."""
    return pl.Series(
        "body",
        [_line_at(buf, s)[9 if crc else 0 :].decode() for s, crc in rows.select("start", "has_crc").iter_rows()],
        pl.String,
    )


def _where(buf: bytes, frame: pl.DataFrame, mask: pl.Series, pattern: str) -> pl.Series:
    """``mask & body matches pattern``, running the regex only on the rows of ``mask``."""
    if not mask.any():
        return mask
    rows = mask.arg_true()
    hits = _bodies(buf, frame.gather(rows)).str.contains(pattern)
    return pl.Series(mask.name, [False] * len(mask), pl.Boolean).scatter(rows, hits)


def _parse(ndjson: bytes, n_rows: int) -> pl.DataFrame | None:
    """Polars' NDJSON parse of ``n_rows`` bodies joined by newlines, or None if refused."""
    if not n_rows:
        return pl.DataFrame(schema=_NDJSON_SCHEMA)
    try:
        frame = pl.read_ndjson(ndjson, schema=_NDJSON_SCHEMA)
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        return None
    return frame if frame.height == n_rows else None  # a lone '\r' or similar would shift rows


def _parse_into(bodies: list[bytes], result: dict[str, pl.DataFrame | None]) -> None:
    """:func:`_parse` of a list of bodies, into ``result["frame"]`` (run in a thread)."""
    result["frame"] = _parse(b"\n".join(bodies), len(bodies))


# ---------------------------------------------------------------------------
# Binary path


def decode_binary(
    buf: bytes, *, file: str, offset: int = 0, file_size: int | None = None, max_record_size: int = MAX_RECORD_SIZE
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Decode whole binary frames from ``buf``; returns ``(records, damage, consumed)``.

    ``consumed`` is how many bytes of ``buf`` were frames (or damage); the rest
    is an incomplete frame that continues in the next chunk. When ``file_size``
    is given, a frame whose length runs past the end of the file is reported
    as ``frame_past_eof`` and ends the walk (nothing after it can be framed).
    """
    damage = _Damage(file)
    rows: list[dict[str, Any]] = []
    pos, n = 0, len(buf)
    module = native.load()
    fast = None
    if module is not None:  # whole frames in C; then the walk below sees only the end of the buffer
        # Frames past `file_size` are the walk's to report: the native decoder does not see them.
        whole = memoryview(buf)[: n if file_size is None else max(0, min(n, file_size - offset))]
        pos, parts = module.decode_frames(whole, max_record_size, NATIVE_THREADS)
        fast, slow_starts = _binary_native(_native_frame(parts), offset)
        for start in slow_starts:
            (length,) = bincode.LEN.unpack_from(buf, start)
            _binary_frame(buf, start, length, offset, damage, rows)
    unpack = bincode.LEN.unpack_from
    while pos + bincode.FRAME_HEADER <= n:
        (length,) = unpack(buf, pos)
        start = pos + bincode.FRAME_HEADER
        at = offset + pos
        if file_size is not None and at + bincode.FRAME_HEADER + length > file_size:
            damage.add(
                at, None, FRAME_PAST_EOF,
                f"frame length {length} runs {at + bincode.FRAME_HEADER + length - file_size} bytes past the end of"
                f" the file (a torn tail, or a garbage length)",
                buf[pos : pos + RAW_PREVIEW],
            )  # fmt: skip
            return _finish_binary(fast, rows, file), damage.frame(), n
        if length > max_record_size:
            return _finish_binary(fast, rows, file), damage.frame(), pos  # the reader skips it (see read_journal)
        if start + length > n:
            break
        _binary_frame(buf, pos, length, offset, damage, rows)
        pos = start + length
    return _finish_binary(fast, rows, file), damage.frame(), pos


def _binary_frame(buf: bytes, pos: int, length: int, offset: int, damage: _Damage, rows: list[dict[str, Any]]) -> None:
    """Decode the whole frame at ``pos`` with the reference codec: a row, or a damage row."""
    start = pos + bincode.FRAME_HEADER
    try:
        env = bincode.decode_body(buf[start : start + length])
    except (bincode.BincodeError, ValueError) as e:
        damage.add(offset + pos, None, BAD_FRAME, str(e), buf[pos : start + length])
    else:
        row = _record_row(env, None, "binary")
        row["offset"], row["line"] = offset + pos, None
        rows.append(row)


def _binary_native(frame: pl.DataFrame, offset: int) -> tuple[pl.DataFrame, list[int]]:
    """Rows of the frames the native decoder decided (``_SLOW_SCHEMA`` + derived), and where the others start."""
    slow = (frame.get_column("flags") & _F_SLOW) != 0
    starts = frame.get_column("start").filter(slow).to_list() if slow.any() else []
    fast = frame.filter(~slow) if starts else frame
    return fast.select(
        (pl.col("start").cast(pl.UInt64) + offset).alias("offset"),
        pl.lit(None, pl.UInt64).alias("line"),
        pl.lit("binary", pl.String).alias("encoding"),
        pl.lit("envelope", pl.String).alias("record_kind"),
        "event_type", "event_id", "ts", "payload", "aggregate_id", "event_hash", "previous_hash",
        pl.lit(None, pl.Int64).alias("follows"), *_DERIVED,
    ), starts  # fmt: skip


def _finish_binary(fast: pl.DataFrame | None, rows: list[dict[str, Any]], file: str) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=_SLOW_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_SLOW_SCHEMA)
    if fast is not None:
        if rows:
            frame = pl.concat([frame, _derived(frame.get_column("event_type"))], how="horizontal")
            frame = pl.concat([fast, frame], how="vertical_relaxed").sort("offset", maintain_order=True)
        else:
            frame = fast
    return _finish(frame, file)


# ---------------------------------------------------------------------------
# Files


def read_journal(
    path: Path,
    *,
    name: str | None = None,
    start: int = 0,
    line: int = 1,
    final: bool = True,
    chunk_size: int = CHUNK_SIZE,
    max_record_size: int = MAX_RECORD_SIZE,
) -> Iterator[Batch]:
    """Decode a journal file in chunks aligned on record boundaries.

    Parameters
    ----------
    path
        The journal file.
    name
        The file name reported in the ``file`` column (default: ``path.name``).
    start, line
        Byte offset and 1-based line number to start from (a previous
        :attr:`Batch.end_offset` / :attr:`Batch.end_line`).
    final
        True when the file is complete: an unterminated last line or a frame
        cut by the end of the file is a torn tail (reported). False for a
        journal still being written: the unfinished record is left for the
        next call and the last batch ends before it.
    chunk_size
        Bytes decoded at a time; bounds memory together with ``max_record_size``.
    max_record_size
        A line or frame longer than this is reported as ``oversized_record``
        and skipped without being loaded.
    """
    name = name or path.name
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEAD_SIZE)
        encoding = detect_encoding(head)
        if encoding == "empty" or start >= size:
            return
        if encoding == "unframed_binary":
            d = _Damage(name)
            d.add(
                0, None, UNFRAMED_BINARY,
                "binary records separated by newlines without length prefixes (upstream's async writer);"
                " record boundaries cannot be recovered, upstream cannot read this file either",
                head,
            )  # fmt: skip
            yield Batch(empty_records(), d.frame(), size, line)
            return
        f.seek(start)
        if encoding == "json":
            yield from _read_json(f, name, start, line, size, final, chunk_size, max_record_size)
        else:
            yield from _read_binary(f, name, start, size, final, chunk_size, max_record_size)


def _read_json(
    f: Any, name: str, pos: int, line: int, size: int, final: bool, chunk_size: int, max_record_size: int
) -> Iterator[Batch]:
    jobs = _json_work(f, name, pos, line, size, final, chunk_size, max_record_size)
    if native.load() is None:
        # The pure-Python split holds the GIL: decoding two chunks at a time was measured
        # no faster on a busy 2-core machine, for a third more peak memory.
        yield from (job() for job in jobs)
        return
    # The native decoder releases the GIL: one chunk is decoded while the previous one
    # is finished by Polars (and the caller consumes a third). Batches come out in order.
    with ThreadPoolExecutor(2, thread_name_prefix="lithair_lab-read") as pool:
        ahead: deque[Future[Batch]] = deque()
        for job in jobs:
            ahead.append(pool.submit(job))
            if len(ahead) == 2:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _json_work(
    f: Any, name: str, pos: int, line: int, size: int, final: bool, chunk_size: int, max_record_size: int
) -> Iterator[Callable[[], Batch]]:
    """Read the file in record-aligned chunks (sequentially); each chunk's decode is a job.

    Chunks are read into a few reused buffers: fresh memory for every chunk costs
    a page fault per 4 KiB. A buffer is refilled three chunks later, when its job
    is done (:func:`_read_json` keeps at most two in flight, and no batch keeps a
    reference to its chunk: the decoders copy what they keep).
    """
    pure = native.load() is None
    carry = b""
    buffers: list[bytearray] = []
    k = 0
    while pos < size:
        want = min(chunk_size, size - pos - len(carry))
        if carry:  # a line longer than a chunk
            whole: bytes | bytearray = carry + f.read(want)
            n = len(whole)
        else:
            if len(buffers) < _BUFFERS:
                buffers.append(bytearray(chunk_size))
            whole = buffers[k % _BUFFERS]
            k += 1
            n = f.readinto(memoryview(whole)[:want])
        data = memoryview(whole)[:n]
        carry = b""
        cut = whole.rfind(b"\n", 0, n) + 1
        at_eof = pos + n >= size
        if cut == 0 and not at_eof:
            if n > max_record_size:  # one enormous line: report it, then skip to its end
                skipped = _skip_line(f, n)
                d = _Damage(name)
                d.add(pos, line, OVERSIZED, f"a line of at least {skipped} bytes exceeds `max_record_size` ({max_record_size})", bytes(data))
                pos += skipped
                line += 1
                yield partial(Batch, empty_records(), d.frame(), pos, line)
                continue
            carry = bytes(data)
            continue
        body, tail = data[:cut], bytes(data[cut:])
        if pure:  # the pure-Python path works on bytes
            body = bytes(body)
        end_line = line + _count_newlines(body)
        torn = at_eof and bool(tail) and final
        yield partial(_decode_chunk, body, name, pos, line, tail if torn else b"", pos + cut, end_line, at_eof and final)
        line = end_line
        pos += cut
        if at_eof and tail:
            return  # a torn tail was decoded with the chunk, or (not final) waits for the next call
        if tail:  # read the unfinished line again with the next chunk (cheaper than joining bytes)
            f.seek(pos)


_BUFFERS = 3


def _count_newlines(data: bytes | memoryview) -> int:
    module = native.load()
    return module.count_newlines(data) if module is not None else data.count(b"\n")


def _decode_chunk(
    body: bytes | memoryview, name: str, pos: int, line: int, torn: bytes, end: int, end_line: int, last: bool
) -> Batch:
    records, damage, follows = _decode_json(body, file=name, offset=pos, line=line)
    if last and not torn:
        records, damage = _cut_unfinished_batch(records, damage, follows, name, end)
    if torn:
        tail_records, tail_damage = _torn_json_tail(torn, name, end, end_line)
        records = pl.concat([records, tail_records])
        damage = pl.concat([damage, tail_damage])
        end += len(torn)
    return Batch(records, damage, end, end_line)


def _cut_unfinished_batch(
    records: pl.DataFrame, damage: pl.DataFrame, follows: pl.Series, name: str, end: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A file that ends inside an ``append_many`` batch (its last record says more follow)
    ends in a batch cut short by a crash: the engine cuts it aside on open, so it is a torn
    tail here too, not records. Only the batch's records in this last chunk can be seen."""
    if follows.is_empty() or not (follows[-1] or 0) > 0:
        return records, damage
    n = len(follows)
    first = n - 1
    while first > 0 and follows[first - 1] == follows[first] + 1:
        first -= 1
    start = int(records["offset"][first])
    d = _Damage(name)
    d.add(
        start, int(records["line"][first]), TORN_TAIL,
        f"an `append_many` batch cut short: its last {n - first} records are here and {follows[-1]} more"
        " never reached the file (the engine cuts them aside on open)", b"",
    )  # fmt: skip
    return records.head(first), pl.concat([damage, d.frame()])


def _skip_line(f: Any, already: int) -> int:
    """Read past the end of the current line without keeping it; bytes skipped incl. newline."""
    skipped = already
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return skipped
        nl = chunk.find(b"\n")
        if nl != -1:
            f.seek(nl + 1 - len(chunk), os.SEEK_CUR)
            return skipped + nl + 1
        skipped += len(chunk)


def _torn_json_tail(tail: bytes, name: str, offset: int, line: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The last line has no newline: a record if provably whole (CRC ok, or a JSON object), else a torn tail."""
    records, damage = decode_json(tail + b"\n", file=name, offset=offset, line=line)
    # Only a CRC-verified line or a whole JSON object proves the record is complete:
    # a cut CRC line such as `9` or `12` would otherwise parse as a raw JSON number.
    whole = (records["encoding"] == "crc") | records["payload"].str.starts_with("{")
    if damage.height == 0 and records.height == 1 and whole.all():
        return records, damage
    d = _Damage(name)
    d.add(offset, line, TORN_TAIL, f"the last {len(tail)} bytes are an unfinished record (no newline)", tail)
    return empty_records(), d.frame()


def _read_binary(
    f: Any, name: str, pos: int, size: int, final: bool, chunk_size: int, max_record_size: int
) -> Iterator[Batch]:
    header = bincode.FRAME_HEADER
    while pos < size:
        f.seek(pos)
        data = f.read(min(max(chunk_size, header), size - pos))
        if len(data) < header:  # only part of a length prefix is left
            d = _Damage(name)
            if final:
                d.add(pos, None, TORN_TAIL, f"the last {len(data)} bytes are an unfinished frame header", data)
                pos = size
            yield Batch(empty_records(), d.frame(), pos, 1)
            return
        records, damage, used = decode_binary(
            data, file=name, offset=pos, file_size=size if final else None, max_record_size=max_record_size
        )
        if used == 0:  # the first frame is larger than the chunk, oversized, or still being written
            (length,) = bincode.LEN.unpack_from(data)
            if pos + header + length > size:  # not final (else decode_binary reported it): wait for it
                yield Batch(records, damage, pos, 1)
                return
            if length > max_record_size:  # framing is intact: report the frame and skip it unread
                d = _Damage(name)
                d.add(pos, None, OVERSIZED, f"frame of {length} bytes exceeds `max_record_size` ({max_record_size})", data)
                pos += header + length
                yield Batch(records, d.frame(), pos, 1)
                continue
            data += f.read(header + length - len(data))
            records, damage, used = decode_binary(data, file=name, offset=pos, max_record_size=max_record_size)
        pos += used
        yield Batch(records, damage, pos, 1)

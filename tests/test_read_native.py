"""The native envelope decoder (``decode_envelopes`` in ``_native.c``) against the reference codec.

The decoder parses the envelope itself; whatever it cannot decide exactly is
flagged and read by the reference path. These tests check that (1) the lines
it decides hold exactly what ``orjson`` reads, (2) the compact lines the
writers produce are decided natively (the fast path is really taken), and
(3) journals of odd, hand-escaped or damaged lines give the same frames and
damage on the native and the pure-Python paths.
"""

from __future__ import annotations

import gc
import zlib
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from lithair_lab.formats import batch, bincode
from lithair_lab.formats.envelope import ENVELOPE_FIELDS, REQUIRED_FIELDS, Envelope
from lithair_lab.formats.jsonlines import frame_line

from test_frames_native import decode_both

_native = pytest.importorskip(
    "lithair_lab.formats._native", reason="the C extension is not built here (no compiler at install time)"
)

COLUMNS = batch._NATIVE_COLUMNS
STRINGS = ("event_type", "event_id", "payload", "aggregate_id", "event_hash", "previous_hash")
HAS_CRC, CRC_BAD, SLOW = batch._F_HAS_CRC, batch._F_CRC_BAD, batch._F_SLOW


def decode(buf: bytes, threads: int = 1) -> pl.DataFrame:
    """``decode_envelopes`` as one frame."""
    frames = []
    for columns, types in _native.decode_envelopes(buf, threads):
        frame = pl.DataFrame([pl.Series(c).alias(n) for n, c in zip(COLUMNS, columns, strict=True)])
        # Each part's event types are listed once; a row's code is its type's index.
        assert frame["event_type"].to_list() == [None if c is None else types[c] for c in frame["type_code"]]
        assert len(set(types)) == len(types)
        frames.append(frame.drop("type_code"))
    return pl.concat(frames)


def expected_row(body: bytes) -> dict[str, object] | None:
    """What the reference reads from an envelope body, in the decoder's columns (None: not an envelope)."""
    env, _, bad = batch.decode_json_record(body)
    if env is None or bad is not None:
        return None
    follows = env.extra.get(batch.BATCH_FIELD)
    return {
        "ts": env.timestamp,
        "follows": batch._follows(follows),
        **{k: getattr(env, k) for k in STRINGS},
    }


# --- hand-written JSON: every escape form, optional odd whitespace --------------

# Characters a string may hold: ASCII, controls, quotes, non-BMP, and the bytes around the escapes.
chars = st.characters(codec="utf-8") | st.sampled_from(['"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "é", "€", "😀"])
texts = st.text(chars, max_size=20)


@st.composite
def json_string(draw: st.DrawFn, s: str) -> bytes:
    """``s`` as a JSON string, each character written raw or escaped in one of the ways JSON allows."""
    out = [b'"']
    short = {'"': b'\\"', "\\": b"\\\\", "/": b"\\/", "\b": b"\\b", "\f": b"\\f", "\n": b"\\n", "\r": b"\\r", "\t": b"\\t"}
    for c in s:
        forms = []
        if c not in '"\\' and ord(c) >= 0x20:
            forms.append(c.encode())
        if c in short:
            forms.append(short[c])
        cp = ord(c)
        if cp < 0x10000:
            forms.append(b"\\u%04x" % cp)
            forms.append(b"\\u%04X" % cp)
        else:
            hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
            forms.append(b"\\u%04x\\u%04x" % (hi, lo))
        out.append(draw(st.sampled_from(forms)))
    out.append(b'"')
    return b"".join(out)


integers = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, -1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30])


@st.composite
def envelope_body(draw: st.DrawFn) -> bytes:
    """An envelope as a JSON object: fields present or not, null or of another type, extra or repeated keys."""
    fields: list[tuple[str, bytes]] = []
    for k in ENVELOPE_FIELDS:
        if k in REQUIRED_FIELDS and draw(st.integers(0, 19)) == 0:
            continue  # a required field missing: not an envelope
        if k not in REQUIRED_FIELDS and draw(st.booleans()):
            continue  # an optional field absent
        if k == "timestamp":
            v = b"%d" % draw(integers)
        else:
            v = draw(json_string(draw(texts)))
        if draw(st.integers(0, 14)) == 0:  # null, or another JSON type
            v = draw(st.sampled_from([b"null", b"true", b"1.5", b"1e3", b"-0", b"[1]", b'{"a":1}', b'"1"', b"01"]))
        fields.append((k, v))
    if draw(st.integers(0, 4)) == 0:
        fields.append((batch.BATCH_FIELD, draw(st.sampled_from([b"null", b"-1", b"0", b"3", b"1.0", b'"2"', b"%d" % 2**63]))))
    if draw(st.integers(0, 9)) == 0:  # an unknown extra key
        fields.append((draw(st.sampled_from(["extra", "event_typ", "Event_type", "x" * 17])), b"1"))
    if draw(st.integers(0, 9)) == 0 and fields:  # a repeated key
        fields.append((draw(st.sampled_from(fields))[0], b'"again"'))
    fields = draw(st.permutations(fields)) if draw(st.integers(0, 4)) == 0 else fields
    keys = [draw(json_string(k)) if draw(st.integers(0, 19)) else b'"' + k.encode() + b'"' for k, _ in fields]
    sep = draw(st.sampled_from([b""] * 8 + [b" ", b"\t", b"\r"]))
    body = b"{" + sep + (b"," + sep).join(k + b":" + sep + v for k, (_, v) in zip(keys, fields, strict=True)) + sep + b"}"
    if draw(st.integers(0, 14)) == 0:
        body += draw(st.sampled_from([b" ", b"\r", b"x", b"}"]))
    return body


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(envelope_body(), min_size=1, max_size=8), framed=st.booleans())
def test_decided_lines_hold_what_the_reference_reads(bodies: list[bytes], framed: bool) -> None:
    buf = b"".join(frame_line(b) if framed else b + b"\n" for b in bodies)
    frame = decode(buf)
    assert frame.height == len(bodies)
    for body, row in zip(bodies, frame.iter_rows(named=True), strict=True):
        assert row["flags"] & HAS_CRC == (HAS_CRC if framed else 0)
        if row["flags"] & SLOW:
            assert all(row[k] is None for k in ("ts", "follows", *STRINGS))
            continue
        want = expected_row(body)
        assert want is not None, body  # a decided line is an envelope for the reference too
        assert {k: row[k] for k in want} == want, body


@settings(max_examples=200, deadline=None)
@given(
    event_type=st.sampled_from(["ProductCreated", "my_app::models::OrderUpdated", "T"]) | texts,
    event_id=texts,
    timestamp=st.integers(-(2**63), 2**63 - 1),
    payload=st.dictionaries(texts, texts | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False), max_size=4),
    aggregate_id=st.none() | texts,
    chained=st.booleans(),
    follows=st.none() | st.integers(0, 1000),
    era=st.sampled_from(["B", "C"]),
)
def test_writer_lines_are_decided_natively(
    event_type: str, event_id: str, timestamp: int, payload: dict, aggregate_id: str | None,
    chained: bool, follows: int | None, era: str,
) -> None:  # fmt: skip
    """The compact form the engine and upstream write never needs the reference path."""
    hashes = ("ab" * 32, "cd" * 32) if chained else (None, None)
    extra = {} if follows is None else {batch.BATCH_FIELD: follows}
    env = Envelope(event_type, event_id, timestamp, orjson.dumps(payload).decode(), aggregate_id, *hashes, extra)
    body = env.to_json(era=era)
    row = decode(frame_line(body)).row(0, named=True)
    assert row["flags"] == HAS_CRC
    assert {k: row[k] for k in ("ts", *STRINGS)} == {"ts": timestamp, **{k: getattr(env, k) for k in STRINGS}}
    assert row["follows"] == follows


def test_bad_utf8_and_lone_surrogates_go_to_the_reference_path() -> None:
    head = b'{"event_type":"T","event_id":"e","timestamp":1,"payload":"'
    for bad in (b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\\ud800", b"\\udc00x", b"\\ud800\\u0041", b"\\x", b"\x01"):
        frame = decode(frame_line(head + bad + b'"}'))
        assert frame["flags"].to_list() == [HAS_CRC | SLOW], bad
    ok = decode(frame_line(head + b'\\ud83d\\ude00\xf0\x9f\x98\x80\xef\xbf\xbf"}'))
    assert ok["flags"].to_list() == [HAS_CRC] and ok["payload"].to_list() == ["😀😀\uffff"]


def test_crc_mismatch_is_flagged_and_not_decoded() -> None:
    body = b'{"event_type":"T","event_id":"e","timestamp":1,"payload":"{}"}'
    line = b"%08x:" % (zlib.crc32(body) ^ 1) + body + b"\n"
    frame = decode(line + frame_line(body))
    assert frame["flags"].to_list() == [HAS_CRC | CRC_BAD, HAS_CRC]
    assert frame["event_type"].to_list() == [None, "T"]


def test_blank_lines_are_not_rows_but_count_as_lines() -> None:
    body = b'{"event_type":"T","event_id":"e","timestamp":1,"payload":"{}"}'
    buf = b"\n \t\n" + frame_line(body) + b"\r\n" + body  # the last line has no newline
    frame = decode(buf)
    assert frame.select("start", "line").rows() == [(4, 2), (len(buf) - len(body), 4)]


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_parts_cut_at_line_boundaries_decode_as_one(threads: int) -> None:
    lines = [
        frame_line(Envelope("ProductCreated", f"e{i}", i, f'{{"i":{i},"s":"{"x" * (i % 50)}"}}', f"p{i}").to_json())
        if i % 7
        else b"\n"
        for i in range(40_000)
    ]
    buf = b"".join(lines)
    assert len(buf) > 3 << 20  # large enough to be cut into parts
    parts = _native.decode_envelopes(buf, threads)
    assert 1 < len(parts) <= threads  # no part under 1 MiB
    assert_frame_equal(decode(buf, threads), decode(buf, 1))
    frame = decode(buf, threads)
    assert frame["event_id"].to_list() == [f"e{i}" for i in range(40_000) if i % 7]
    assert frame["line"].to_list() == [i for i in range(40_000) if i % 7]


def test_many_short_lines_grow_the_rows() -> None:
    """Rows are not counted before the decode: lines shorter than the estimate make the arrays grow."""
    lines = [b'{"event_type":"T","event_id":"%d","timestamp":%d,"payload":"p"}' % (i, i) if i % 3 else b"5" for i in range(20_000)]
    frame = decode(b"\n".join(lines) + b"\n")
    assert frame.height == 20_000
    assert frame["flags"].to_list() == [0 if i % 3 else SLOW for i in range(20_000)]
    assert frame["event_id"].to_list() == [str(i) if i % 3 else None for i in range(20_000)]
    assert frame["line"].to_list() == list(range(20_000))


def test_columns_outlive_the_decode_and_free_their_buffers() -> None:
    body = b'{"event_type":"ProductCreated","event_id":"a long event id, not inline","timestamp":1,"payload":"{}"}'
    parts = _native.decode_envelopes(frame_line(body) * 3)
    column = parts[0][0][COLUMNS.index("event_id")]
    del parts
    gc.collect()
    s1, s2 = pl.Series(column), pl.Series(column)  # exported twice: each array holds the buffers
    del column
    gc.collect()
    assert s1.to_list() == s2.to_list() == ["a long event id, not inline"] * 3
    capsules = _native.decode_envelopes(frame_line(body))[0][0][0].__arrow_c_array__()
    del capsules  # never imported: the capsules release their arrays


# --- whole journals: native and pure-Python paths agree -----------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    bodies=st.lists(envelope_body(), min_size=1, max_size=20),
    kinds=st.lists(st.sampled_from(["crc", "crc", "legacy", "bad_crc"]), min_size=20, max_size=20),
    cut=st.none() | st.integers(0, 4000),
    chunk_size=st.sampled_from([1 << 16, 300]),
)
def test_odd_journals_read_alike_on_both_paths(tmp_path: Path, bodies: list[bytes], kinds: list[str], cut: int | None, chunk_size: int) -> None:
    lines = []
    for body, kind in zip(bodies, kinds, strict=False):
        line = frame_line(body) if kind != "legacy" else body + b"\n"
        if kind == "bad_crc":
            line = b"%08x" % (zlib.crc32(body) ^ 4) + line[8:]
        lines.append(line)
    data = b"".join(lines)[:cut]
    path = tmp_path / "events.raftlog"
    path.write_bytes(data)
    (records, damage), (pure_records, pure_damage) = decode_both(path, chunk_size)
    assert_frame_equal(records, pure_records)
    assert_frame_equal(damage, pure_damage)


# --- binary frames ---------------------------------------------------------------


@st.composite
def binary_frame(draw: st.DrawFn) -> bytes:
    """A frame as the engine or upstream writes it, sometimes Era B (hash fields left out), or odd."""
    env = Envelope(
        draw(st.sampled_from(["ProductCreated", "my_app::models::OrderUpdated"]) | texts),
        draw(texts),
        draw(st.integers(0, 2**64 - 1)),
        draw(texts),
        draw(st.none() | texts),
        draw(st.none() | st.just("ab" * 32)),
        draw(st.none() | st.just("cd" * 32)),
    )
    body = bincode.encode_body(env)
    what = draw(st.sampled_from(["whole"] * 6 + ["era_b", "flip", "trailing", "cut", "wide_varint"]))
    if what == "era_b":
        body = body[: len(body) - draw(st.integers(0, 3))] if env.previous_hash is None and env.event_hash is None else body
    elif what == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    elif what == "trailing":
        body += draw(st.binary(min_size=1, max_size=3))
    elif what == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif what == "wide_varint":  # a non-minimal varint, which bincode.py accepts
        body = b"\xfb" + len(env.event_type.encode()).to_bytes(2, "little") + body[1:] if body[0] < 251 else body
    return bincode.LEN.pack(len(body)) + body


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(binary_frame(), min_size=1, max_size=8), max_record_size=st.sampled_from([1 << 20, 40]))
def test_decoded_frames_hold_what_the_reference_reads(frames: list[bytes], max_record_size: int) -> None:
    buf = b"".join(frames)
    consumed, parts = _native.decode_frames(buf, max_record_size, 1)
    rows = [row for columns, _ in parts for row in pl.DataFrame([pl.Series(c).alias(n) for n, c in zip(COLUMNS, columns, strict=True)]).iter_rows(named=True)]
    pos, k = 0, 0
    for frame in frames:
        if len(frame) - 8 > max_record_size:
            break
        row = rows[k]
        assert row["start"] == pos
        if not row["flags"] & SLOW:
            env = bincode.decode_body(frame[8:])  # a decided frame is one the reference reads
            assert {c: row[c] for c in ("ts", *STRINGS)} == {"ts": env.timestamp, **{c: getattr(env, c) for c in STRINGS}}
        pos, k = pos + len(frame), k + 1
    assert consumed == pos and len(rows) == k


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames=st.lists(binary_frame(), min_size=1, max_size=20), cut=st.none() | st.integers(0, 3000), chunk_size=st.sampled_from([1 << 16, 200]))
def test_binary_journals_read_alike_on_both_paths(tmp_path: Path, frames: list[bytes], cut: int | None, chunk_size: int) -> None:
    path = tmp_path / "events.raftlog"
    path.write_bytes(b"".join(frames)[:cut])
    (records, damage), (pure_records, pure_damage) = decode_both(path, chunk_size)
    assert_frame_equal(records, pure_records)
    assert_frame_equal(damage, pure_damage)


def test_binary_parts_cut_at_frame_boundaries_decode_as_one() -> None:
    frames = [bincode.encode_frame(Envelope("ProductCreated", f"e{i}", i, "x" * (i % 90), f"p{i}")) for i in range(60_000)]
    buf = b"".join(frames) + frames[0][:20]  # and an unfinished frame
    one, two = _native.decode_frames(buf, 1 << 20, 1), _native.decode_frames(buf, 1 << 20, 2)
    assert one[0] == two[0] == len(buf) - 20
    assert len(two[1]) == 2
    as_frame = lambda parts: pl.concat(pl.DataFrame([pl.Series(c).alias(n) for n, c in zip(COLUMNS, cols, strict=True)]).drop("type_code") for cols, _ in parts)  # noqa: E731
    assert_frame_equal(as_frame(one[1]), as_frame(two[1]))
    assert as_frame(two[1])["event_id"].to_list() == [f"e{i}" for i in range(60_000)]

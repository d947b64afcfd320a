"""The engine's line encoder: the native one writes the reference codec's bytes, and the
lighter :class:`Envelope` keeps the behaviour callers rely on."""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import subprocess
import sys
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lithair_lab.formats import envelope as E
from lithair_lab.formats.envelope import BATCH_FIELD, U64_MAX, Envelope

native = pytest.mark.skipif(not E.native_encoder, reason="the native encoder is not built")

WORKED = (
    b'98d0872f:{"event_type":"ProductCreated","event_id":"Product:Created:p1:6f1c2a1e-0000-4000-8000-000000000001",'
    b'"timestamp":1767225600,"payload":"{\\"id\\":\\"p1\\",\\"name\\":\\"Pen\\",\\"price\\":1.5}","aggregate_id":"p1",'
    b'"event_hash":"0e07f491226f706e3855a4527f70bcb5bec7ca0a62310e8221ef925c9e8f11eb","previous_hash":null}\n'
)
WORKED_ARGS = (
    "ProductCreated", "Product:Created:p1:6f1c2a1e-0000-4000-8000-000000000001", 1767225600,
    '{"id":"p1","name":"Pen","price":1.5}', "p1", None,
)  # fmt: skip


def reference_line(event_type, event_id, ts, payload, agg, prev, chain, left):  # noqa: ANN001, ANN201
    """FORMATS.md 2 written out with the reference codec (orjson, zlib, hashlib)."""
    h = None
    if chain:
        raw = f"{event_type}|{event_id}|".encode() + ts.to_bytes(8, "little")
        raw += f"|{payload}|{agg or ''}|{prev or ''}".encode()
        h = hashlib.sha256(raw).hexdigest()
    env = {
        "event_type": event_type, "event_id": event_id, "timestamp": ts, "payload": payload,
        "aggregate_id": agg, "event_hash": h, "previous_hash": prev,
    }  # fmt: skip
    if left:
        env[BATCH_FIELD] = left
    body = orjson.dumps(env)
    return b"%08x:%s\n" % (zlib.crc32(body), body), h


# Every kind of character a JSON string escapes or keeps: controls, quotes, backslashes,
# DEL, non-ASCII of 2, 3 and 4 UTF-8 bytes, U+2028 (kept raw by orjson), no lone surrogates.
chars = st.characters(blacklist_categories=("Cs",)) | st.sampled_from('\x00\x01\x08\t\n\x0b\x0c\r\x1f"\\/\x7f\u2028é€😀')
text = st.text(chars, max_size=60) | st.sampled_from(["", "x" * 5000, '"\\' * 3000, "é😀" * 2000])
nullable = st.none() | text
hashes = st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)
timestamps = st.sampled_from([0, 1, 2**32, U64_MAX]) | st.integers(0, U64_MAX)
payloads = text | st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
).map(lambda v: orjson.dumps(v).decode())


def test_worked_example_bytes() -> None:
    line, h = E.encode_line(*WORKED_ARGS, True, 0)
    assert line == WORKED
    assert h == "0e07f491226f706e3855a4527f70bcb5bec7ca0a62310e8221ef925c9e8f11eb"
    assert E._py_encode_line(*WORKED_ARGS, True, 0) == (line, h)


@settings(max_examples=400, deadline=None)
@given(text.filter(bool), text, timestamps, payloads, nullable, hashes, st.booleans(), st.integers(0, 10**6))
def test_encoder_writes_the_reference_bytes(et, eid, ts, payload, agg, prev, chain, left) -> None:  # noqa: ANN001
    expected = reference_line(et, eid, ts, payload, agg, prev, chain, left)
    assert E._py_encode_line(et, eid, ts, payload, agg, prev, chain, left) == expected
    assert E.encode_line(et, eid, ts, payload, agg, prev, chain, left) == expected
    if chain:
        assert E.event_hash(et, eid, ts, payload, agg, prev) == E._py_event_hash(et, eid, ts, payload, agg, prev)


@native
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.sampled_from(["", "x" * 28, "x" * 29, "x" * 64, "é" * 50_000]))
def test_native_sha256_agrees_with_hashlib_across_block_boundaries(payload: str) -> None:
    from lithair_lab.formats import _encode

    raw = b"T|e|" + (7).to_bytes(8, "little") + f"|{payload}||".encode()
    assert _encode.event_hash("T", "e", 7, payload, None, None) == hashlib.sha256(raw).hexdigest()


@native
def test_native_encoder_refuses_what_it_cannot_encode() -> None:
    from lithair_lab.formats import _encode

    with pytest.raises(UnicodeEncodeError):
        _encode.encode_line("T", "\ud800", 1, "{}", None, None, True, 0)
    with pytest.raises(TypeError, match="event_id"):
        _encode.encode_line("T", 5, 1, "{}", None, None, True, 0)
    with pytest.raises(TypeError, match="timestamp"):
        _encode.encode_line("T", "e", True, "{}", None, None, True, 0)
    with pytest.raises(OverflowError):
        _encode.encode_line("T", "e", -1, "{}", None, None, True, 0)


def test_pure_python_is_forced_by_the_environment() -> None:
    code = (
        "from lithair_lab.formats import envelope as E; import sys;"
        f"sys.stdout.write(repr((E.native_encoder, E.encode_line(*{WORKED_ARGS!r}, True, 0)[0])))"
    )
    env = {**os.environ, "LITHAIR_LAB_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out == repr((False, WORKED))


def test_envelope_is_an_immutable_record() -> None:
    env = Envelope("T", "e1", 5, "{}", extra={"x": 1})
    assert (env.event_type, env.event_id, env.timestamp, env.payload) == ("T", "e1", 5, "{}")
    assert (env.aggregate_id, env.event_hash, env.previous_hash, env.extra) == (None, None, None, {"x": 1})
    assert Envelope(event_type="T", event_id="e1", timestamp=5, payload="{}") == env  # extra is not compared
    assert hash(Envelope("T", "e1", 5, "{}")) == hash(env)
    assert env != Envelope("T", "e2", 5, "{}")
    assert env != tuple(env)
    assert Envelope("T", "e1", 5, "{}").extra == {} and Envelope("T", "e1", 5, "{}").extra is not env.extra
    with pytest.raises(AttributeError):
        env.payload = "[]"  # type: ignore[misc]
    for twin in (pickle.loads(pickle.dumps(env)), copy.copy(env), copy.deepcopy(env)):
        assert twin == env and twin.extra == {"x": 1} and type(twin) is Envelope
    assert repr(env).startswith("Envelope(event_type='T', event_id='e1', timestamp=5, payload='{}'")
    match env:
        case Envelope("T", eid):
            assert eid == "e1"
        case _:
            pytest.fail("Envelope supports positional patterns")

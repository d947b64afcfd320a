"""The codec against FORMATS.md's worked examples, and round trips."""

from __future__ import annotations

import io
import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lithair_lab.formats import bincode, checkpoint, config, crud, jsonlines
from lithair_lab.formats.envelope import Envelope, envelope_from_obj, idempotence_key, short_type
from worked import EMPTY_MANIFEST, WORKED_FRAME, WORKED_LINE

def pen() -> Envelope:
    return Envelope(
        "ProductCreated",
        "Product:Created:p1:6f1c2a1e-0000-4000-8000-000000000001",
        1767225600,
        '{"id":"p1","name":"Pen","price":1.5}',
        "p1",
    ).chained(None)


def test_crc_check_value() -> None:
    assert jsonlines.crc_hex(b"hello world") == b"0d4a1185"
    assert zlib.crc32(b"hello world") == 0x0D4A1185


def test_worked_json_line_is_byte_identical() -> None:
    assert jsonlines.frame_line(pen().to_json()) == WORKED_LINE


def test_era_b_form_drops_null_previous_hash() -> None:
    line = jsonlines.frame_line(pen().to_json(era="B"))
    assert line[:9] == b"c9ffe51b:"
    assert b"previous_hash" not in line


def test_worked_line_splits_and_decodes_back() -> None:
    kind, body, ok = jsonlines.split_line(WORKED_LINE.rstrip(b"\n"))
    assert (kind, ok) == ("crc", True)
    assert envelope_from_obj(orjson.loads(body)) == pen()


def test_flipped_byte_fails_crc() -> None:
    line = bytearray(WORKED_LINE.rstrip(b"\n"))
    line[40] ^= 0x01
    assert jsonlines.split_line(bytes(line))[2] is False


def test_legacy_line_has_no_crc() -> None:
    assert jsonlines.split_line(b'{"ProductCreated":{"id":1}}') == ("legacy", b'{"ProductCreated":{"id":1}}', True)


def test_worked_binary_frame_is_byte_identical() -> None:
    env = Envelope("T", "e1", 1700000000, "{}").chained(None)
    assert bincode.encode_frame(env) == WORKED_FRAME
    assert len(WORKED_FRAME) == 89
    assert bincode.decode_body(WORKED_FRAME[8:]) == env


def test_era_b_binary_frame_without_hash_fields_reads_leniently() -> None:
    env = Envelope("T", "e1", 1700000000, "{}", "a")
    body = bincode.encode_body(env)[:-2]  # drop the two None tags
    assert bincode.decode_body(body) == env
    assert bincode.decode_body(bincode.encode_body(env)[:-1]) == env


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"\x05ab", "unexpected end of frame"), (b"\xfe", "invalid varint tag 0xfe"), (b"\x02\xff\xfe", "invalid UTF-8")],
)
def test_bad_bincode_is_explained(body: bytes, reason: str) -> None:
    with pytest.raises(bincode.BincodeError, match=reason):
        bincode.decode_body(body)


texts = st.text(max_size=300)


@given(
    et=texts, eid=texts, ts=st.integers(0, 2**64 - 1), pl=texts,
    agg=st.none() | texts, eh=st.none() | texts, ph=st.none() | texts,
)  # fmt: skip
def test_bincode_round_trip(et: str, eid: str, ts: int, pl: str, agg: str | None, eh: str | None, ph: str | None) -> None:
    env = Envelope(et, eid, ts, pl, agg, eh, ph)
    frame = bincode.encode_frame(env)
    assert int.from_bytes(frame[:8], "little") == len(frame) - 8
    assert bincode.decode_body(frame[8:]) == env


@given(pl=texts, et=texts, eid=texts, ts=st.integers(0, 2**63), agg=st.none() | texts)
def test_json_line_round_trip(pl: str, et: str, eid: str, ts: int, agg: str | None) -> None:
    env = Envelope(et, eid, ts, pl, agg).chained("ab" * 32)
    kind, body, ok = jsonlines.split_line(jsonlines.frame_line(env.to_json())[:-1])
    assert ok and kind == "crc"
    assert envelope_from_obj(orjson.loads(body)) == env


def test_empty_checkpoint_manifest_is_byte_identical() -> None:
    cp = checkpoint.Checkpoint("events.raftlog", 0, 0, checkpoint.EMPTY_SHA256, None, "{}")
    assert cp.to_bytes() == EMPTY_MANIFEST
    assert checkpoint.parse_manifest(orjson.loads(EMPTY_MANIFEST)) == cp


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.update(sha256="00" * 32), "does not match"),
        (lambda o: o["__lithair_native_checkpoint"].update(version=2), "unsupported checkpoint version 2"),
    ],
)
def test_tampered_manifest_is_refused(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    obj = orjson.loads(EMPTY_MANIFEST)
    mutate(obj)
    with pytest.raises(ValueError, match=reason):
        checkpoint.parse_manifest(obj)


def test_manifest_prefix_is_verified() -> None:
    cp = checkpoint.Checkpoint("events.raftlog", 3, 1, __import__("hashlib").sha256(b"abc").hexdigest(), None, "{}")
    checkpoint.verify_prefix(cp, io.BytesIO(b"abcdef"))
    with pytest.raises(ValueError, match="changed after the checkpoint"):
        checkpoint.verify_prefix(cp, io.BytesIO(b"abXdef"))
    with pytest.raises(ValueError, match="shorter than the checkpoint's offset 3"):
        checkpoint.verify_prefix(cp, io.BytesIO(b"ab"))


def test_envelope_detection() -> None:
    assert envelope_from_obj({"ProductCreated": {"id": 1}}) is None
    assert envelope_from_obj({"event_type": "A", "event_id": "x", "timestamp": True, "payload": "{}"}) is None
    assert envelope_from_obj({"event_type": "A", "event_id": "x", "timestamp": 1, "payload": "{}", "z": 2}) == Envelope(
        "A", "x", 1, "{}"
    )


def test_idempotence_key() -> None:
    assert idempotence_key("abc", "{}") == "abc"
    assert idempotence_key(None, "{}") == "json:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert short_type("my_app::models::ProductCreated") == "ProductCreated"


def test_env_prefixes() -> None:
    assert config.env_flag("X", environ={"RS_X": "TRUE"}) is True
    assert config.env_flag("X", environ={"RS_X": "1", "LT_X": "0"}) is False
    assert config.env_int("N", 7, environ={}) == 7
    with pytest.raises(ValueError, match="must be an integer"):
        config.env_int("N", 7, environ={"LT_N": "lots"})


def test_crud_semantics() -> None:
    ents: dict[str, object] = {}
    crud.apply(ents, "merge", "1", {"price": 2})  # update before create starts from the payload
    crud.apply(ents, "upsert", "1", {"id": 1, "name": "a"})
    crud.apply(ents, "merge", "1", {"price": 3})
    assert ents == {"1": {"id": 1, "name": "a", "price": 3}}
    crud.apply(ents, "delete", "1", None)
    crud.apply(ents, "delete", "1", None)
    assert ents == {}
    assert crud.split_type("OrderAdminEdit") == ("Order", "AdminEdit")
    assert crud.entity_key(None, {"id": 7}) == "7"

"""The binary frames the engine writes stay byte-identical to bincode 2 ``standard()`` (FORMATS.md 3)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from lithair_lab.formats import bincode
from lithair_lab.formats.envelope import U64_MAX, Envelope

BOUNDARIES = [0, 1, 250, 251, 2**16 - 1, 2**16, 2**32 - 1, 2**32, U64_MAX]


def spec_varint(v: int) -> bytes:
    """FORMATS.md 3, written out independently of the codec."""
    if v < 251:
        return struct.pack("<B", v)
    if v < 2**16:
        return b"\xfb" + struct.pack("<H", v)
    if v < 2**32:
        return b"\xfc" + struct.pack("<I", v)
    return b"\xfd" + struct.pack("<Q", v)


def spec_frame(env: Envelope) -> bytes:
    def s(x: str) -> bytes:
        b = x.encode()
        return spec_varint(len(b)) + b

    def o(x: str | None) -> bytes:
        return b"\x00" if x is None else b"\x01" + s(x)

    body = s(env.event_type) + s(env.event_id) + spec_varint(env.timestamp) + s(env.payload)
    body += o(env.aggregate_id) + o(env.event_hash) + o(env.previous_hash)
    return struct.pack("<Q", len(body)) + body


text = st.text(max_size=40) | st.sampled_from(["x" * 250, "é" * 126, "y" * 70_000])
envelopes = st.builds(
    Envelope,
    event_type=text,
    event_id=text,
    timestamp=st.sampled_from(BOUNDARIES) | st.integers(0, U64_MAX),
    payload=text,
    aggregate_id=st.none() | text,
    event_hash=st.none() | text,
    previous_hash=st.none() | text,
)


@settings(max_examples=150, deadline=None)
@given(envelopes)
def test_frames_match_the_spec_and_decode_back(env: Envelope) -> None:
    frame = bincode.encode_frame(env)
    assert frame == spec_frame(env)
    assert bincode.decode_body(frame[8:]) == env


def test_the_worked_frame() -> None:
    env = Envelope("T", "e1", 1700000000, "{}", None, "bb30eb09d571a54b98a48b6e9bb0b1dfd7ce2b5a1f9c741561ea8072e1579814")
    assert bincode.encode_frame(env).hex() == (
        "51000000000000000154026531fc00f15365027b7d0001406262333065623039643537316135346239386134386236653962623062"
        "316466643763653262356131663963373431353631656138303732653135373938313400"
    )

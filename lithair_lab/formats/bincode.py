"""Binary journal frames (FORMATS.md section 3): u64 LE length + bincode-2 envelope.

bincode 2 ``standard()``: varint integers, strings as varint length + UTF-8,
``Option`` as a tag byte, structs as their fields in order.
"""

from __future__ import annotations

import struct

from .envelope import U64_MAX, Envelope

LEN = struct.Struct("<Q")
FRAME_HEADER = LEN.size


class BincodeError(ValueError):
    """A frame body is not a valid bincode-2 envelope; ``pos`` is the byte within it."""

    def __init__(self, reason: str, pos: int) -> None:
        self.reason = reason
        self.pos = pos
        super().__init__(f"{reason} at byte {pos} of the frame body")


_SMALL = [bytes((v,)) for v in range(251)]  # one-byte varints, looked up (the common case)
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")
_NONE, _SOME = b"\x00", b"\x01"


def _varint(v: int) -> bytes:
    if v < 251:
        return _SMALL[v]
    if v < 2**16:
        return b"\xfb" + _U16.pack(v)
    if v < 2**32:
        return b"\xfc" + _U32.pack(v)
    return b"\xfd" + LEN.pack(v)


def encode_body(env: Envelope) -> bytes:
    """bincode-2 bytes of the 7-field envelope (extra fields cannot be stored)."""
    ts = env.timestamp
    if not 0 <= ts <= U64_MAX:
        raise ValueError(f"timestamp {ts} does not fit in u64")
    # One list, one join: the engine encodes a frame per append in binary mode.
    et, ei, pl = env.event_type.encode(), env.event_id.encode(), env.payload.encode()
    parts = [_varint(len(et)), et, _varint(len(ei)), ei, _varint(ts), _varint(len(pl)), pl]
    for opt in (env.aggregate_id, env.event_hash, env.previous_hash):
        if opt is None:
            parts.append(_NONE)
        else:
            b = opt.encode()
            parts += (_SOME, _varint(len(b)), b)
    return b"".join(parts)


def encode_frame(env: Envelope) -> bytes:
    """A whole frame: length prefix then body."""
    body = encode_body(env)
    return LEN.pack(len(body)) + body


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise BincodeError("unexpected end of frame", self.pos)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        tag = self.take(1)[0]
        if tag < 251:
            return tag
        if tag == 0xFB:
            return int(struct.unpack("<H", self.take(2))[0])
        if tag == 0xFC:
            return int(struct.unpack("<I", self.take(4))[0])
        if tag == 0xFD:
            return int(struct.unpack("<Q", self.take(8))[0])
        raise BincodeError(f"invalid varint tag 0x{tag:02x}", self.pos - 1)

    def string(self) -> str:
        start = self.pos
        n = self.varint()
        try:
            return self.take(n).decode()
        except UnicodeDecodeError as e:
            raise BincodeError(f"invalid UTF-8 in string ({e.reason})", start) from e

    def option(self) -> str | None:
        if self.pos == len(self.buf):  # Era B: trailing hash fields left out entirely
            return None
        tag = self.take(1)[0]
        if tag == 0:
            return None
        if tag == 1:
            return self.string()
        raise BincodeError(f"invalid Option tag 0x{tag:02x}", self.pos - 1)


def decode_body(body: bytes) -> Envelope:
    """Decode one frame body; Era B bodies that stop before field 6 or 7 are read leniently."""
    r = _Reader(body)
    event_type, event_id, timestamp, payload = r.string(), r.string(), r.varint(), r.string()
    aggregate_id = r.option()
    event_hash = r.option()
    previous_hash = r.option()
    if r.pos != len(body):
        raise BincodeError(f"{len(body) - r.pos} trailing bytes after the envelope", r.pos)
    return Envelope(event_type, event_id, timestamp, payload, aggregate_id, event_hash, previous_hash)

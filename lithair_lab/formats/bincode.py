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


def _varint(v: int) -> bytes:
    if v < 251:
        return bytes((v,))
    if v < 2**16:
        return b"\xfb" + struct.pack("<H", v)
    if v < 2**32:
        return b"\xfc" + struct.pack("<I", v)
    return b"\xfd" + struct.pack("<Q", v)


def _str(s: str) -> bytes:
    b = s.encode()
    return _varint(len(b)) + b


def _opt(s: str | None) -> bytes:
    return b"\x00" if s is None else b"\x01" + _str(s)


def encode_body(env: Envelope) -> bytes:
    """bincode-2 bytes of the 7-field envelope (extra fields cannot be stored)."""
    if not 0 <= env.timestamp <= U64_MAX:
        raise ValueError(f"timestamp {env.timestamp} does not fit in u64")
    return b"".join((
        _str(env.event_type), _str(env.event_id), _varint(env.timestamp), _str(env.payload),
        _opt(env.aggregate_id), _opt(env.event_hash), _opt(env.previous_hash),
    ))  # fmt: skip


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

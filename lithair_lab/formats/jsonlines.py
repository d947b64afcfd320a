"""CRC-framed JSON lines (FORMATS.md section 2): ``<crc32 8 hex>:<json>\\n``."""

from __future__ import annotations

import zlib
from typing import Literal

_HEX = frozenset(b"0123456789abcdefABCDEF")

LineKind = Literal["crc", "legacy"]


def crc_hex(data: bytes) -> bytes:
    """8 lowercase hex digits of CRC-32 (IEEE) over ``data``."""
    return b"%08x" % (zlib.crc32(data) & 0xFFFFFFFF)


def frame_line(json_bytes: bytes) -> bytes:
    """One journal line: CRC prefix, colon, the JSON bytes, newline."""
    return crc_hex(json_bytes) + b":" + json_bytes + b"\n"


def has_crc_prefix(line: bytes) -> bool:
    """A line whose 9th byte is ``:`` and first 8 are hex carries a CRC."""
    return len(line) >= 9 and line[8:9] == b":" and all(c in _HEX for c in line[:8])


def split_line(line: bytes) -> tuple[LineKind, bytes, bool]:
    """Split one line (without its newline) into (kind, json bytes, crc ok).

    Legacy lines (no CRC prefix) report ``crc ok`` as True: there is nothing to check.
    """
    if has_crc_prefix(line):
        body = line[9:]
        return "crc", body, int(line[:8], 16) == (zlib.crc32(body) & 0xFFFFFFFF)
    return "legacy", line, True

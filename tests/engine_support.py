"""Helpers for the engine tests: read a data directory back and check its invariants.

They use the shared codec only (never the engine's own replay), so a test
cannot pass because the writer and the checker share a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from lithair_lab.formats import bincode, jsonlines, layout
from lithair_lab.formats.envelope import Envelope, envelope_from_obj, event_hash


@dataclass(frozen=True)
class Stored:
    file: str
    offset: int
    env: Envelope


def read_back(directory: Path) -> list[Stored]:
    """Every record of ``.1 … .N`` then ``events.raftlog``; fails on any incomplete or damaged record."""
    out: list[Stored] = []
    for f in layout.journal_files(directory):
        if not f.exists():
            continue
        data = f.read_bytes()
        if not data:
            continue
        if b"\x00" in data[:8]:
            pos = 0
            while pos < len(data):
                (n,) = bincode.LEN.unpack_from(data, pos)
                body = data[pos + 8 : pos + 8 + n]
                assert len(body) == n, f"{f.name}: torn frame at {pos}"
                out.append(Stored(f.name, pos, bincode.decode_body(body)))
                pos += 8 + n
        else:
            assert data.endswith(b"\n"), f"{f.name}: partial last line"
            pos = 0
            for line in data.split(b"\n")[:-1]:
                kind, body, ok = jsonlines.split_line(line)
                assert kind == "crc" and ok, f"{f.name}: bad line at {pos}"
                env = envelope_from_obj(orjson.loads(body))
                assert env is not None
                out.append(Stored(f.name, pos, env))
                pos += len(line) + 1
    return out


def assert_chain(envs: list[Envelope]) -> None:
    """Every hash is right and links to the previous one."""
    prev = None
    for i, e in enumerate(envs):
        assert e.previous_hash == prev, f"record {i}: broken link"
        assert e.event_hash == event_hash(e.event_type, e.event_id, e.timestamp, e.payload, e.aggregate_id, prev), (
            f"record {i}: wrong hash"
        )
        prev = e.event_hash

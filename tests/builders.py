"""Byte-exact writers of every data-directory variant in FORMATS.md, for tests.

Everything here writes through the shared codec (``lithair_lab.formats``), so
the bytes are exactly what the format says; the worked examples of FORMATS.md
are checked against these writers in ``tests/test_frames.py``. Each builder
returns what it wrote, in replay order, so a test can compare a frame with it.

Typical use::

    from builders import era_c_dir  # tests/ is on sys.path under pytest
    written = era_c_dir(tmp_path / "shop", n=20, covered=5)
    assert ll.read(tmp_path / "shop")["event_id"].to_list() == [e.event_id for e in written.envelopes]

Vocabulary:

- ``Envelope`` (from ``lithair_lab.formats.envelope``) is one record.
- ``Written`` is what a directory builder wrote: the envelopes (or raw JSON
  texts) in replay order, and per file the byte offset of each record.
- Damage helpers (``flip_byte``, ``truncate``, ``append_bytes``) change an
  existing file in place and return what they did.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from lithair_lab.formats import bincode, jsonlines, layout
from lithair_lab.formats.checkpoint import Checkpoint
from lithair_lab.formats.envelope import Envelope

T0 = 1767225600  # 2026-01-01T00:00:00Z, the worked example's timestamp

Record = Envelope | str  # an envelope, or the text of a raw (non-envelope) JSON line


@dataclass
class Written:
    """What a builder wrote: records in replay order and where each one starts.

    ``records[i]`` is the record with ``seq == i``; ``places[i]`` is its
    ``(file name, byte offset, line or None)``.
    """

    records: list[Record] = field(default_factory=list)
    places: list[tuple[str, int, int | None]] = field(default_factory=list)

    @property
    def envelopes(self) -> list[Envelope]:
        return [r for r in self.records if isinstance(r, Envelope)]

    def extend(self, other: Written) -> None:
        self.records.extend(other.records)
        self.places.extend(other.places)


# ---------------------------------------------------------------------------
# Records


def crud_events(
    n: int,
    *,
    model: str = "Product",
    era: str = "C",
    chain: bool = True,
    t0: int = T0,
    ids: int = 3,
    previous_hash: str | None = None,
) -> list[Envelope]:
    """``n`` CRUD events over ``ids`` entities: a Created per entity, then Updated, with a Deleted now and then.

    Era B events carry the full Rust path (``my_app::models::ProductCreated``)
    and repeating ``event_id``s (``Model:Op:pk``, the same on every update);
    Era C ids are unique. ``chain`` links hashes from ``previous_hash``.
    """
    out: list[Envelope] = []
    prev = previous_hash
    for i in range(n):
        key = f"{model[0].lower()}{i % ids}"
        op = "Created" if i < ids else ("Deleted" if i % 7 == 6 else "Updated")
        if op == "Created" and i >= ids:
            op = "Updated"
        payload = orjson.dumps({"id": key, "name": f"item {i}", "price": 1.5 + i, "stock": i % 10}).decode()
        etype = f"{model}{op}" if era != "B" else f"my_app::models::{model}{op}"
        eid = f"{model}:{op}:{key}" if era == "B" else f"{model}:{op}:{key}:{uuid.UUID(int=i + 1)}"
        env = Envelope(etype, eid, t0 + i * 60, payload, key)
        if chain:
            env = env.chained(prev)
            prev = env.event_hash
        out.append(env)
    return out


def json_lines(records: Iterable[Record], *, era: str = "C", crc: bool = True) -> bytes:
    """A JSON journal: CRC-framed (or legacy, without CRC) lines; raw texts are written as given."""
    parts = []
    for r in records:
        body = r.encode() if isinstance(r, str) else r.to_json(era=era)
        parts.append(jsonlines.frame_line(body) if crc else body + b"\n")
    return b"".join(parts)


def binary_frames(records: Iterable[Envelope], *, era: str = "C") -> bytes:
    """A binary journal: u64 LE length + bincode-2 envelope per record.

    Era B frames leave absent hash fields out entirely (6 or 5 fields), as
    upstream once wrote them.
    """
    parts = []
    for env in records:
        body = bincode.encode_body(env)
        if era == "B":
            if env.previous_hash is None:
                body = body[:-1]  # drop the None tag of field 7
                if env.event_hash is None:
                    body = body[:-1]  # and of field 6
        parts.append(bincode.LEN.pack(len(body)) + body)
    return b"".join(parts)


def unframed_binary(records: Iterable[Envelope]) -> bytes:
    """Upstream's async-writer bug: bincode bodies each followed by ``\\n``, no length."""
    return b"".join(bincode.encode_body(env) + b"\n" for env in records)


def offsets(data: bytes, *, binary: bool = False) -> list[int]:
    """Byte offset of each record of a journal written by the functions above (no blank lines)."""
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        if binary:
            (n,) = bincode.LEN.unpack_from(data, pos)
            pos += bincode.FRAME_HEADER + n
        else:
            pos = data.index(b"\n", pos) + 1
    return out


# ---------------------------------------------------------------------------
# Files of a directory


def meta_bytes(*, created_at: int = T0, optimized: bool = False) -> bytes:
    """``meta.raftmeta``: pretty JSON (2-space indent), upstream's form."""
    meta: dict[str, object] = {
        "created_at": created_at,
        "description": "Lithair event-sourced database",
        "format": "lithair-db-optimized" if optimized else "lithair-db",
        "version": "1.0.0",
    }
    if optimized:
        meta["optimizations"] = {"binary": True}
    return orjson.dumps(meta, option=orjson.OPT_INDENT_2)


def checkpoint_bytes(journal: str, journal_bytes: bytes, covered: Sequence[Envelope], state: object) -> bytes:
    """An Era C checkpoint manifest covering the first ``len(covered)`` records of ``journal``."""
    offset = len(json_lines(covered)) if covered else 0
    cp = Checkpoint(
        journal=journal,
        offset=offset,
        covered_events=len(covered),
        prefix_sha256=hashlib.sha256(journal_bytes[:offset]).hexdigest(),
        last_event_hash=covered[-1].event_hash if covered else None,
        state=orjson.dumps(state).decode(),
    )
    return cp.to_bytes()


def dedup_bytes(envs: Iterable[Envelope]) -> bytes:
    """``dedup.raftids``: one raw ``event_id`` per line."""
    return b"".join(e.event_id.encode() + b"\n" for e in envs)


def _journal(directory: Path, name: str, data: bytes, records: Sequence[Record], *, binary: bool = False) -> Written:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    offs = offsets(data, binary=binary)
    return Written(list(records), [(name, o, None if binary else i + 1) for i, o in enumerate(offs)])


# ---------------------------------------------------------------------------
# Whole directories, one per era / variant


def era_a_dir(directory: Path, n: int = 6) -> Written:
    """Era A: raw event JSON lines, no envelope, no CRC (``{"ProductCreated":{...}}`` and ``{"type":...}``)."""
    raws = [
        orjson.dumps({"ProductCreated": {"id": i, "name": f"p{i}"}}).decode()
        if i % 2 == 0
        else orjson.dumps({"type": "ProductUpdated", "id": i - 1, "stock": i}).decode()
        for i in range(n)
    ]
    return _journal(directory, layout.ACTIVE, json_lines(raws, crc=False), raws)


def era_b_dir(directory: Path, n: int = 12, *, segments: int = 2, crc: bool = True) -> Written:
    """Era B: full Rust paths, hash keys omitted (no chain), repeating ids, rotated ``.1 … .N`` + active.

    ``segments`` rotated files are written (``.1`` oldest), then the active
    file; records are spread evenly. Also writes ``meta.raftmeta`` and ``dedup.raftids``.
    """
    envs = crud_events(n, era="B", chain=False)
    written = Written()
    per = max(1, n // (segments + 1))
    names = [f"{layout.ACTIVE}.{k}" for k in range(1, segments + 1)] + [layout.ACTIVE]
    for k, name in enumerate(names):
        part = envs[k * per : (k + 1) * per] if name != layout.ACTIVE else envs[k * per :]
        written.extend(_journal(directory, name, json_lines(part, era="B", crc=crc), part))
    (directory / layout.META).write_bytes(meta_bytes())
    (directory / layout.DEDUP).write_bytes(dedup_bytes(envs))
    return written


def era_c_dir(directory: Path, n: int = 10, *, covered: int = 4, stale: bool = True) -> Written:
    """Era C: a checkpoint selecting a ``native-journal-<uuid>.raftlog``, plus stale leftovers.

    The checkpoint covers the first ``covered`` records (its state: the
    entities they leave). With ``stale``, an old ``events.raftlog`` and a
    ``native-snapshot-<uuid>.tmp`` lie beside it; neither is history.
    """
    envs = crud_events(n)
    name = f"native-journal-{uuid.UUID(int=0xABC)}.raftlog"
    data = json_lines(envs)
    written = _journal(directory, name, data, envs)
    state = {"products": {e.aggregate_id: orjson.loads(e.payload) for e in envs[:covered]}}
    (directory / layout.SNAPSHOT).write_bytes(checkpoint_bytes(name, data, envs[:covered], state))
    (directory / layout.META).write_bytes(meta_bytes())
    if stale:
        (directory / layout.ACTIVE).write_bytes(json_lines(crud_events(2, t0=T0 - 10_000)))
        (directory / f"native-snapshot-{uuid.UUID(int=0xDEF)}.tmp").write_bytes(b"{")
    return written


def binary_dir(directory: Path, n: int = 8, *, era: str = "C") -> Written:
    """A binary journal (``LT_ENABLE_BINARY``): Era C frames, or lenient Era B frames without hash fields."""
    envs = crud_events(n, chain=era == "C")
    return _journal(directory, layout.ACTIVE, binary_frames(envs, era=era), envs, binary=True)


def unframed_binary_dir(directory: Path, n: int = 3) -> None:
    """A journal of newline-separated binary records (unreadable; must be reported clearly)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / layout.ACTIVE).write_bytes(unframed_binary(crud_events(n)))


def multi_file_dir(directory: Path, keys: Sequence[str] = ("p1", "p2")) -> dict[str, Written]:
    """Multi-file mode: ``global/`` and one subfolder per aggregate, each a data directory.

    Each subfolder also holds ``snapshot.raftsnap`` as ``<crc32 hex>:<pretty JSON>``.
    Returns what was written per subfolder name (the ``store`` column when
    ``directory`` itself is scanned; ``<dir name>/<sub>`` from its parent).
    """
    out = {}
    for k, sub in enumerate(["global", *keys]):
        envs = crud_events(3 + k, t0=T0 + 1000 * k)
        d = directory / sub
        out[sub] = _journal(d, layout.ACTIVE, json_lines(envs), envs)
        pretty = orjson.dumps({sub: {"count": len(envs)}}, option=orjson.OPT_INDENT_2)
        (d / "snapshot.raftsnap").write_bytes(jsonlines.crc_hex(pretty) + b":" + pretty)
    return out


def parent_dir(directory: Path) -> dict[str, Written]:
    """A directory of several stores (``products``: Era C JSON; ``users``: binary)."""
    products = crud_events(5, model="Product")
    users = crud_events(4, model="User")
    return {
        "products": _journal(directory / "products", layout.ACTIVE, json_lines(products), products),
        "users": _journal(directory / "users", layout.ACTIVE, binary_frames(users), users, binary=True),
    }


# ---------------------------------------------------------------------------
# Damage


def flip_byte(path: Path, offset: int, mask: int = 0x01) -> bytes:
    """XOR one byte of a file in place; returns the file's bytes before the change."""
    data = path.read_bytes()
    changed = bytearray(data)
    changed[offset] ^= mask
    path.write_bytes(bytes(changed))
    return data


def truncate(path: Path, length: int) -> bytes:
    """Cut a file to ``length`` bytes; returns the bytes cut off."""
    data = path.read_bytes()
    path.write_bytes(data[:length])
    return data[length:]


def append_bytes(path: Path, data: bytes) -> int:
    """Append raw bytes to a file; returns the offset they start at."""
    with path.open("ab") as f:
        start = f.tell()
        f.write(data)
    return start

"""Reading a data directory back on open: records of each journal, torn tails, damage.

Record iteration only: the bytes of each record are decoded by the shared codec
(:mod:`lithair_lab.formats.jsonlines`, :mod:`~lithair_lab.formats.bincode`,
:mod:`~lithair_lab.formats.envelope`). Memory stays flat: files are streamed.

A *torn tail* is the last record of the active journal cut short by a crash
(a last line without its newline, a frame running past the end of the file).
It was never acknowledged, so open cuts it off, after copying the cut bytes to
a side file named ``torn-<journal>-at-<offset>-<UTC time>.bytes`` (a name no
reader takes for a journal). Damage *inside* a journal is never cut: it stops
the open with a :class:`~lithair_lab.errors.DamageError`, unless the caller
passes ``on_damage="report"``, which leaves the bytes in place, skips them
in the replay and lists them in ``Store.damage``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from ..errors import DamageError, FormatError
from ..formats import bincode, jsonlines
from ..formats.envelope import BATCH_FIELD, Envelope, envelope_from_obj

Encoding = Literal["json", "binary"]
# BATCH_FIELD: a journal that ends on a record whose count is not 0 ends inside a
# batch cut short by a crash; open treats that unfinished batch as a torn tail.
BATCH_INTENT = ".lithair_lab.batch"
"""Binary frames have no room for :data:`BATCH_FIELD`: before a binary batch is
written, this file records ``<journal> <inode> <start> <end>``, the byte range the
batch will take in that very file (fsynced first when the mode fsyncs). A
journal found ending strictly inside that range ends inside the batch: open
cuts it aside from ``start``."""
_INTENT_SIZE = 160  # one fixed-size record, rewritten in place with one pwrite
MAX_FRAME = 64 * 1024 * 1024 + 64 * 1024
"""A length prefix above this cannot be a record we or upstream wrote: damage, not a torn tail."""

OPEN_ANYWAY = (
    "Open anyway with `open_store(path, on_damage=\"report\")`: the damaged bytes stay where they are,"
    " are skipped in the replay and are listed in `Store.damage`; nothing is deleted."
)


@dataclass(frozen=True, slots=True)
class Record:
    """One whole record of a journal; ``env`` is None for a raw (non-envelope) line."""

    offset: int
    end: int
    line: int | None
    env: Envelope | None


@dataclass(frozen=True, slots=True)
class Damage:
    """A damaged record skipped with ``on_damage="report"``."""

    file: str
    offset: int
    line: int | None
    kind: str
    detail: str


def detect_encoding(path: Path) -> Encoding | None:
    """``json`` or ``binary`` from a journal's first bytes; None for an empty or missing file.

    Raises
    ------
    FormatError
        When the first bytes are neither a JSON line nor a length-prefixed frame
        (e.g. upstream's unframed ``bytes + \\n`` binary, which no one can read back).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return None
    if not head:
        return None
    if len(head) >= 8 and bincode.LEN.unpack(head[:8])[0] <= MAX_FRAME:
        return "binary"  # a plausible u64 LE length prefix: its high bytes are NUL, which JSON text never has
    if len(head) < 8 and b"\x00" in head:
        return "binary"  # a torn first frame, cut inside its length prefix
    if jsonlines.has_crc_prefix(head[:9]) or head.lstrip()[:1] in (b"{", b"["):
        return "json"
    if len(head) < 9 and all(c in b"0123456789abcdef" for c in head):
        return "json"  # a torn first line, cut inside its CRC prefix
    msg = (
        f"does not start like a Lithair journal (first bytes {head[:16]!r}): neither a JSON line nor a"
        " length-prefixed binary frame\n\nUpstream's async writer once wrote unframed binary (`bytes + \\n`),"
        " which cannot be read back; anything else is not a Lithair journal."
    )
    raise FormatError(path, msg)


class JournalReader:
    """Stream the whole records of one journal file, from ``start`` (a record boundary).

    After iteration, ``torn_at`` is the offset where a torn tail begins (None
    when the file ends on a record boundary) and ``damage`` lists records
    skipped under ``on_damage="report"``. With ``tail_is_torn=False`` (rotated
    segments, which were closed cleanly) an incomplete last record is damage.
    """

    def __init__(
        self,
        path: Path,
        encoding: Encoding,
        *,
        start: int = 0,
        on_damage: Literal["raise", "report"] = "raise",
        tail_is_torn: bool = True,
        whole_batches: bool = False,
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.start = start
        self.on_damage = on_damage
        self.tail_is_torn = tail_is_torn
        self.whole_batches = whole_batches
        self.torn_at: int | None = None
        self.end = start
        self.damage: list[Damage] = []

    def __iter__(self) -> Iterator[Record]:
        if not self.path.exists():
            return iter(())
        records = self._json() if self.encoding == "json" else self._binary()
        return self._batched(records) if self.whole_batches else records

    def _batched(self, records: Iterator[Record]) -> Iterator[Record]:
        """Hold back the records of a batch until its last one is read (see :data:`BATCH_FIELD`)."""
        held: list[Record] = []
        for rec in records:
            left = rec.env.extra.get(BATCH_FIELD) if rec.env is not None else None
            if isinstance(left, int) and not isinstance(left, bool) and left > 0:
                held.append(rec)
                continue
            if held:
                yield from held
                held.clear()
            yield rec
        if held:  # the file ends inside a batch; a torn record after it is cut from here too
            self.torn_at = held[0].offset

    def _damaged(self, offset: int, line: int | None, kind: str, detail: str) -> None:
        if line is not None and self.start:
            line += _count_lines(self.path, self.start)
        if self.on_damage == "raise":
            raise DamageError(self.path, offset, kind, detail, line=line, hint=OPEN_ANYWAY)
        self.damage.append(Damage(self.path.name, offset, line, kind, detail))

    def _torn(self, offset: int, line: int | None, kind: str, detail: str) -> None:
        if self.tail_is_torn:
            self.torn_at = offset
        else:
            self._damaged(offset, line, kind, detail + " in a rotated segment, which should end on a whole record")


    def _json(self) -> Iterator[Record]:
        # Line numbers are counted from ``start``; the lines before it are counted
        # only if a message needs them (a checkpoint may cover gigabytes).
        offset, line_no = self.start, 1
        with open(self.path, "rb") as f:
            f.seek(offset)
            for raw in f:
                end = offset + len(raw)
                if not raw.endswith(b"\n"):
                    self._torn(offset, line_no, "torn_tail", f"last line has no newline ({len(raw)} bytes)")
                    break
                line = raw[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.strip():
                    rec = self._decode_line(line, offset, line_no, end)
                    if rec is not None:
                        yield rec
                offset, line_no = end, line_no + 1
                self.end = end

    def _decode_line(self, line: bytes, offset: int, line_no: int, end: int) -> Record | None:
        kind, body, ok = jsonlines.split_line(line)
        if not ok:
            self._damaged(offset, line_no, "bad_crc", f"CRC prefix {line[:8].decode()} does not match the line")
            return None
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            try:
                body.decode()
            except UnicodeDecodeError:
                self._damaged(offset, line_no, "bad_utf8", "the line is not valid UTF-8")
                return None
            self._damaged(offset, line_no, "bad_json", str(e))
            return None
        return Record(offset, end, line_no, envelope_from_obj(obj))

    def _binary(self) -> Iterator[Record]:
        offset = self.start
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            f.seek(offset)
            while offset < size:
                head = f.read(bincode.FRAME_HEADER)
                if len(head) < bincode.FRAME_HEADER:
                    self._torn(offset, None, "torn_frame", f"{len(head)} bytes left, shorter than a length prefix")
                    return
                (n,) = bincode.LEN.unpack(head)
                if n > MAX_FRAME:
                    self._damaged(offset, None, "bad_frame", f"length prefix {n} is larger than any record")
                    return  # no way to find the next frame boundary
                body = f.read(n)
                end = offset + bincode.FRAME_HEADER + n
                if len(body) < n:
                    self._torn(offset, None, "torn_frame", f"frame of {n} bytes runs past the end of the file")
                    return
                try:
                    env: Envelope | None = bincode.decode_body(body)
                except bincode.BincodeError as e:
                    self._damaged(offset, None, "bad_frame", str(e))
                    env = None
                if env is not None:
                    yield Record(offset, end, None, env)
                offset = end
                self.end = end


def cut_tail(path: Path, at: int) -> Path:
    """Move the bytes of ``path`` from ``at`` to its end into a side file, then truncate.

    The side file is written and fsynced before the journal is truncated, so a
    crash in between loses nothing. Returns the side file's path.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    side = path.with_name(f"torn-{path.name}-at-{at}-{stamp}.bytes")
    n = 0
    while side.exists():
        n += 1
        side = path.with_name(f"torn-{path.name}-at-{at}-{stamp}-{n}.bytes")
    with open(path, "rb") as f:
        f.seek(at)
        cut = f.read()
    with open(side, "xb") as out:
        out.write(cut)
        out.flush()
        os.fsync(out.fileno())
    fsync_dir(path.parent)
    with open(path, "r+b") as f:
        f.truncate(at)
        f.flush()
        os.fsync(f.fileno())
    return side


def write_batch_intent(directory: Path, journal: str, inode: int, start: int, end: int, *, sync: bool) -> None:
    """Record that bytes ``start..end`` of ``journal`` (file ``inode``) are about to be written as one batch."""
    _write_intent(directory, f"{journal} {inode} {start} {end}", sync=sync)


def clear_batch_intent(directory: Path) -> None:
    """Forget the last batch's range (the journal it names is being replaced or was repaired)."""
    if (directory / BATCH_INTENT).exists():
        _write_intent(directory, "", sync=True)


def unfinished_batch(directory: Path, journal: Path) -> int | None:
    """Where an unfinished binary batch starts in ``journal`` (see :data:`BATCH_INTENT`), or None."""
    try:
        fields = (directory / BATCH_INTENT).read_bytes().split()
    except FileNotFoundError:
        return None
    if len(fields) != 4 or fields[0].decode(errors="replace") != journal.name or not journal.exists():
        return None
    st = journal.stat()
    inode, start, end = (int(f) for f in fields[1:])
    return start if st.st_ino == inode and start < st.st_size < end else None


def _write_intent(directory: Path, text: str, *, sync: bool) -> None:
    fd = os.open(directory / BATCH_INTENT, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, text.encode().ljust(_INTENT_SIZE - 1) + b"\n", 0)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename or a new file in it survives a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _count_lines(path: Path, end: int) -> int:
    """Newlines in the first ``end`` bytes of ``path`` (read in chunks)."""
    n = 0
    with open(path, "rb") as f:
        while end > 0 and (chunk := f.read(min(end, 1 << 20))):
            n += chunk.count(b"\n")
            end -= len(chunk)
    return n

"""Reading a data directory back on open: records of each journal, torn tails, damage.

Record decoding is not done here: every journal is read by the one decoder of
the format, :func:`lithair_lab.formats.batch.read_journal` (chunked, memory
flat, native when built). This module turns its frames into envelopes for
the replay and decides what the engine does with what it reports.

A *torn tail* is the last record of the active journal cut short by a crash
(a last line without its newline, a frame running past the end of the file),
or an ``append_many`` batch the file ends inside (:data:`BATCH_FIELD`). It was
never acknowledged, so open cuts it off, after copying the cut bytes to a side
file named ``torn-<journal>-at-<offset>-<UTC time>.bytes`` (a name no reader
takes for a journal). Damage *inside* a journal is never cut: it stops the open
with a :class:`~lithair_lab.errors.DamageError`, unless the caller passes
``on_damage="report"``, which leaves the bytes in place, skips them in the
replay and lists them in ``Store.damage``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import polars as pl

from ..errors import DamageError, FormatError
from ..formats import batch, bincode, jsonlines
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
_TORN = frozenset({batch.TORN_TAIL, batch.FRAME_PAST_EOF})
MAX_FRAME = 64 * 1024 * 1024 + 64 * 1024
"""A length prefix above this cannot be a record we or upstream wrote: damage, not a torn tail."""
"""Damage kinds of the decoder that mean "the file ends inside a record"."""

OPEN_ANYWAY = (
    "Open anyway with `open_store(path, on_damage=\"report\")`: the damaged bytes stay where they are,"
    " are skipped in the replay and are listed in `Store.damage`; nothing is deleted."
)


@dataclass(frozen=True, slots=True)
class Damage:
    """A damaged record skipped with ``on_damage="report"``."""

    file: str
    offset: int
    line: int | None
    kind: str
    detail: str


def detect_encoding(path: Path) -> Encoding | None:
    """``json`` or ``binary`` from a journal's first bytes (the decoder's own test); None for an
    empty or missing file.

    Raises
    ------
    FormatError
        When the file holds upstream's unframed ``bytes + \\n`` binary, which no one can read back.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(batch.HEAD_SIZE)
    except FileNotFoundError:
        return None
    found = batch.detect_encoding(head)
    if found == "unframed_binary":
        msg = (
            f"does not start like a Lithair journal (first bytes {head[:16]!r}): binary records without"
            " length prefixes\n\nUpstream's async writer once wrote unframed binary (`bytes + \\n`),"
            " which cannot be read back."
        )
        raise FormatError(path, msg)
    return None if found == "empty" else found  # type: ignore[return-value]


class JournalReader:
    """The envelopes of one journal file from ``start`` (a record boundary), for the replay:
    an :class:`Envelope`, or None for a raw (non-envelope) record.

    After iteration, ``damage`` lists records skipped under ``on_damage="report"``
    and ``torn_at`` is where a torn tail begins (None when the file ends on a
    whole record, or a whole batch when ``active``). Records from ``torn_at`` on
    may already have been yielded (the decoder streams the file and the end is
    known last): the caller cuts the tail and replays again. With
    ``active=False`` (rotated segments, closed cleanly) a torn end is damage.
    """

    def __init__(
        self,
        path: Path,
        *,
        start: int = 0,
        on_damage: Literal["raise", "report"] = "raise",
        active: bool = True,
    ) -> None:
        self.path = path
        self.start = start
        self.on_damage = on_damage
        self.active = active
        self.torn_at: int | None = None
        self.damage: list[Damage] = []
        self._offsets: list[pl.Series] = []  # record offsets, to find where an unfinished batch starts

    def __iter__(self) -> Iterator[Envelope | None]:
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        unterminated = self._unterminated_line(size)
        torn: list[int] = [] if unterminated is None else [unterminated]
        for b in batch.read_journal(self.path, start=self.start):
            damage = b.damage
            if damage.height:
                for off, line, kind, detail in damage.select("offset", "line", "kind", "detail").iter_rows():
                    if kind == batch.FRAME_PAST_EOF and self._impossible_length(off):
                        self._damaged(off, line, "bad_frame", f"length prefix larger than any record ({detail})")
                    elif kind in _TORN and self.active:
                        torn.append(off)
                    elif kind in _TORN:
                        self._damaged(off, line, kind, f"{detail} in a rotated segment, which should end on a whole record")
                    else:
                        self._damaged(off, line, kind, detail)
            records = b.records
            if records.height:
                if self.active:
                    self._offsets.append(records.get_column("offset"))
                yield from self._envelopes(records)
        if torn:
            self.torn_at = self._batch_start(min(torn)) if self.active else min(torn)

    def _unterminated_line(self, size: int) -> int | None:
        """Where the file's last line starts when the file does not end with a newline (JSON only):
        a torn tail whatever it holds, since the engine writes each line with its newline at once."""
        if not self.active or size <= self.start or detect_encoding(self.path) != "json":
            return None
        with open(self.path, "rb") as f:
            pos = size
            while pos > self.start:
                step = min(1 << 16, pos - self.start)
                f.seek(pos - step)
                chunk = f.read(step)
                if pos == size and chunk.endswith(b"\n"):
                    return None
                nl = chunk.rfind(b"\n")
                if nl != -1:
                    return pos - step + nl + 1
                pos -= step
        return self.start

    def _impossible_length(self, offset: int) -> bool:
        """A frame whose length prefix exceeds :data:`MAX_FRAME` was never a record: damage, not a torn tail."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            head = f.read(bincode.FRAME_HEADER)
        return len(head) == bincode.FRAME_HEADER and bincode.LEN.unpack(head)[0] > MAX_FRAME

    def _batch_start(self, cut: int) -> int:
        """``cut``, or the start of the ``append_many`` batch whose records end just before it
        (their :data:`BATCH_FIELD` counts, read back with the reference codec)."""
        if detect_encoding(self.path) != "json":
            return cut  # binary batches are found by their intent record (BATCH_INTENT)
        offsets = [o for part in reversed(self._offsets) for o in reversed(part.to_list()) if o < cut]
        with open(self.path, "rb") as f:
            for off in offsets:
                f.seek(off)
                left = _batch_left(f.readline())
                if not left:
                    break
                cut = off
        return cut

    def _envelopes(self, records: pl.DataFrame) -> Iterator[Envelope | None]:
        cols = records.select(
            "offset", "record_kind", "event_type", "event_id",
            pl.col("timestamp").dt.epoch("s"), "payload", "aggregate_id", "event_hash", "previous_hash",
        ).iter_rows()  # fmt: skip
        new = tuple.__new__
        for off, kind, et, eid, ts, payload, agg, eh, ph in cols:
            if kind != "envelope":
                yield None
            elif ts is None:  # seconds beyond a datetime's range: read the record itself for the exact integer
                yield self._reference(off)
            else:
                yield new(Envelope, (et, eid, ts, payload, agg, eh, ph, {}))

    def _reference(self, offset: int) -> Envelope | None:
        with open(self.path, "rb") as f:
            f.seek(offset)
            if detect_encoding(self.path) == "binary":
                (n,) = bincode.LEN.unpack(f.read(bincode.FRAME_HEADER))
                return bincode.decode_body(f.read(n))
            _, body, _ = jsonlines.split_line(f.readline().rstrip(b"\r\n"))
            return envelope_from_obj(orjson.loads(body))

    def _damaged(self, offset: int, line: int | None, kind: str, detail: str) -> None:
        if line is not None and self.start:
            line += _count_lines(self.path, self.start)  # lines were counted from `start`
        if self.on_damage == "raise":
            raise DamageError(self.path, offset, kind, detail, line=line, hint=OPEN_ANYWAY)
        self.damage.append(Damage(self.path.name, offset, line, kind, detail))


def _batch_left(raw: bytes) -> int:
    """The :data:`BATCH_FIELD` count of a JSON record line (0 when absent or not a count)."""
    _, body, _ = jsonlines.split_line(raw.rstrip(b"\r\n"))
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    left = obj.get(BATCH_FIELD) if isinstance(obj, dict) else None
    return left if isinstance(left, int) and not isinstance(left, bool) and left > 0 else 0


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

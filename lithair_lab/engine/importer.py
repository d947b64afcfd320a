"""Import: write a new data directory holding given records exactly as they were.

Appending re-checks every event against the idempotence index, so a history
whose ids repeat (Era B CRUD logs reuse ``Model:Op:pk``, FORMATS.md 2) cannot
be rewritten through :meth:`Store.append_many`. The rule (exactly-once applies
to *new* appends; reading an old log loses no record) is kept here instead:
every record is written, repeated ids included; ``dedup.raftids`` holds each id
once, so a later append of any imported id is refused.

What is written is the Era C form of FORMATS.md 9: ``event_type``,
``event_id``, ``timestamp``, the payload string and ``aggregate_id`` as given,
extra envelope fields kept in JSON journals (binary frames cannot hold them), a
fresh hash chain, raw (non-envelope) records as CRC-framed lines (JSON journals
only), ``dedup.raftids`` with its digest cache, ``meta.raftmeta`` and a
checkpoint of the folded state, so opening the result replays nothing.

Crash safety: everything is built in a hidden sibling directory
(``.<name>.import-<id>``) and renamed to the target only once it is complete and
fsynced, so the target is either absent (or still empty) or whole. A sibling
left by a killed import is removed by the next import into the same target.
Memory stays flat in the history's length: records are encoded and written
a batch at a time; what grows is the state and 16 bytes per distinct id.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from ..errors import LithairLabError, StoreLockedError
from ..formats import bincode, checkpoint, layout
from ..formats.envelope import BATCH_FIELD, U64_MAX, Envelope, encode_line, event_hash
from ..formats.jsonlines import frame_line
from . import dedup
from .config import StoreConfig
from .dedup import DedupIndex
from .lock import LOCK_NAME, DirectoryLock
from .recovery import fsync_dir
from .reducers import Reducer, ReducerRegistry, ReplayState
from .store import _META, _publish

BATCH = 10_000
"""Records encoded and written at a time by :func:`import_records`."""
_TMP_TAG = ".import-"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A raw (non-envelope) history record: its JSON text, kept as a line of its own."""

    text: str


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote.

    Attributes
    ----------
    path
        The new data directory.
    records
        History records written (envelopes and raw records).
    raw
        Raw (non-envelope) records among them.
    ids
        Distinct idempotence keys (lines of ``dedup.raftids``).
    repeated
        Envelopes whose ``event_id`` an earlier record already had (kept as records).
    segments
        Rotated segments ``events.raftlog.1 … .N`` written.
    bytes
        Journal bytes written, all files.
    seconds
        Wall-clock duration.
    """

    path: Path
    records: int
    raw: int
    ids: int
    repeated: int
    segments: int
    bytes: int
    seconds: float


class Importer:
    """Build a new data directory from records given in order; use as a context manager.

    :meth:`add` takes records (:class:`~lithair_lab.formats.envelope.Envelope`
    or :class:`RawRecord`) a batch at a time; :meth:`finish` publishes the
    directory. Leaving the ``with`` block without :meth:`finish` (or by an
    exception) removes the half-built directory and leaves the target as it was.

    Parameters
    ----------
    into
        The new data directory: it must not exist, or be an empty directory.
    reducers
        Custom reducers for the checkpoint's state (give the same to
        ``open_store`` later), as for :func:`~lithair_lab.open_store`.
    snapshot
        Publish a checkpoint of the folded state (default). Without it, opening
        the directory replays the whole journal.
    binary, hash_chain, max_log_file_size, dedup_persist
        As for :func:`~lithair_lab.open_store` (``LT_``/``RS_`` variables
        apply the same way). Other ``open_store`` options (durability mode,
        buffers) do not change what an import writes and are accepted and ignored.

    Raises
    ------
    LithairLabError
        When ``into`` exists and is not an empty directory (nothing is written).
    StoreLockedError
        When another import is building the same target right now.

    Examples
    --------
    >>> with Importer(tmp / "copy") as imp:  # doctest: +SKIP
    ...     imp.add([Envelope("UserCreated", "User:Created:u1", 1767225600, '{"id":"u1"}', "u1")])
    ...     report = imp.finish()
    """

    def __init__(
        self,
        into: str | os.PathLike[str],
        *,
        reducers: ReducerRegistry | dict[str, Reducer] | None = None,
        snapshot: bool = True,
        binary: bool | None = None,
        hash_chain: bool | None = None,
        max_log_file_size: int | None = None,
        dedup_persist: bool | None = None,
        **_ignored: Any,
    ) -> None:
        self.target = Path(into)
        _refuse_non_empty(self.target)
        config = StoreConfig.resolve(
            binary=binary, hash_chain=hash_chain, max_log_file_size=max_log_file_size, dedup_persist=dedup_persist
        )
        self._binary = bool(config.binary)
        self._chain = config.hash_chain
        self._rotate_at = config.max_log_file_size
        self._keep_ids = config.dedup_persist
        self._snapshot = snapshot
        self._state = ReplayState(ReducerRegistry.coerce(reducers))
        self._index = DedupIndex()
        self._prev: str | None = None
        self._records = self._raw = self._repeated = self._bytes = 0
        self._active_records = self._active_size = self._segments = 0
        self._active_sha = hashlib.sha256()
        self._t0 = time.perf_counter()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(self.target)
        self._tmp = self.target.parent / f".{self.target.name}{_TMP_TAG}{uuid.uuid4().hex[:12]}"
        self._tmp.mkdir()
        self._lock: DirectoryLock | None = None
        self._journal: Any = None
        self._ids: Any = None
        self._done = False
        try:
            self._lock = DirectoryLock(self._tmp)
            self._journal = open(self._tmp / layout.ACTIVE, "wb")  # noqa: SIM115 (closed in finish/abort)
            self._ids = open(self._tmp / layout.DEDUP, "wb") if self._keep_ids else None  # noqa: SIM115
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------ public

    @property
    def binary(self) -> bool:
        """True when the journal is written as bincode frames."""
        return self._binary

    def add(self, records: Iterable[Envelope | RawRecord]) -> None:
        """Write one batch of records, in order, after those already added.

        Raises
        ------
        LithairLabError
            A record cannot be stored (an ``event_id`` with a line break, a
            string that is not valid Unicode, a timestamp outside u64, a raw
            record in a binary journal); the record is named by its position.
        """
        if self._done:
            raise LithairLabError(f"the import into `{self.target}` is finished")
        try:
            self._add(records)
        except BaseException:
            self.abort()
            raise

    def _add(self, records: Iterable[Envelope | RawRecord]) -> None:
        # One pass, locals only: this loop runs once per record of the history.
        out: list[bytes] = []
        ids: list[bytes] = []
        size, n, prev = self._active_size, self._records, self._prev
        apply, add_id, chain, binary, rotate_at = self._state.apply, self._index.add, self._chain, self._binary, self._rotate_at
        for rec in records:
            if type(rec) is RawRecord:
                if binary:
                    raise self._bad(n, "a raw (non-envelope) record cannot be stored in a binary journal")
                data = frame_line(rec.text.encode())
                env: Envelope | None = None  # no hash: the chain runs on past it, as `verify_chain` reads it
                self._raw += 1
            else:
                et, key, ts, payload, agg, _, _, extra = rec
                if type(ts) is not int or not 0 <= ts <= U64_MAX:  # bool is not int here
                    raise self._bad(n, f"timestamp {ts!r} is not an integer of u64 Unix seconds")
                if type(key) is not str or "\n" in key or "\r" in key:
                    raise self._bad(n, f"`event_id` {key!r} is not a string without line breaks (`dedup.raftids` stores one id per line)")
                if type(payload) is not str:  # a str subclass (RawJSON) would not decode for the state
                    payload = str(payload)
                try:
                    if binary or (extra and extra.keys() - {BATCH_FIELD}):
                        h = event_hash(et, key, ts, payload, agg, prev) if chain else None
                        env = Envelope(et, key, ts, payload, agg, h, prev, _without_batch(extra))
                        data = bincode.encode_frame(env) if binary else frame_line(env.to_json())
                    else:  # the common case: the engine's own line encoder (hash and line in one call)
                        data, h = encode_line(et, key, ts, payload, agg, prev, chain, 0)
                        env = Envelope(et, key, ts, payload, agg, h, prev)
                except (UnicodeEncodeError, TypeError, AttributeError, ValueError) as e:
                    raise self._bad(n, f"cannot be encoded ({e})") from None
                prev = h  # always None without a chain
                if add_id(key):
                    ids.append(key.encode() + b"\n")
                else:
                    self._repeated += 1
            if rotate_at and size and size + len(data) > rotate_at:
                self._flush(out)
                out = []
                self._rotate()
                size = 0
            out.append(data)
            size += len(data)
            apply(env)
            n += 1
            if len(out) >= BATCH:
                self._flush(out)
                out = []
        self._flush(out)
        self._records, self._prev = n, prev  # a failure above aborts the whole import: no partial count to keep
        if self._ids is not None and ids:
            self._ids.write(b"".join(ids))

    def finish(self) -> ImportReport:
        """Checkpoint, fsync, and rename the directory into place; returns the report.

        Raises
        ------
        LithairLabError
            When the target became non-empty meanwhile (the built directory is removed).
        """
        if self._done:
            raise LithairLabError(f"the import into `{self.target}` is finished")
        self._done = True
        try:
            self._close_files(sync=True)
            meta = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **_META, "writer": "lithair_lab"}
            _publish(self._tmp / layout.META, orjson.dumps(meta, option=orjson.OPT_INDENT_2))
            if self._ids is not None:
                dedup.save_cache(self._index, self._tmp / layout.DEDUP)
            if self._snapshot:
                cp = checkpoint.Checkpoint(
                    journal=layout.ACTIVE,
                    offset=self._active_size,
                    covered_events=self._active_records,
                    prefix_sha256=self._active_sha.hexdigest(),
                    last_event_hash=self._prev,
                    state=self._state.to_json(segments=self._segments),
                )
                _publish(self._tmp / layout.SNAPSHOT, cp.to_bytes())
            fsync_dir(self._tmp)
            try:
                os.rename(self._tmp, self.target)  # atomic; replaces an empty directory, refuses a non-empty one
            except OSError as e:
                msg = f"`{self.target}` is no longer empty ({e.strerror}); the imported directory was discarded"
                raise LithairLabError(msg) from None
            fsync_dir(self.target.parent)
        except BaseException:
            self._abort()
            raise
        self._release()
        return ImportReport(
            self.target, self._records, self._raw, len(self._index), self._repeated, self._segments,
            self._bytes, time.perf_counter() - self._t0,
        )  # fmt: skip

    def abort(self) -> None:
        """Discard the half-built directory; the target is left as it was (idempotent)."""
        if not self._done:
            self._done = True
            self._abort()

    def __enter__(self) -> Importer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    # --------------------------------------------------------------- internals

    def _bad(self, n: int, what: str) -> LithairLabError:
        return LithairLabError(f"record {n} of the import into `{self.target}`: {what}\n\nnothing was written to `{self.target}`")

    def _flush(self, out: list[bytes]) -> None:
        if not out:
            return
        data = b"".join(out)
        self._journal.write(data)
        self._active_sha.update(data)
        self._active_size += len(data)
        self._active_records += len(out)
        self._bytes += len(data)

    def _rotate(self) -> None:
        """Close the active journal as the next segment (``.1`` oldest) and start a new one."""
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._journal.close()
        self._segments += 1
        os.rename(self._tmp / layout.ACTIVE, self._tmp / f"{layout.ACTIVE}.{self._segments}")
        self._journal = open(self._tmp / layout.ACTIVE, "wb")  # noqa: SIM115
        self._active_sha = hashlib.sha256()
        self._active_size = self._active_records = 0

    def _close_files(self, *, sync: bool) -> None:
        for f in (self._journal, self._ids):
            if f is not None and not f.closed:
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
                f.close()

    def _abort(self) -> None:
        try:
            self._close_files(sync=False)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def import_records(
    into: str | os.PathLike[str],
    records: Iterable[Envelope | RawRecord],
    *,
    batch: int = BATCH,
    **options: Any,
) -> ImportReport:
    """Write ``records`` (in order) as a new data directory; see :class:`Importer`.

    ``records`` is consumed ``batch`` at a time, so a generator over a long
    history keeps memory flat. ``options`` are :class:`Importer`'s keywords.

    Examples
    --------
    >>> report = import_records("copy", envelopes)  # doctest: +SKIP
    >>> open_store("copy").event_count == report.records  # doctest: +SKIP
    True
    """
    with Importer(into, **options) as imp:
        for chunk in _chunks(records, batch):
            imp.add(chunk)
        return imp.finish()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _without_batch(extra: dict[str, Any]) -> dict[str, Any]:
    """Extra fields less the source's batch marks: they mean nothing here (an import is whole or absent)."""
    return {k: v for k, v in extra.items() if k != BATCH_FIELD} if BATCH_FIELD in extra else extra


def _refuse_non_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        msg = f"`{target}` already exists and is not empty\n\nimport (or restore) into a new directory; nothing was written"
        raise LithairLabError(msg)


def _remove_leftovers(target: Path) -> None:
    """Remove the half-built siblings of imports into ``target`` that were killed (their lock is free)."""
    prefix = f".{target.name}{_TMP_TAG}"
    for d in target.parent.iterdir():
        if not (d.name.startswith(prefix) and d.is_dir()):
            continue
        if not (d / LOCK_NAME).exists() and time.time() - d.stat().st_mtime < 60:
            continue  # made this instant by an import that has not locked it yet
        try:
            lock = DirectoryLock(d)
        except (StoreLockedError, OSError):
            continue  # an import running now; its rename or ours will find the target taken
        try:
            shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release()


__all__ = ["BATCH", "ImportReport", "Importer", "RawRecord", "import_records"]

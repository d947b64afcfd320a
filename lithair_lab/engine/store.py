"""The engine: one writer per data directory, in the Era C form of FORMATS.md section 9.

:func:`open_store` opens (or creates) a directory, recovers it (checkpoint,
replay of what follows it, torn-tail repair, dedup index) and returns a
:class:`Store` that appends events exactly once, keeps the in-memory state up
to date, rotates the journal and publishes checkpoints.

Internals that other engine modules build on (compaction): every append goes
through ``_lock`` (one write lock); ``_switch_journal`` is the one place that
changes the file being written; ``_write_checkpoint`` publishes a checkpoint
of the current state for the current journal.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import orjson

from ..errors import CheckpointError, DuplicateEventError, FormatError, InvalidEventError, LithairLabError
from ..formats import bincode, checkpoint, layout
from ..formats.envelope import U64_MAX, Envelope, RawJSON, encode_line, event_hash
from .config import StoreConfig
from . import dedup
from .dedup import DedupIndex, DigestBatch
from .lock import LOCK_NAME, DirectoryLock
from .recovery import (
    Damage,
    Encoding,
    JournalReader,
    clear_batch_intent,
    cut_tail,
    detect_encoding,
    fsync_dir,
    unfinished_batch,
    write_batch_intent,
)
from .reducers import Reducer, ReducerRegistry, ReplayState
from .writers import AppendFile, Writer, make_writer

if TYPE_CHECKING:
    from datetime import datetime

    from .compaction import AutoCompaction, CompactionReport
    from .policies import CompactionPolicy

OnDamage = Literal["raise", "report"]
_EVENT_KEYS = frozenset({"event_type", "payload", "event_id", "aggregate_id", "timestamp"})
PRESERVED_SNAPSHOT = "state.raftsnap.before-lithair_lab"
"""Prefix of the copy kept of a ``state.raftsnap`` this engine did not write, before its first checkpoint."""

_new_envelope = tuple.__new__  # Envelope is a tuple: build it without the keyword-friendly __new__
_META = {"description": "Lithair event-sourced database", "format": "lithair-db", "version": "1.0.0"}


def open_store(
    path: str | os.PathLike[str],
    *,
    mode: Literal["sync", "async", "group"] | None = None,
    fsync: bool | None = None,
    binary: bool | None = None,
    hash_chain: bool | None = None,
    max_log_file_size: int | None = None,
    reducers: ReducerRegistry | dict[str, Reducer] | None = None,
    on_damage: OnDamage = "raise",
    dedup_persist: bool | None = None,
    buffer_size: int | None = None,
    max_events_buffer: int | None = None,
    flush_interval_ms: int | None = None,
    max_batch: int | None = None,
) -> Store:
    """Open (or create) a data directory for writing.

    Every option left as None falls back to the upstream environment variable
    (``LT_`` or ``RS_`` prefix, FORMATS.md section 7), then to its default.

    Parameters
    ----------
    path
        The data directory; created when missing. A file, or a directory that
        holds files but none of Lithair's, is refused.
    mode
        ``"sync"`` (default): the record is written before ``append`` returns.
        ``"async"`` (default when ``LT_OPT_PERSIST`` is set): a writer thread
        writes buffered records every ``flush_interval_ms`` or when
        ``max_events_buffer`` / ``buffer_size`` is reached. ``"group"``:
        ``append`` returns once its record's batch is fsynced; concurrent
        appenders share fsyncs. See the README's durability table for what a
        crash can lose in each.
    fsync
        fsync after each write (sync) or batch (async); ``LT_FSYNC_ON_APPEND``.
        Always on in group mode.
    binary
        Write length-prefixed bincode frames (``LT_ENABLE_BINARY``). None
        follows the existing journal (a file never mixes encodings), else JSON.
    hash_chain
        Chain events by SHA-256 (default on; ``LT_DISABLE_HASH_CHAIN``).
    max_log_file_size
        Rotate ``events.raftlog`` to ``events.raftlog.N`` past this many bytes;
        0 (default) never rotates. No segment is ever deleted.
    reducers
        Custom reducers by event type, as a :class:`ReducerRegistry` or a
        ``{event_type: reducer}`` dict, used for the replay and for appends;
        CRUD types without one use the built-in semantics.
    on_damage
        ``"raise"`` (default): damage inside a journal stops the open with a
        :class:`~lithair_lab.errors.DamageError`. ``"report"``: open anyway;
        damaged records stay in place untouched, are skipped by the replay and
        are listed in :attr:`Store.damage`.
    dedup_persist
        Keep ``dedup.raftids`` (``LT_DEDUP_PERSIST``, default on). Off, the
        idempotence set is rebuilt from the whole journal on open.
    buffer_size, max_events_buffer, flush_interval_ms
        The async writer's thresholds (``LT_BUFFER_SIZE``, ``LT_MAX_EVENTS_BUFFER``,
        ``LT_FLUSH_INTERVAL_MS``).
    max_batch
        At most this many events per write (and fsync) of the async or group
        writer thread (``LT_EVENT_MAX_BATCH``); 0 (default): bounded by the
        thresholds above only. One ``append_many`` batch is never split.
        ``LT_DISABLE_INDEX`` is accepted and ignored: ``events.raftidx`` is
        never written (see :attr:`Store.stale_index`).

    Returns
    -------
    Store
        Holding the directory's write lock until :meth:`Store.close`.

    Notes
    -----
    Journals are read with Polars (:func:`lithair_lab.formats.batch.read_journal`),
    whose thread pool does not survive ``os.fork()``: a process forked from one
    that already read a journal hangs here. Start writer processes with
    ``spawn`` or ``forkserver`` (``multiprocessing.get_context``).

    Raises
    ------
    StoreLockedError
        Another process (or another open store) writes this directory.
    DamageError
        A record inside a journal is damaged (with ``on_damage="raise"``).
    CheckpointError
        ``state.raftsnap`` holds a checkpoint that fails verification.
    FormatError
        The path is a file, or not a Lithair data directory.

    Examples
    --------
    >>> import lithair_lab as ll
    >>> with ll.open_store(tmp / "shop") as store:  # doctest: +SKIP
    ...     store.append("ProductCreated", {"id": "p1", "name": "Pen"}, aggregate_id="p1")
    ...     store.state["Product"]["p1"]
    {'id': 'p1', 'name': 'Pen'}
    """
    if on_damage not in ("raise", "report"):
        msg = f"`on_damage` must be 'raise' or 'report', got {on_damage!r}"
        raise ValueError(msg)
    config = StoreConfig.resolve(
        mode=mode,
        fsync=fsync,
        binary=binary,
        hash_chain=hash_chain,
        max_log_file_size=max_log_file_size,
        dedup_persist=dedup_persist,
        buffer_size=buffer_size,
        max_events_buffer=max_events_buffer,
        flush_interval_ms=flush_interval_ms,
        max_batch=max_batch,
    )
    return Store(Path(path), config, ReducerRegistry.coerce(reducers), on_damage=on_damage)


class Store:
    """An open data directory: append events, read the live state, snapshot, close.

    Made by :func:`open_store`. Thread-safe: many threads may append at once.
    """

    def __init__(
        self, path: Path, config: StoreConfig, registry: ReducerRegistry, *, on_damage: OnDamage = "raise"
    ) -> None:
        self.path = path
        self.config = config
        self.damage: list[Damage] = []
        """Damaged records skipped at open (only with ``on_damage="report"``)."""
        self.torn_tails: list[Path] = []
        """Side files that received torn tails cut at open."""
        self.stale_index: Path | None = None
        """An upstream ``events.raftidx`` found at open, else None. This engine never
        writes that derived index, so it goes stale after the first append; no reader
        here uses it (it is left in place; delete it or let upstream rebuild it)."""
        self.legacy_snapshot: Any = None
        """A legacy raw snapshot found in ``state.raftsnap`` (it covers no records), else None."""
        self._lock = threading.Lock()
        self._closed = True
        self._failed: BaseException | None = None
        self._compaction_lock = threading.Lock()  # one compaction at a time (engine/compaction.py)
        self._compacting = False  # rotation waits while a compaction runs
        self._auto: AutoCompaction | None = None
        _check_directory(path)
        path.mkdir(parents=True, exist_ok=True)
        self._dirlock = DirectoryLock(path)
        try:
            self._recover(registry, on_damage)
        except BaseException:
            self._dirlock.release()
            raise
        self._closed = False

    # ------------------------------------------------------------------ open

    def _recover(self, registry: ReducerRegistry, on_damage: OnDamage) -> None:
        cp = self._load_manifest()
        state: ReplayState | None = None
        cp_file: Path | None = None
        if cp is not None:
            obj = orjson.loads(cp.state)
            cp_file = self._covered_file(cp, obj)
            self._verify_prefix(cp, cp_file)
            if ReplayState.is_ours(obj):
                try:
                    state = ReplayState.from_obj(obj, registry)
                except ValueError as e:
                    raise CheckpointError(self.path / layout.SNAPSHOT, str(e)) from None
        # Which files make up the history (FORMATS.md 4), and where the replay starts:
        # after the checkpoint when its state is ours, else from the very beginning
        # (a legacy snapshot or an upstream checkpoint state cannot seed our state).
        native = cp is not None and cp.journal != layout.ACTIVE
        self._active_name = cp.journal if cp is not None and native else layout.ACTIVE
        files = layout.journal_files(self.path, self._active_name if native else None)
        start_file, start, start_records = 0, 0, 0
        self._from_checkpoint = state is not None
        if state is not None and cp is not None and cp_file is not None:
            start_file, start, start_records = files.index(cp_file), cp.offset, cp.covered_events
        self._checkpointed = cp is not None
        self._snapshot_is_ours = self._from_checkpoint
        active = files[-1]
        if detect_encoding(active) == "binary" and (at := unfinished_batch(self.path, active)) is not None:
            self.torn_tails.append(cut_tail(active, at))  # a binary batch cut short (JSON ones carry BATCH_FIELD)
        clear_batch_intent(self.path)
        while True:
            # The replay streams each file and learns of a torn tail at its end: then the tail
            # is cut aside and the replay runs again (only after a crash), so no record of it
            # reaches the state.
            if state is None:
                state = ReplayState(registry)
            self._prev = cp.last_event_hash if self._from_checkpoint and cp is not None else None
            self.damage = []
            tail_ids = DigestBatch()
            active_records = start_records if start_file == len(files) - 1 else 0
            torn = self._replay(state, files, start_file, start, tail_ids, on_damage)
            if torn is None:
                break
            self.torn_tails.append(cut_tail(active, torn))
            state = ReplayState.from_obj(orjson.loads(cp.state), registry) if self._from_checkpoint and cp else None
        self._state = state
        active_records += self._replayed_active
        self._active_records = active_records
        self._encoding = self._choose_encoding(active, files)
        self._dedup = self._load_dedup(tail_ids, files, on_damage)
        self._write_meta_once()
        if (self.path / layout.INDEX).exists():
            self.stale_index = self.path / layout.INDEX
        journal = AppendFile(active)
        ids = AppendFile(self.path / layout.DEDUP) if self.config.dedup_persist else None
        self._writer: Writer = make_writer(journal, ids, self.config)
        # A store dropped or left open at exit still writes what it acknowledged (async buffer).
        self._finalizer = weakref.finalize(self, _abandon, self._writer, self._dirlock)
        self._active_size = journal.size
        if self._from_checkpoint and cp_file != active:
            self._write_checkpoint()  # a rotation followed the checkpoint: re-anchor it on the active file

    def _replay(
        self, state: ReplayState, files: list[Path], start_file: int, start: int, ids: DigestBatch, on_damage: OnDamage
    ) -> int | None:
        """Fold ``files[start_file:]`` (the first from byte ``start``) into ``state``; gather their ids.

        Returns where the active journal's torn tail starts (None when it has none); damage goes
        to :attr:`damage` or raises.
        """
        self._replayed_active = 0
        for i in range(start_file, len(files)):
            f = files[i]
            if detect_encoding(f) is None:
                continue
            active = i == len(files) - 1
            reader = JournalReader(f, start=start if i == start_file else 0, on_damage=on_damage, active=active)
            apply, add, count = state.apply, ids.add, 0
            prev = self._prev
            for env in reader:
                apply(env)
                count += 1
                if env is not None:  # a raw record has no hash: the chain runs on past it
                    prev = env.event_hash
                    add(env.event_id.encode())
            self._prev = prev
            if active:
                self._replayed_active = count
            self.damage.extend(reader.damage)
            if reader.torn_at is not None:
                return reader.torn_at
        return None

    def _write_meta_once(self) -> None:
        meta = self.path / layout.META
        if meta.exists():
            return
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"created_at": created, **_META, "writer": "lithair_lab"}
        _publish(meta, orjson.dumps(body, option=orjson.OPT_INDENT_2))

    def _load_manifest(self) -> checkpoint.Checkpoint | None:
        """The checkpoint in ``state.raftsnap`` with its own fields verified, or None.

        A legacy raw snapshot covers no records: it is kept in
        :attr:`legacy_snapshot` and the whole journal replays.
        """
        snap = self.path / layout.SNAPSHOT
        try:
            raw = snap.read_bytes()
        except FileNotFoundError:
            return None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            msg = (
                f"not JSON ({e}), so neither a checkpoint nor a legacy snapshot"
                "\n\nMove it aside to open the directory from its journal alone."
            )
            raise CheckpointError(snap, msg) from None
        if not checkpoint.is_manifest(obj):
            self.legacy_snapshot = obj
            return None
        try:
            return checkpoint.parse_manifest(obj)
        except ValueError as e:
            raise CheckpointError(snap, str(e)) from None

    def _covered_file(self, cp: checkpoint.Checkpoint, state: Any) -> Path:
        """The journal file whose first ``covered_events`` records the checkpoint covers.

        FORMATS.md 4: ``events.raftlog`` after every segment. Our own checkpoints
        also record how many segments they cover whole, so a rotation that
        follows a checkpoint (a crash before the re-checkpoint) is not misread.
        """
        if cp.journal != layout.ACTIVE:
            return self.path / cp.journal
        k = state.get("segments") if ReplayState.is_ours(state) else None
        if not isinstance(k, int) or isinstance(k, bool):
            return self.path / layout.ACTIVE
        segs = layout.segments(self.path)
        if not 0 <= k <= len(segs):
            msg = (
                f"checkpoint covers {k} rotated segments but {len(segs)} exist"
                "\n\nA segment is missing; restore it, or move `state.raftsnap` aside to replay what is left."
            )
            raise CheckpointError(self.path / layout.SNAPSHOT, msg)
        return segs[k] if k < len(segs) else self.path / layout.ACTIVE

    def _verify_prefix(self, cp: checkpoint.Checkpoint, journal: Path) -> None:
        snap = self.path / layout.SNAPSHOT
        hint = "\n\nThe journal changed after the checkpoint; move `state.raftsnap` aside to replay the journal alone."
        try:
            with open(journal, "rb") as f:
                checkpoint.verify_prefix(cp, f)
        except FileNotFoundError:
            msg = f"checkpoint cannot be trusted: its journal `{journal.name}` is missing{hint}"
            raise CheckpointError(snap, msg) from None
        except ValueError as e:
            raise CheckpointError(snap, f"checkpoint cannot be trusted: {e}{hint}") from None

    def _choose_encoding(self, active: Path, files: list[Path]) -> Encoding:
        existing = detect_encoding(active)
        wanted = self.config.binary
        if existing is not None:
            if wanted is not None and (existing == "binary") != wanted:
                want = "binary" if wanted else "JSON"
                msg = (
                    f"the journal is {existing}, but {want} records were asked for; one file never mixes encodings"
                    f"\n\nOpen with `binary={existing == 'binary'}` (or unset `LT_ENABLE_BINARY`)."
                )
                raise FormatError(active, msg)
            return existing
        if wanted is not None:
            return "binary" if wanted else "json"
        for f in reversed(files[:-1]):  # an empty active file after a rotation: keep the segments' encoding
            enc = detect_encoding(f)
            if enc is not None:
                return enc
        return "json"

    def _load_dedup(self, tail_ids: DigestBatch, files: list[Path], on_damage: OnDamage) -> DedupIndex:
        """The idempotence set: ``dedup.raftids`` plus the ids of the records replayed after the checkpoint."""
        ids_path = self.path / layout.DEDUP
        index = DedupIndex()
        if ids_path.exists():  # read even with dedup_persist off: it may hold ids of compacted-away events
            cached = dedup.load_cache(ids_path)
            if cached is not None:
                index.load_sorted(cached[0])
            self._read_ids(ids_path, tail_ids, start=cached[1] if cached is not None else 0)
        if self._from_checkpoint and not (self.config.dedup_persist and ids_path.exists()):
            # no durable index kept: the ids of the covered prefix are only in the journal
            for f in files:
                for env in JournalReader(f, on_damage=on_damage, active=False):
                    if env is not None:
                        tail_ids.add(env.event_id.encode())
        index.merge(tail_ids)
        return index

    def _read_ids(self, ids_path: Path, batch: DigestBatch, *, start: int = 0) -> None:
        """Stream ``dedup.raftids`` (from ``start``, a line boundary) into ``batch``; a torn last
        id is cut aside, never taken for an id."""
        rest = b""
        with open(ids_path, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 20):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    batch.add(line)
        if rest:  # its event, if written at all, is in the journal
            self.torn_tails.append(cut_tail(ids_path, ids_path.stat().st_size - len(rest)))

    # ------------------------------------------------------------- public API

    @property
    def state(self) -> dict[str, dict[str, Any]]:
        """The live state: model -> entity key -> object. Read it; do not mutate it.

        It is the store's own dict, updated by every append; copy it (or hold
        no iterator across appends from other threads) when you need a stable view.
        """
        return self._state.models

    @property
    def versions(self) -> dict[str, dict[str, list[int]]]:
        """model -> key -> ``[version_count, last_timestamp, last_seq]`` of CRUD entities."""
        return self._state.versions

    @property
    def event_count(self) -> int:
        """Records in the whole history (rotated segments included); the next event's ``seq``."""
        return self._state.events

    @property
    def last_hash(self) -> str | None:
        """``event_hash`` of the last record (None when it has none)."""
        return self._prev

    @property
    def binary(self) -> bool:
        """True when the active journal is written as bincode frames."""
        return self._encoding == "binary"

    @property
    def closed(self) -> bool:
        return self._closed

    def register(self, event_type: str, reducer: Reducer) -> None:
        """Use ``reducer`` for future events of ``event_type`` (short type).

        The replay on open only knows the reducers given to :func:`open_store`;
        pass them there so that reopening rebuilds the same state.
        """
        self._state.registry.register(event_type, reducer)

    @overload
    def append(
        self, event_type: str, payload: Any, *, event_id: str | None = ..., aggregate_id: str | None = ...,
        timestamp: int | None = ..., wait: Literal[True] = ...,
    ) -> Envelope: ...
    @overload
    def append(
        self, event_type: str, payload: Any, *, event_id: str | None = ..., aggregate_id: str | None = ...,
        timestamp: int | None = ..., wait: Literal[False],
    ) -> Pending: ...
    def append(
        self,
        event_type: str,
        payload: Any,
        *,
        event_id: str | None = None,
        aggregate_id: str | None = None,
        timestamp: int | None = None,
        wait: bool = True,
    ) -> Envelope | Pending:
        """Append one event exactly once and apply it to the state.

        Parameters
        ----------
        event_type
            A non-empty string, e.g. ``"ProductCreated"``.
        payload
            Any JSON-serializable object, serialized compactly; a
            :class:`~lithair_lab.RawJSON` string is stored verbatim. At most
            64 MiB once serialized.
        event_id
            The idempotence key (no newline). None: ``json:`` + the SHA-256 of
            the payload string, so an identical payload is a duplicate.
        aggregate_id
            The entity key, or None.
        timestamp
            Unix seconds (a non-negative integer); None: now.
        wait
            True (default): return once the record is as durable as the mode
            promises (in group mode: fsynced). False: return a
            :class:`Pending` as soon as the record is handed to the writer and
            applied to the state; call its :meth:`~Pending.wait` before
            acknowledging the event to anyone. This lets a caller that
            serializes its own writes under a lock append under that lock and
            wait outside it, so group commit can share one fsync among them.

        Returns
        -------
        Envelope or Pending
            The stored envelope, with its hash-chain fields (a :class:`Pending`
            holding it with ``wait=False``).

        Raises
        ------
        DuplicateEventError
            The idempotence key was already appended (in this process, before a
            restart, in a rotated segment, or before a compaction).
        InvalidEventError
            A bad argument; the store is unchanged and stays usable.
        """
        env, ticket = self._commit_one(self._prepare(event_type, payload, event_id, aggregate_id, timestamp))
        if not wait:
            return Pending([env], self._writer, ticket)
        self._writer.wait(ticket)
        return env

    @overload
    def append_many(self, events: Iterable[Mapping[str, Any]], *, wait: Literal[True] = ...) -> list[Envelope]: ...
    @overload
    def append_many(self, events: Iterable[Mapping[str, Any]], *, wait: Literal[False]) -> Pending: ...
    def append_many(self, events: Iterable[Mapping[str, Any]], *, wait: bool = True) -> list[Envelope] | Pending:
        """Append a batch of events, all or none: one validation, one wait for durability.

        Each event is a mapping with the keywords of :meth:`append`
        (``event_type``, ``payload``, and optionally ``event_id``,
        ``aggregate_id``, ``timestamp``). Every event is validated and checked
        for duplicates (against the store and within the batch) before any is
        written, so a bad or duplicate event raises and writes nothing. In group
        mode the call returns once the whole batch is fsynced, which is how one
        writer thread can commit many events per fsync.

        The batch is written with one ``write`` and never split by a rotation;
        in JSON journals each record but the last carries an extra field
        ``lithair_lab_batch`` (how many records of the batch follow it), so if a
        crash cuts the batch short, the next open cuts the unfinished batch
        aside like a torn tail: after a crash a batch is there whole or not at
        all. Binary frames have no room for that field: the byte range of a
        binary batch is recorded in ``.lithair_lab.batch`` before it is
        written, to the same effect.

        ``wait=False`` returns a :class:`Pending` instead, as for :meth:`append`.

        Returns
        -------
        list[Envelope] or Pending
            The stored envelopes, in order (held by a :class:`Pending` with ``wait=False``).
        """
        items = []
        for i, event in enumerate(events):
            if not isinstance(event, Mapping):
                msg = f"event {i} of the batch is a {type(event).__name__}, not a mapping of `append` keywords"
                raise InvalidEventError(msg)
            unknown = set(event) - _EVENT_KEYS
            if unknown or "event_type" not in event or "payload" not in event:
                msg = (
                    f"event {i} of the batch must have `event_type` and `payload` and only the keywords of"
                    f" `append`, got {sorted(event)}"
                )
                raise InvalidEventError(msg)
            items.append(
                self._prepare(
                    event["event_type"], event["payload"], event.get("event_id"),
                    event.get("aggregate_id"), event.get("timestamp"),
                )  # fmt: skip
            )
        pending = self._commit(items) if items else Pending([], None, 0)
        if not wait:
            return pending
        pending.wait()
        return pending.envelopes

    def _prepare(
        self, event_type: Any, payload: Any, event_id: Any, aggregate_id: Any, timestamp: Any
    ) -> tuple[str, str, str, str | None, int]:
        """Validate one event (no lock needed): ``(key, event_type, payload string, aggregate_id, timestamp)``."""
        body = _payload_string(payload, self.config.max_payload_bytes)
        # The common case in a few type checks; anything unusual gets the full checks and their messages.
        if not (
            type(event_type) is str and event_type and event_type.isascii()
            and (event_id is None or (type(event_id) is str and event_id.isascii() and "\n" not in event_id and "\r" not in event_id))
            and (aggregate_id is None or (type(aggregate_id) is str and aggregate_id.isascii()))
            and (timestamp is None or (type(timestamp) is int and 0 <= timestamp <= U64_MAX))
        ):  # fmt: skip
            _check_event(event_type, event_id, aggregate_id, timestamp)
        ts = int(time.time()) if timestamp is None else timestamp
        key = event_id if event_id else "json:" + hashlib.sha256(body.encode()).hexdigest()
        return key, event_type, body, aggregate_id, ts

    def _commit_one(self, item: tuple[str, str, str, str | None, int]) -> tuple[Envelope, int]:
        """:meth:`_commit` of one event, the hot path: no lists, no joins, no :class:`Pending`.

        Returns the stored envelope and the writer's ticket to wait for.
        """
        key, event_type, body, aggregate_id, ts = item
        with self._lock:
            if self._closed or self._failed is not None:
                self._check_open()
            if not self._dedup.add(key):
                raise DuplicateEventError(key)
            try:
                prev = self._prev if self.config.hash_chain else None
                if self._encoding == "json":
                    data, h = encode_line(event_type, key, ts, body, aggregate_id, prev, self.config.hash_chain, 0)
                    env = _new_envelope(Envelope, (event_type, key, ts, body, aggregate_id, h, prev, {}))
                else:
                    h = event_hash(event_type, key, ts, body, aggregate_id, prev) if self.config.hash_chain else None
                    env = _new_envelope(Envelope, (event_type, key, ts, body, aggregate_id, h, prev, {}))
                    data = bincode.encode_frame(env)
                rotate_at = self.config.max_log_file_size
                if rotate_at and self._active_size and self._active_size + len(data) > rotate_at:
                    self._rotate()
                ticket = self._writer.submit(data, key.encode() + b"\n", 1)
                self._prev = h
                self._active_size += len(data)
                self._active_records += 1
                self._state.apply(env)
                if self._auto is not None:
                    self._auto.poke()
            except BaseException as e:
                self._failed = e  # see _commit
                raise
        return env, ticket

    def _commit(self, items: list[tuple[str, str, str, str | None, int]]) -> Pending:
        """Dedup, chain, write and apply prepared events, in order, under the write lock."""
        with self._lock:
            self._check_open()
            if (dup := self._dedup.add_all([key for key, *_ in items])) is not None:
                raise DuplicateEventError(dup)
            chain = self.config.hash_chain
            try:
                prev = self._prev if chain else None
                # Encode the whole batch first: it is handed to the writer as one piece of bytes
                # (one write), never split by a rotation, and each of its records but the last
                # says how many follow, so open can tell a batch cut short by a crash.
                envs, records = [], []
                left = len(items)
                json = self._encoding == "json"
                for key, event_type, body, aggregate_id, ts in items:
                    left -= 1
                    if json:
                        line, h = encode_line(event_type, key, ts, body, aggregate_id, prev, chain, left)
                        env = _new_envelope(Envelope, (event_type, key, ts, body, aggregate_id, h, prev, {}))
                    else:
                        h = event_hash(event_type, key, ts, body, aggregate_id, prev) if chain else None
                        env = _new_envelope(Envelope, (event_type, key, ts, body, aggregate_id, h, prev, {}))
                        line = bincode.encode_frame(env)
                    records.append(line)
                    envs.append(env)
                    prev = h
                data = b"".join(records)
                ids = "".join([key + "\n" for key, *_ in items]).encode()
                rotate_at = self.config.max_log_file_size
                if rotate_at and self._active_size and self._active_size + len(data) > rotate_at:
                    self._rotate()
                if len(envs) > 1 and self._encoding == "binary":  # frames cannot carry BATCH_FIELD: record the range first
                    inode, end = os.fstat(self._writer.journal.fd).st_ino, self._active_size + len(data)
                    write_batch_intent(self.path, self._active_name, inode, self._active_size, end, sync=self.config.fsync)
                ticket = self._writer.submit(data, ids, len(envs))
                self._prev = prev
                self._active_size += len(data)
                self._active_records += len(envs)
                apply = self._state.apply
                for env in envs:
                    apply(env)
                if self._auto is not None:
                    self._auto.poke()  # an integer comparison; a due compaction runs in its own thread
            except BaseException as e:
                # Some records may be written, the state may be half-applied: refuse to go on
                # with a store whose memory and disk might disagree. Reopening replays the disk.
                self._failed = e
                raise
        return Pending(envs, self._writer, ticket)

    def flush(self, *, fsync: bool = False) -> None:
        """Barrier: every event appended so far is written to the journal (and fsynced when
        the mode fsyncs, or when ``fsync=True``)."""
        with self._lock:
            self._check_open()
            self._writer.drain()
            if fsync:
                self._writer.sync_all()

    def snapshot(self) -> checkpoint.Checkpoint:
        """Publish the current state as an Era C checkpoint in ``state.raftsnap``.

        A barrier first (everything appended is written and fsynced), then the
        manifest is written to a temp file, fsynced, renamed over
        ``state.raftsnap`` and the directory fsynced. Opening the store later
        starts from it and replays only what follows. A ``state.raftsnap``
        this engine did not write is kept first as
        ``state.raftsnap.before-lithair_lab-<UTC time>``.
        """
        with self._lock:
            self._check_open()
            cp = self._write_checkpoint()
            if self._writer.ids is not None:
                dedup.save_cache(self._dedup, self._writer.ids.path)  # after the barrier: every id is in the file
            return cp

    def compact(self, policy: CompactionPolicy, *, now: datetime | None = None) -> CompactionReport:
        """Compact the journal with ``policy``, safely; appends from other threads go on.

        A checkpoint of the current state is published with the new journal,
        so the state is unchanged and kept records are history only; the
        replaced files go to a backup. See :mod:`lithair_lab.engine.compaction`.

        Raises
        ------
        PolicyError
            The policy is invalid, or would lose state or forget idempotence keys.
        """
        from .compaction import compact

        return compact(self, policy, now=now)

    def auto_compact(self, policy: CompactionPolicy | None) -> AutoCompaction | None:
        """Compact in the background whenever the journal reaches ``policy``'s threshold (None: stop).

        Returns the :class:`~lithair_lab.engine.compaction.AutoCompaction`
        (its ``reports`` and ``errors``), or None.
        """
        from .compaction import AutoCompaction

        with self._lock:
            self._auto = AutoCompaction(self, policy) if policy is not None else None
            if self._auto is not None:
                self._auto.poke()
            return self._auto

    def close(self) -> None:
        """Write and fsync everything, stop the writer, release the lock (idempotent).

        A background compaction finishes first.
        """
        with self._compaction_lock:
            self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finalizer.detach()
            try:
                self._writer.close()
                self._writer.sync_all()
            finally:
                self._writer.journal.close()
                if self._writer.ids is not None:
                    self._writer.ids.close()
                self._dirlock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.config.mode}, {self.event_count} events"
        return f"<Store {str(self.path)!r} ({state})>"

    # -------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            msg = f"store `{self.path}` is closed"
            raise LithairLabError(msg)
        if self._failed is not None:
            msg = (
                f"store `{self.path}` stopped after an error during an append ({self._failed!r}); its memory and"
                " its journal may disagree\n\nClose it and open the directory again: the replay rebuilds the state"
                " from what was written."
            )
            raise LithairLabError(msg) from self._failed

    def _rotate(self) -> None:
        """Rename the active journal to the next ``events.raftlog.N`` and start a new one."""
        if self._active_name != layout.ACTIVE or self._compacting:
            return  # a native journal is never rotated (Era C has none); a compaction is copying this file
        segs = layout.segments(self.path)
        n = int(layout.SEGMENT.fullmatch(segs[-1].name).group(1)) + 1 if segs else 1  # type: ignore[union-attr]
        self._switch_journal(self.path / f"{layout.ACTIVE}.{n}")

    def _switch_journal(self, retire_to: Path) -> None:
        """The one place the written file changes: drain, fsync, rename the active
        journal to ``retire_to``, open a fresh active journal, re-checkpoint.

        Call with ``_lock`` held. A checkpoint naming ``events.raftlog`` would no
        longer match the renamed file, so one is re-published for the new
        (empty) journal when the directory has a checkpoint; a crash before that
        is recovered on open (the old checkpoint is found to match the newest segment).
        """
        active = self.path / self._active_name
        self._writer.drain()
        self._writer.sync_all()
        if retire_to.exists():
            raise FileExistsError(f"refusing to overwrite `{retire_to}`")
        os.rename(active, retire_to)
        fsync_dir(self.path)
        clear_batch_intent(self.path)  # it names the file just retired, whole by now
        old = self._writer.switch(AppendFile(active))
        old.close()
        self._active_size = 0
        self._active_records = 0
        if self._checkpointed:
            self._write_checkpoint()

    def _segment_count(self) -> int | None:
        return len(layout.segments(self.path)) if self._active_name == layout.ACTIVE else None

    def _write_checkpoint(self) -> checkpoint.Checkpoint:
        self._writer.drain()
        self._writer.sync_all()
        journal = self.path / self._active_name
        h = hashlib.sha256()
        size = 0
        with open(journal, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
        cp = checkpoint.Checkpoint(
            journal=self._active_name,
            offset=size,
            covered_events=self._active_records,
            prefix_sha256=h.hexdigest(),
            last_event_hash=self._prev,
            state=self._state.to_json(segments=self._segment_count()),
        )
        snap = self.path / layout.SNAPSHOT
        if not self._snapshot_is_ours and snap.exists():
            keep = self.path / f"{PRESERVED_SNAPSHOT}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            os.link(snap, keep)
        _publish(snap, cp.to_bytes(), tmp_name=f"native-snapshot-{uuid.uuid4()}.tmp")
        self._checkpointed = self._snapshot_is_ours = True
        return cp


class Pending:
    """Events appended with ``wait=False``: written or queued, applied to the state,
    maybe not yet as durable as the store's mode promises.

    Call :meth:`wait` before acknowledging them to anyone. Waiting is
    cheap and idempotent; in sync mode the events are already written and it
    returns at once.
    """

    __slots__ = ("envelopes", "_ticket", "_writer")

    def __init__(self, envelopes: list[Envelope], writer: Writer | None, ticket: int) -> None:
        self.envelopes = envelopes
        """The stored envelopes, in order."""
        self._writer = writer
        self._ticket = ticket

    def wait(self) -> list[Envelope]:
        """Block until the events are as durable as the mode promises; returns them.

        Raises
        ------
        OSError
            The journal writer failed before writing them (the store is stopped).
        """
        if self._writer is not None:
            self._writer.wait(self._ticket)
            self._writer = None
        return self.envelopes

    def __repr__(self) -> str:
        return f"<Pending {len(self.envelopes)} events ({'waiting' if self._writer is not None else 'done'})>"


# ------------------------------------------------------------------ helpers


def _abandon(writer: Writer, dirlock: DirectoryLock) -> None:
    """Close a store that was garbage-collected or left open at interpreter exit."""
    try:
        writer.close()
        writer.sync_all()
    finally:
        writer.journal.close()
        if writer.ids is not None:
            writer.ids.close()
        dirlock.release()


def _publish(target: Path, data: bytes, *, tmp_name: str | None = None) -> None:
    """Write ``data`` to a temp file, fsync, rename over ``target``, fsync the directory."""
    tmp = target.with_name(tmp_name or f".{target.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _check_directory(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise FormatError(path, "is a file, not a data directory\n\nGive the directory that holds `events.raftlog`.")
    if not path.is_dir():
        return
    names = [p.name for p in path.iterdir() if not p.name.startswith(".") and p.name != LOCK_NAME]
    if names and not layout.is_data_dir(path) and not any(n.startswith("torn-") for n in names):
        shown = ", ".join(f"`{n}`" for n in sorted(names)[:5])
        msg = (
            f"is not a Lithair data directory: it holds {shown}{' …' if len(names) > 5 else ''} but no"
            " `events.raftlog`, `state.raftsnap` or other Lithair file\n\nGive an empty or new directory to create a store."
        )
        raise FormatError(path, msg)


def _payload_string(payload: Any, limit: int) -> str:
    if isinstance(payload, RawJSON):
        body = str(payload)
    else:
        try:
            body = orjson.dumps(payload).decode()
        except TypeError as e:
            msg = f"`payload` is not JSON-serializable ({e})\n\nPass plain dicts, lists, strings, numbers, booleans or None, or a `RawJSON` string."
            raise InvalidEventError(msg) from None
    if len(body) > limit // 4 and len(body.encode()) > limit:
        msg = f"`payload` is {len(body.encode()):,} bytes serialized, above the {limit:,}-byte limit"
        raise InvalidEventError(msg)
    return body


def _check_event(event_type: Any, event_id: Any, aggregate_id: Any, timestamp: Any) -> None:
    if not isinstance(event_type, str) or not event_type:
        msg = f"`event_type` must be a non-empty string, got {event_type!r}"
        raise InvalidEventError(msg)
    for name, value in (("event_type", event_type), ("event_id", event_id), ("aggregate_id", aggregate_id)):
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                msg = f"`{name}` {value!r} is not valid Unicode (it holds a lone surrogate)"
                raise InvalidEventError(msg) from None
    if event_id is not None:
        if not isinstance(event_id, str):
            msg = f"`event_id` must be a string or None, got {type(event_id).__name__}"
            raise InvalidEventError(msg)
        if "\n" in event_id or "\r" in event_id:
            msg = f"`event_id` {event_id!r} contains a line break\n\n`dedup.raftids` stores one id per line."
            raise InvalidEventError(msg)
    if aggregate_id is not None and not isinstance(aggregate_id, str):
        msg = f"`aggregate_id` must be a string or None, got {type(aggregate_id).__name__}"
        raise InvalidEventError(msg)
    if timestamp is not None and (
        not isinstance(timestamp, int) or isinstance(timestamp, bool) or not 0 <= timestamp <= U64_MAX
    ):
        msg = f"`timestamp` must be a non-negative integer of Unix seconds, got {timestamp!r}"
        raise InvalidEventError(msg)


__all__ = ["Pending", "Store", "open_store"]

"""Safe compaction of a store's journal, with backups, a restore, and an automatic trigger.

One compaction is one switch between *generations* of a data directory
(FORMATS.md sections 4 and 5):

1. **Barrier** (under the store's write lock, brief): everything appended is
   written and fsynced; the generation's files, the end of the active journal,
   the state (as checkpoint JSON) and the chain anchor are noted.
2. **Rewrite** (no lock; appends go on): the generation's records are decoded
   batch by batch (:mod:`lithair_lab.formats.batch`), and of each batch only
   the columns the policy's ``retain`` expression reads are held, never the
   payloads unless it reads them beyond a keyless record's ``id`` (so memory
   follows the record count, not the journal's size); the expression picks the
   records to keep, and their exact bytes are copied to a new
   ``native-journal-<uuid4>.raftlog``, then fsynced. A policy without a
   snapshot has the kept records' payloads read again, batch by batch, to
   prove they rebuild the state.
3. **Switch** (under the lock, brief): records appended meanwhile are copied
   after them; the ids of dropped records are made durable in
   ``dedup.raftids``; the old ``state.raftsnap`` is linked into the backup; a
   checkpoint naming the new journal is published (temp file, fsync, rename
   over ``state.raftsnap``, fsync of the directory). Its ``covered_events``
   counts the retained records, so they are history only, never applied
   twice; its state is the state at the barrier; its ``last_event_hash`` is
   the chain anchor at the barrier. That rename is the atomic switch: before
   it the old generation is current, after it the new one. The writer then
   appends to the new journal.
4. **Backup** (no lock): the replaced journal files move into
   ``.compaction-backups/<generation>/``; the oldest backups beyond the
   policy's ``backups`` are removed, only now that the new state is durable.

A SIGKILL at any point leaves either the old generation (before the rename)
or the new one (after it) readable; leftovers of an interrupted compaction
(an unpublished journal, replaced files not yet moved) are never replayed
and are moved into a backup by the next compaction.

Retained records keep their original bytes (CRC, hashes), so each one still
verifies on its own; links of the hash chain across dropped records are
broken by design, and the checkpoint carries the anchor on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from ..errors import DamageError, FormatError, LithairLabWarning, PolicyError
from ..formats import checkpoint, layout
from ..formats.batch import owned, read_journal
from ..formats.envelope import Envelope
from ..formats.schema import EVENT_SCHEMA
from .lock import DirectoryLock
from .policies import ENTITY_KEY, CompactionPolicy, check_critical_types, check_policy, next_trigger, retention_mask
from .recovery import fsync_dir
from .reducers import ReplayState

if TYPE_CHECKING:
    from .store import Store

BACKUP_DIR = ".compaction-backups"
"""Backups live in this sub-directory of the store (a dot name: no reader takes it for a store)."""
BACKUP_MANIFEST = "backup.json"
Step = Callable[[str], None]
"""``on_step(name)``: called as each step of a compaction completes (tests kill the process there)."""


@dataclass(frozen=True)
class CompactionReport:
    """What one compaction did.

    Attributes
    ----------
    policy
        The policy's name.
    journal
        The new journal's file name.
    before, retained, carried
        Records in the replaced generation, kept by the policy, and appended
        during the compaction (copied after the kept ones).
    bytes_before, bytes_after
        Journal bytes of the replaced generation and of the new journal.
    backup
        The backup directory of the replaced files (None when ``backups=0``).
    seconds
        Wall-clock duration.
    locked_seconds
        The longest time the compaction held the store's write lock (appends
        wait for it): the barrier, a catch-up round, or the switch.
    """

    policy: str
    journal: str
    before: int
    retained: int
    carried: int
    bytes_before: int
    bytes_after: int
    backup: Path | None
    seconds: float
    locked_seconds: float


def _noop(_: str) -> None:
    return None


class _Held:
    """The store's write lock, timing how long each hold lasts (what an appender may wait)."""

    def __init__(self, store: Store) -> None:
        self.lock = store._lock
        self.longest = 0.0
        self._since = 0.0

    def __enter__(self) -> None:
        self.lock.acquire()
        self._since = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.longest = max(self.longest, time.perf_counter() - self._since)
        self.lock.release()


# ------------------------------------------------------------------ reading a generation

#: Columns every compaction holds per record: where its bytes are (``FILE``: the file's index in the
#: generation), and its id (for the dedup of dropped records).
FILE = "_file"
_HELD = ("offset", "event_id")


@dataclass(frozen=True)
class _Reads:
    """What a policy's ``retain`` expression reads: the columns its frame needs.

    ``columns`` is None when the expression selects columns by wildcard,
    pattern, type or position: it then gets every column. ``payload`` is
    True when it reads payloads other than through :data:`~.policies.ENTITY_KEY`.
    """

    columns: frozenset[str] | None
    payload: bool

    @staticmethod
    def of(policy: CompactionPolicy, now: datetime) -> _Reads:
        """What ``policy.retain(now=now)`` reads: nothing when it fails (:func:`retention_mask` then
        says why, before any record is read), everything when its expression cannot be walked."""
        try:
            expr = policy.retain(now=now)
        except Exception:
            return _Reads(frozenset(), False)
        try:
            return _Reads._walk(expr)
        except Exception:
            return _Reads(None, True)

    @staticmethod
    def _walk(expr: pl.Expr) -> _Reads:
        columns: set[str] = set()
        payload = False
        todo = [expr]
        while todo:
            e = todo.pop()
            if e.meta.eq(ENTITY_KEY):  # reads the payload of keyless records only, for their `id`
                columns |= {"aggregate_id", "payload"}
                continue
            if e.meta.has_multiple_outputs() or e.meta.is_regex_projection():
                return _Reads(None, True)
            roots = set(e.meta.root_names())
            children = e.meta.pop()
            unseen = roots - set().union(*(c.meta.root_names() for c in children))
            columns |= unseen  # a column itself, or inputs the expression tree does not show: read as they are
            payload |= "payload" in unseen
            todo += children
        return _Reads(frozenset(columns), payload)

    def schema(self) -> list[str]:
        """The event frame's columns the policy sees (in ``EVENT_SCHEMA`` order; ``offset`` so it has rows)."""
        return [c for c in EVENT_SCHEMA if self.columns is None or c in self.columns or c == "offset"]

    def select(self, records: pl.DataFrame) -> pl.DataFrame:
        """What is held of a batch's records: the policy's columns and :data:`_HELD`, payloads mostly dropped.

        Unless the policy reads payloads, only a keyless record's entity key is
        kept, as the payload ``{"id": key}`` (which gives :data:`ENTITY_KEY` the
        same value), so memory follows the record count, not the payload volume.
        """
        names = [c for c in self.schema() if c in records.columns]
        names += [c for c in _HELD if c not in names]
        columns = {c: owned(c) if records.schema[c] == pl.String else pl.col(c) for c in names}
        if "payload" in names and not self.payload:
            key = pl.col("payload").str.json_path_match("$.id")
            only_key = pl.struct(key.alias("id")).struct.json_encode()
            columns["payload"] = pl.when(pl.col("aggregate_id").is_null() & key.is_not_null()).then(only_key)
        return records.select(e.alias(c) for c, e in columns.items())


def _batches(files: list[Path], ends: dict[Path, int], active: Path) -> Iterator[pl.DataFrame]:
    """The generation's records, batch by batch in replay order (``RECORD_SCHEMA``), up to the barrier.

    Damage anywhere stops the compaction: rewriting would drop the damaged bytes.
    """
    for f in files:
        end = ends[f]
        if end == 0:
            continue
        # the active journal grows meanwhile: its records past the barrier are left to the switch
        for batch in read_journal(f, final=f != active):
            if batch.damage.height:
                d = batch.damage.row(0, named=True)
                raise DamageError(
                    f, d["offset"], d["kind"], d["detail"], line=d["line"],
                    hint="compaction rewrites the journal and would drop these bytes; repair or move the file first",
                )  # fmt: skip
            yield batch.records.filter(pl.col("offset") < end)
            if batch.end_offset >= end:
                break


@dataclass(frozen=True)
class _Generation:
    """What a compaction holds of the generation it replaces (never the payloads, see :meth:`_Reads.select`).

    ``frame`` has a row per record in replay order: the policy's columns,
    :data:`_HELD`, :data:`FILE` and ``end`` (where the record's bytes end: the
    next record's offset, or the file's end at the barrier).
    """

    frame: pl.DataFrame
    event_types: frozenset[str]
    binary: frozenset[str]  # the files of binary frames (a file never mixes encodings)


def _generation(files: list[Path], ends: dict[Path, int], active: Path, reads: _Reads) -> _Generation:
    parts, types, binary = [], set(), set()
    for i, f in enumerate(files):
        held = []
        for records in _batches([f], ends, active):
            types.update(records["event_type"].drop_nulls().unique().to_list())
            if (records["encoding"] == "binary").any():
                binary.add(f.name)
            held.append(reads.select(records))
        if held:
            part = pl.concat(held)
            parts.append(part.with_columns(pl.lit(i, pl.UInt16).alias(FILE), end=pl.col("offset").shift(-1).fill_null(ends[f])))
    if parts:
        frame = pl.concat(parts)
    else:
        names = [c for c in [*reads.schema(), *_HELD] if c not in ("seq", "store")]
        frame = pl.DataFrame(schema={**{c: EVENT_SCHEMA[c] for c in names}, FILE: pl.UInt16, "end": pl.UInt64})
    if "seq" in reads.schema():
        frame = frame.with_columns(seq=pl.int_range(pl.len(), dtype=pl.UInt64))
    if "store" in reads.schema():
        frame = frame.with_columns(store=pl.lit(files[0].parent.name if files else "", pl.String))
    return _Generation(frame, frozenset(types), frozenset(binary))


def _copy_ranges(out: Any, digest: Any, frame: pl.DataFrame, files: list[Path], step: Step) -> int:
    """Append the exact bytes of ``frame``'s records (columns FILE, offset, end) to ``out``."""
    written = 0
    runs = (
        frame.with_columns(gap=(pl.col("offset") != pl.col("end").shift(1)) | (pl.col(FILE) != pl.col(FILE).shift(1)))
        .with_columns(run=pl.col("gap").fill_null(True).cum_sum())
        .group_by("run", maintain_order=True)
        .agg(pl.col(FILE).first(), pl.col("offset").first(), pl.col("end").last())
    )
    by_file: dict[int, list[tuple[int, int]]] = {}
    for k, lo, hi in runs.select(FILE, "offset", "end").iter_rows():
        by_file.setdefault(k, []).append((lo, hi))
    buf = bytearray(1 << 20)  # read, not mapped: mapped pages of a big journal would all count as resident
    for k, ranges in by_file.items():
        with open(files[k], "rb", buffering=0) as f:
            for i, (lo, hi) in enumerate(ranges):
                f.seek(lo)
                while lo < hi:
                    n = f.readinto(memoryview(buf)[: min(len(buf), hi - lo)])
                    if not n:
                        raise FormatError(files[k], f"the journal ends at byte {lo}, before the record that ends at {hi}")
                    chunk = memoryview(buf)[:n]
                    out.write(chunk)
                    digest.update(chunk)
                    written += n
                    lo += n
                if i == len(ranges) // 2:
                    step("journal_partial")
    return written


# ------------------------------------------------------------------ the compaction


def _refuse_if_state_lost(
    store: Store, generation: Iterator[pl.DataFrame], held: pl.DataFrame, mask: pl.Series, state_json: str, policy: CompactionPolicy
) -> None:
    """A policy without a snapshot must rebuild the state from the kept records alone.

    The kept records are read again from the files, batch by batch (``generation``,
    the batches that ``held`` was made of, in the same order), so their payloads
    are never all in memory at once.
    """
    replay = ReplayState(store._state.registry)
    columns = ("record_kind", "event_type", "event_id", "timestamp", "payload", "aggregate_id")
    at = 0
    for records in generation:
        n = records.height
        if not records["offset"].equals(held["offset"].slice(at, n)):
            raise FormatError(records["file"][0], "the journal changed while it was compacted")
        kept = records.filter(mask.slice(at, n))
        at += n
        for kind, event_type, event_id, ts, payload, aggregate_id in kept.select(columns).iter_rows():
            env = Envelope(event_type, event_id, int(ts.timestamp()), payload, aggregate_id) if kind == "envelope" else None
            replay.apply(env)
    expected = orjson.loads(state_json)["models"]
    if replay.models == expected:
        return
    lost = []
    for model in sorted(set(expected) | set(replay.models)):
        a, b = expected.get(model, {}), replay.models.get(model, {})
        lost += [f"{model}/{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = ", ".join(f"`{k}`" for k in lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
    raise PolicyError(
        f"policy `{policy.name}` would lose state: it takes no snapshot, and the {mask.sum()} records it keeps"
        f" do not rebuild {len(lost)} entities ({shown})\n\n"
        "hint: give the policy `snapshot=True`, so a checkpoint holds the state and kept records are history only"
    )


def compact(store: Store, policy: CompactionPolicy, *, now: datetime | None = None, on_step: Step = _noop) -> CompactionReport:
    """Compact ``store``'s journal with ``policy``; see the module docstring for the steps.

    Parameters
    ----------
    store
        An open store. Appends from other threads go on during the compaction.
    policy
        What to keep (:mod:`lithair_lab.engine.policies`).
    now
        The moment the policy sees (age limits); default: the wall clock, UTC.
    on_step
        Called with each step's name as it completes (for tests).

    Returns
    -------
    CompactionReport

    Raises
    ------
    PolicyError
        The policy is malformed, names unknown critical types, or would lose
        state (``snapshot=False`` and the kept records do not rebuild it), or
        would drop records whose ids are not durable (``dedup_persist`` off).
    DamageError
        A record of the journal is damaged: compaction would drop its bytes.
    """
    policy = check_policy(policy)
    t0 = time.perf_counter()
    with store._compaction_lock:
        return _compact(store, policy, now or datetime.now(UTC), on_step, t0)


def _compact(store: Store, policy: CompactionPolicy, now: datetime, step: Step, t0: float) -> CompactionReport:
    path = store.path
    tidy_leftovers(store)
    held = _Held(store)
    # 1. barrier
    with held:
        store._check_open()
        store._writer.drain()
        store._writer.sync_all()
        native = store._active_name != layout.ACTIVE
        files = [path / store._active_name] if native else [*layout.segments(path), path / layout.ACTIVE]
        files = [f for f in files if f.exists()]
        active = path / store._active_name
        ends = {f: f.stat().st_size for f in files}
        ids_path = path / layout.DEDUP
        ids_end = ids_path.stat().st_size if ids_path.exists() else 0
        active_records = store._active_records
        state_json = store._state.to_json()
        anchor = store._prev
        store._compacting = True
    try:
        step("barrier")
        # 2. rewrite
        reads = _Reads.of(policy, now)
        gen = _generation(files, ends, active, reads)
        check_critical_types(policy, [*gen.event_types, *store._state.registry._reducers])
        frame, before, binary = gen.frame, gen.frame.height, gen.binary
        del gen  # each thing held is dropped once it has served
        mask = retention_mask(policy, frame.select(reads.schema()), now=now)
        kept = frame.select(FILE, "offset", "end").filter(mask)
        dropped_ids = frame.get_column("event_id").filter(~mask).drop_nulls()  # not the other columns too
        if not policy.snapshot and kept.height < before:
            _refuse_if_state_lost(store, _batches(files, ends, active), frame, mask, state_json, policy)
        del frame, mask
        if dropped_ids.len() and not store.config.dedup_persist:
            raise PolicyError(
                f"compacting `{path}` would forget the idempotence keys of {dropped_ids.len()} dropped records:"
                " `dedup.raftids` is off for this store\n\nhint: open the store with `dedup_persist=True`"
            )
        encodings = {"binary" if files[i].name in binary else "json" for i in kept[FILE].unique().to_list()}
        if len(encodings | {store._encoding}) > 1:
            raise FormatError(
                active,
                "the kept records and the store's appends mix JSON and binary; a journal never mixes encodings"
                "\n\nhint: open the store with the `binary=` setting of its older journals",
            )
        journal_name = f"native-journal-{uuid.uuid4()}.raftlog"
        journal = path / journal_name
        digest = hashlib.sha256()
        with open(journal, "xb") as out:
            retained_bytes = _copy_ranges(out, digest, kept, files, step)
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(path)
        step("journal_written")
        # the ids as of the barrier, and those of dropped records that dedup.raftids lacks
        missing_ids = _missing_ids(dropped_ids, ids_path, ids_end)
        del dropped_ids
        backup = _new_backup_dir(path) if policy.backups else None
        if backup is not None:
            with open(backup / layout.DEDUP, "wb") as f:
                for lines in _whole_lines(ids_path, ids_end):
                    f.write(lines)
                f.write(missing_ids)
                f.flush()
                os.fsync(f.fileno())
        # most records appended meanwhile are copied without the lock; the switch copies the rest
        carried_bytes = ends.get(active, 0)
        for _ in range(3):
            with held:
                store._writer.drain()
                upto = active.stat().st_size
            if upto - carried_bytes < 1 << 20:
                break
            carried_bytes += _carry_over(active, carried_bytes, upto, journal, sync=False)
        # 3. switch
        with held:
            store._writer.drain()
            store._writer.sync_all()
            carried_bytes += _carry_over(active, carried_bytes, active.stat().st_size, journal, sync=True)
            carried_bytes -= ends.get(active, 0)
            carried_records = store._active_records - active_records  # rotation waits while compacting
            step("carried_over")
            if missing_ids and store._writer.ids is not None:
                store._writer.ids.write(missing_ids)
            if store._writer.ids is not None:
                store._writer.ids.sync()
            step("ids_durable")
            snap = path / layout.SNAPSHOT
            if backup is not None:
                if snap.exists():
                    os.link(snap, backup / layout.SNAPSHOT)
                _write_backup_manifest(backup, policy, files, before, state_json)
                fsync_dir(backup)
            step("backed_up")
            cp = checkpoint.Checkpoint(
                journal=journal_name,
                offset=retained_bytes,
                covered_events=kept.height,
                prefix_sha256=digest.hexdigest(),
                last_event_hash=anchor,
                state=state_json,
            )
            from .store import _publish

            _publish(snap, cp.to_bytes(), tmp_name=f"native-snapshot-{uuid.uuid4()}.tmp")
            step("published")
            from .writers import AppendFile

            old = store._writer.switch(AppendFile(journal))
            old.close()
            store._active_name = journal_name
            store._active_size = retained_bytes + carried_bytes
            store._active_records = kept.height + carried_records
            store._checkpointed = store._snapshot_is_ours = True
        step("switched")
        # 4. backups
        for f in files:
            if backup is not None:
                os.rename(f, backup / f.name)
            else:
                f.unlink()
            step("moved")
        if backup is not None:
            fsync_dir(backup)
        fsync_dir(path)
        _prune_backups(path, policy.backups)
        step("pruned")
    finally:
        with store._lock:
            store._compacting = False
    return CompactionReport(
        policy=policy.name,
        journal=journal_name,
        before=before,
        retained=kept.height,
        carried=carried_records,
        bytes_before=sum(ends.values()),
        bytes_after=retained_bytes + carried_bytes,
        backup=backup,
        seconds=time.perf_counter() - t0,
        locked_seconds=held.longest,
    )


def _carry_over(active: Path, lo: int, hi: int, journal: Path, *, sync: bool) -> int:
    """Append bytes ``lo..hi`` of ``active`` (whole records written after the barrier) to ``journal``."""
    if hi <= lo:
        return 0
    with open(active, "rb") as src, open(journal, "ab") as out:
        src.seek(lo)
        copied = 0
        while chunk := src.read(min(1 << 20, hi - lo - copied)):
            out.write(chunk)
            copied += len(chunk)
        out.flush()
        if sync:
            os.fsync(out.fileno())
    return copied


def _whole_lines(path: Path, size: int, chunk: int = 16 << 20) -> Iterator[bytes]:
    """The first ``size`` bytes of ``path``, a chunk of whole lines at a time (the last may lack its newline)."""
    if size == 0:
        return
    with open(path, "rb") as f:
        carry = b""
        while size > 0:
            data = carry + f.read(min(chunk, size))
            size -= len(data) - len(carry)
            cut = data.rfind(b"\n") + 1 if size > 0 else len(data)
            if cut:
                yield data[:cut]
            carry = data[cut:]


def _missing_ids(ids: pl.Series, path: Path, size: int) -> bytes:
    """The lines to append to ``dedup.raftids`` so that it holds every id of ``ids``.

    Its first ``size`` bytes are read a chunk at a time (never all held beside the ids).
    """
    missing = ids
    for lines in _whole_lines(path, size):
        if missing.is_empty():
            break
        # split in Polars, not into a million Python objects (whose garbage collection would stall appenders);
        # an id that is not UTF-8 matches no event id, so at worst an id is written twice
        known = pl.Series("id", [lines.decode("utf-8", "replace")]).str.split("\n").explode()
        missing = missing.filter(~missing.is_in(known.implode()))
    return "".join(v + "\n" for v in missing.unique(maintain_order=True).to_list()).encode()


# ------------------------------------------------------------------ backups and restore


@dataclass(frozen=True)
class Backup:
    """One backup of a replaced generation: its directory and what ``backup.json`` says of it."""

    path: Path
    created_at: str
    policy: str
    files: tuple[str, ...]
    records: int

    @property
    def name(self) -> str:
        return self.path.name


def _new_backup_dir(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    d = path / BACKUP_DIR / f"{stamp}-{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    fsync_dir(d.parent)
    return d


def _write_backup_manifest(d: Path, policy: CompactionPolicy | str, files: list[Path], records: int, state: str) -> None:
    body = {
        "created_at": datetime.now(UTC).isoformat(),
        "policy": policy if isinstance(policy, str) else policy.name,
        "files": [f.name for f in files],
        "records": records,
        "state_events": orjson.loads(state).get("events") if state else None,
    }
    with open(d / BACKUP_MANIFEST, "wb") as f:
        f.write(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())


def list_backups(path: str | os.PathLike[str]) -> list[Backup]:
    """The backups of a data directory, oldest first.

    Examples
    --------
    >>> [b.name for b in list_backups(store_dir)]  # doctest: +SKIP
    ['20260101T120000000000Z-1a2b3c4d']
    """
    root = Path(path) / BACKUP_DIR
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            meta = orjson.loads((d / BACKUP_MANIFEST).read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            continue  # a backup interrupted before its manifest: never a restore target
        out.append(Backup(d, meta.get("created_at", ""), meta.get("policy", ""), tuple(meta.get("files", ())), meta.get("records", 0)))
    return out


def _prune_backups(path: Path, keep: int) -> None:
    backups = list_backups(path)
    for b in backups[: max(0, len(backups) - keep)]:
        shutil.rmtree(b.path)
    if backups:
        fsync_dir(path / BACKUP_DIR)


def restore_backup(path: str | os.PathLike[str], backup: str | None = None, *, on_step: Step = _noop) -> Path:
    """Roll a data directory back to one of its compaction backups.

    The directory must not be open by a store. Nothing is lost: the current
    generation (journal, ``state.raftsnap``, ``dedup.raftids``) is first kept
    as a new backup (``policy`` ``"before-restore"``), so a restore can itself
    be undone. The switch is atomic: the backup's journal files are copied in
    beside the current ones under their own names, then its ``state.raftsnap``
    is renamed into place (or, when the backup had none, the current one is
    removed, its copy being in the new backup), then ``dedup.raftids`` follows.

    Parameters
    ----------
    path
        The data directory.
    backup
        A backup's directory name (see :func:`list_backups`); default: the newest.
    on_step
        Called with each step's name as it completes (for tests).

    Returns
    -------
    Path
        The backup directory holding the generation that was current before.

    Raises
    ------
    StoreLockedError
        A store has the directory open.
    FileNotFoundError
        No such backup.
    FormatError
        A journal file of the backup has the name of a file of the current
        generation (restore it into a copy of the directory instead).
    """
    root = Path(path)
    backups = list_backups(root)
    if backup is None and not backups:
        raise FileNotFoundError(f"`{root}` has no compaction backups in `{BACKUP_DIR}/`")
    chosen = backups[-1] if backup is None else next((b for b in backups if b.name == backup), None)
    if chosen is None:
        names = ", ".join(f"`{b.name}`" for b in backups) or "none"
        raise FileNotFoundError(f"no backup `{backup}` in `{root / BACKUP_DIR}`\n\nhint: backups: {names}")
    lock = DirectoryLock(root)
    try:
        return _restore(root, chosen, on_step)
    finally:
        lock.release()


def _current_files(root: Path) -> list[Path]:
    snap = root / layout.SNAPSHOT
    journal = None
    if snap.exists():
        obj = orjson.loads(snap.read_bytes())
        if checkpoint.is_manifest(obj):
            journal = checkpoint.parse_manifest(obj).journal
    return [f for f in layout.journal_files(root, journal) if f.exists()]


def _restore(root: Path, chosen: Backup, step: Step) -> Path:
    current = _current_files(root)
    journals = [f for f in chosen.files if (chosen.path / f).exists()]
    # a file already in place (e.g. left by an interrupted restore) is no clash: it is the same file
    in_place = {f for f in journals if (root / f).exists() and _same_file(root / f, chosen.path / f)}
    clash = [f for f in journals if (root / f).exists() and f not in in_place]
    if clash:
        raise FormatError(
            root / clash[0],
            f"restoring `{chosen.name}` would overwrite `{clash[0]}`, a file of the current generation"
            "\n\nhint: copy the directory and restore into the copy, or move the file aside",
        )
    keep = _new_backup_dir(root)
    for f in current:
        os.link(f, keep / f.name)
    if (root / layout.SNAPSHOT).exists():
        os.link(root / layout.SNAPSHOT, keep / layout.SNAPSHOT)
    if (root / layout.DEDUP).exists():
        shutil.copyfile(root / layout.DEDUP, keep / layout.DEDUP)  # appended in place: a copy, not a link
    _write_backup_manifest(keep, "before-restore", current, -1, "")
    fsync_dir(keep)
    step("kept")
    for name in journals:
        if name in in_place:
            continue
        tmp = root / f".{name}.restoring"
        shutil.copyfile(chosen.path / name, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.rename(tmp, root / name)
    fsync_dir(root)
    step("copied")
    # the switch
    from .store import _publish

    if (chosen.path / layout.SNAPSHOT).exists():
        _publish(root / layout.SNAPSHOT, (chosen.path / layout.SNAPSHOT).read_bytes())
    elif (root / layout.SNAPSHOT).exists():
        (root / layout.SNAPSHOT).unlink()
        fsync_dir(root)
    step("switched")
    if (chosen.path / layout.DEDUP).exists():
        _publish(root / layout.DEDUP, (chosen.path / layout.DEDUP).read_bytes())
    step("dedup")
    for f in current:
        if f.name not in journals:
            f.unlink()  # linked into `keep` above
    fsync_dir(root)
    step("tidied")
    return keep


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file (a hard link) or hold the same bytes."""
    if os.path.samefile(a, b):
        return True
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def tidy_leftovers(store: Store) -> list[Path]:
    """Move files no generation uses (an interrupted compaction's) into a backup; return them.

    When a checkpoint selects a native journal, every other journal file is
    stale (FORMATS.md 4); a ``native-journal-*`` that no checkpoint selects
    is an unpublished compaction. Neither is ever replayed; they are kept,
    not deleted.
    """
    path = store.path
    current = store._active_name
    stale = [
        p
        for p in path.iterdir()
        if p.name != current
        and (
            layout.NATIVE_JOURNAL.fullmatch(p.name)
            or (current != layout.ACTIVE and (p.name == layout.ACTIVE or layout.SEGMENT.fullmatch(p.name)))
        )
    ]
    if not stale:
        return []
    d = _new_backup_dir(path)
    for p in stale:
        os.rename(p, d / p.name)
    _write_backup_manifest(d, "leftovers of an interrupted compaction", stale, -1, "")
    fsync_dir(d)
    fsync_dir(path)
    return stale


# ------------------------------------------------------------------ automatic trigger


def journal_records(store: Store) -> int:
    """Records in the store's current journal files (what a policy's threshold counts)."""
    return store._active_records if store._active_name != layout.ACTIVE else store.event_count


class AutoCompaction:
    """Runs ``policy`` in a background thread whenever the journal reaches its trigger.

    :meth:`poke` is what every append calls (under the store's lock): an
    integer comparison, so appends are never blocked; the compaction itself
    runs in its own thread and takes the lock only for its two brief steps.
    A policy with a ``snapshot_interval`` also gets a checkpoint published
    in the background every that many appends.
    """

    def __init__(self, store: Store, policy: CompactionPolicy) -> None:
        self.store = store
        self.policy = check_policy(policy)
        self.trigger = next_trigger(policy.threshold, 0)
        self.interval: int | None = getattr(policy, "snapshot_interval", None)
        self.last_snapshot = store.event_count
        self.reports: list[CompactionReport] = []
        self.errors: list[BaseException] = []
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Start a background compaction or checkpoint when one is due (call with the store's lock held)."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self.trigger is not None and journal_records(self.store) >= self.trigger:
            self._start(self._compact)
        elif self.interval and self.store.event_count - self.last_snapshot >= self.interval:
            self.last_snapshot = self.store.event_count
            self._start(self._snapshot)

    def _start(self, target: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=target, name="lithair_lab-compaction", daemon=True)
        self._thread.start()

    def _compact(self) -> None:
        try:
            report = compact(self.store, self.policy)
        except BaseException as e:  # kept for the caller to inspect; the store stays usable
            self.errors.append(e)
            self.trigger = None  # a failing policy is not retried on every append
            msg = (
                f"automatic compaction of `{self.store.path}` failed and is stopped: {e}"
                "\n\nhint: see `AutoCompaction.errors`; call `store.auto_compact(policy)` again once fixed"
            )
            warnings.warn(msg, LithairLabWarning, stacklevel=1)
            return
        self.reports.append(report)
        with self.store._lock:
            self.trigger = next_trigger(self.policy.threshold, report.retained)
            self.last_snapshot = self.store.event_count
            if not self.store.closed:  # appends made meanwhile may already be due for the next one
                self._thread = None
                self.poke()

    def _snapshot(self) -> None:
        try:
            self.store.snapshot()
        except BaseException as e:
            self.errors.append(e)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until no background compaction or checkpoint runs (or ``timeout`` seconds pass)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (t := self._thread) is not None and t.is_alive():
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return


__all__ = [
    "BACKUP_DIR",
    "AutoCompaction",
    "Backup",
    "CompactionReport",
    "compact",
    "journal_records",
    "list_backups",
    "restore_backup",
    "tidy_leftovers",
]

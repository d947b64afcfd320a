"""Safe compaction of a store's journal, with backups, a restore, and an automatic trigger.

One compaction is one switch between *generations* of a data directory
(FORMATS.md sections 4 and 5):

1. **Barrier** (under the store's write lock, brief): everything appended is
   written and fsynced; the generation's files, the end of the active journal,
   the state (as checkpoint JSON) and the chain anchor are noted.
2. **Rewrite** (no lock; appends go on): the generation's records are decoded
   into an event frame (:mod:`lithair_lab.formats.batch`), the policy's
   ``retain`` expression picks the records to keep, and their exact bytes are
   copied to a new ``native-journal-<uuid4>.raftlog``, then fsynced.
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
import mmap
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from ..errors import DamageError, FormatError, LithairLabWarning, PolicyError
from ..formats import checkpoint, layout
from ..formats.batch import read_journal
from ..formats.envelope import Envelope
from ..formats.schema import EVENT_SCHEMA
from .lock import DirectoryLock
from .policies import CompactionPolicy, check_critical_types, check_policy, next_trigger, retention_mask
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


def _generation_frame(files: list[Path], ends: dict[Path, int], active: Path) -> tuple[pl.DataFrame, pl.Series]:
    """The generation's records (EVENT_SCHEMA columns, replay order) and each record's byte end.

    Damage anywhere stops the compaction: rewriting would drop the damaged bytes.
    """
    frames = []
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
            frames.append(batch.records.filter(pl.col("offset") < end))
    if not frames:
        return pl.DataFrame(schema=EVENT_SCHEMA), pl.Series("end", [], dtype=pl.UInt64)
    records = pl.concat(frames)
    file_end = pl.col("file").replace_strict({f.name: ends[f] for f in files}, return_dtype=pl.UInt64)
    frame = records.with_columns(
        seq=pl.int_range(pl.len(), dtype=pl.UInt64), store=pl.lit(files[0].parent.name)
    ).select("seq", "store", *records.columns)
    end = frame.select(pl.col("offset").shift(-1).over("file").fill_null(file_end).alias("end"))["end"]
    return frame, end


def _copy_ranges(out: Any, digest: Any, frame: pl.DataFrame, directory: Path, step: Step) -> int:
    """Append the exact bytes of ``frame``'s records (columns file, offset, end) to ``out``."""
    written = 0
    runs = (
        frame.with_columns(gap=(pl.col("offset") != pl.col("end").shift(1)) | (pl.col("file") != pl.col("file").shift(1)))
        .with_columns(run=pl.col("gap").fill_null(True).cum_sum())
        .group_by("run", maintain_order=True)
        .agg(pl.col("file").first(), pl.col("offset").first(), pl.col("end").last())
    )
    by_file: dict[str, list[tuple[int, int]]] = {}
    for name, lo, hi in runs.select("file", "offset", "end").iter_rows():
        by_file.setdefault(name, []).append((lo, hi))
    for name, ranges in by_file.items():
        with open(directory / name, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for i, (lo, hi) in enumerate(ranges):
                chunk = mm[lo:hi]
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if i == len(ranges) // 2:
                    step("journal_partial")
    return written


# ------------------------------------------------------------------ the compaction


def _refuse_if_state_lost(store: Store, kept: pl.DataFrame, state_json: str, policy: CompactionPolicy) -> None:
    """A policy without a snapshot must rebuild the state from the kept records alone."""
    replay = ReplayState(store._state.registry)
    columns = ("record_kind", "event_type", "event_id", "timestamp", "payload", "aggregate_id")
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
        f"policy `{policy.name}` would lose state: it takes no snapshot, and the {kept.height} records it keeps"
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
        frame, end = _generation_frame(files, ends, active)
        known = [*frame["event_type"].drop_nulls().unique().to_list(), *store._state.registry._reducers]
        check_critical_types(policy, known)
        mask = retention_mask(policy, frame, now=now)
        kept = frame.with_columns(end=end).filter(mask)
        dropped_ids = frame.filter(~mask & pl.col("event_id").is_not_null())["event_id"]
        if not policy.snapshot and kept.height < frame.height:
            _refuse_if_state_lost(store, kept, state_json, policy)
        if dropped_ids.len() and not store.config.dedup_persist:
            raise PolicyError(
                f"compacting `{path}` would forget the idempotence keys of {dropped_ids.len()} dropped records:"
                " `dedup.raftids` is off for this store\n\nhint: open the store with `dedup_persist=True`"
            )
        encodings = {"binary" if e == "binary" else "json" for e in kept["encoding"].unique().to_list()}
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
            retained_bytes = _copy_ranges(out, digest, kept, path, step)
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(path)
        step("journal_written")
        # the ids as of the barrier, and those of dropped records that dedup.raftids lacks
        ids_at_barrier = _read_prefix(ids_path, ids_end)
        missing_ids = _missing_ids(dropped_ids, ids_at_barrier)
        backup = _new_backup_dir(path) if policy.backups else None
        if backup is not None:
            with open(backup / layout.DEDUP, "wb") as f:
                f.write(ids_at_barrier + missing_ids)
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
                _write_backup_manifest(backup, policy, files, frame.height, state_json)
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
        before=frame.height,
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


def _read_prefix(path: Path, size: int) -> bytes:
    if size == 0:
        return b""
    with open(path, "rb") as f:
        return f.read(size)


def _missing_ids(ids: pl.Series, on_disk: bytes) -> bytes:
    """The lines to append to ``dedup.raftids`` so that it holds every id of ``ids``."""
    if ids.len() == 0:
        return b""
    # split in Polars, not into a million Python objects (whose garbage collection would stall appenders);
    # an id that is not UTF-8 matches no event id, so at worst an id is written twice
    known = pl.Series("id", [on_disk.decode("utf-8", "replace")]).str.split("\n").explode()
    missing = ids.filter(~ids.is_in(known.implode())).unique(maintain_order=True)
    return "".join(v + "\n" for v in missing.to_list()).encode()


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

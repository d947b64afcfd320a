"""A history to fold: the event frame, the checkpoint to start from, the horizon.

``source`` everywhere in :mod:`lithair_lab.state` is a data directory (its
records come from :func:`lithair_lab.scan`, its checkpoint from
``state.raftsnap``) or an event frame already scanned (no checkpoint).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lithair_lab.errors import CheckpointError, HorizonError, LithairLabWarning
from lithair_lab.formats import checkpoint, layout

from .moment import UTC, Moment


Source = str | Path | pl.LazyFrame | pl.DataFrame


@dataclass(frozen=True)
class Start:
    """A checkpoint state to fold from: it stands for the first ``position`` records.

    ``time`` is the latest timestamp among those records (as far as known);
    ``complete`` says whether all of them are still in the journal.
    """

    position: int
    time: dt.datetime | None
    models: dict[str, dict[str, Any]]
    versions: dict[str, dict[str, list[Any]]]
    complete: bool

    def usable_for(self, m: Moment) -> bool:
        """True when folding from this start gives the exact state at ``m``."""
        if m.position is not None:
            return m.position >= self.position
        if m.time is not None:
            return self.time is None or m.time >= self.time
        return True


BATCH_ROWS = 65_536
"""Rows of an event frame folded at a time by :func:`History.batches`."""
READ_BYTES = 8 << 20
"""Bytes of a journal a streamed history decodes at a time (the read path keeps two such chunks ahead)."""


class History:
    """A store's records plus what is known about its beginning.

    The records are either held (``events``, from :func:`load`) or read
    again, chunk by chunk, each time they are needed (``reader``, from
    :func:`stream`): folding a streamed history holds one chunk at a time.
    A ``checkpoint`` becomes the :attr:`start` when that is first asked for,
    since finding it reads the records it covers; the first fold from the
    start then goes on with that read (:meth:`batches`), one history after
    another.
    """

    def __init__(
        self,
        events: pl.DataFrame | None,
        start: Start | None = None,
        path: Path | None = None,
        reader: Callable[[], Iterator[pl.DataFrame]] | None = None,
        *,
        checkpoint: checkpoint.Checkpoint | None = None,
    ) -> None:
        self.events, self.path, self.reader = events, path, reader
        self._start, self._checkpoint = start, checkpoint
        # The read that found the start, after what it covers. It must not refer
        # back to this object: in a reference cycle it would be finalized (its
        # reading threads joined) by whichever thread runs the garbage collector.
        self._resume: Generator[pl.DataFrame] | None = None

    @property
    def start(self) -> Start | None:
        """The checkpoint state to fold from, if any (found on first use)."""
        if self._checkpoint is not None:
            self._start, rest = _start_from_checkpoint(self, self._checkpoint)
            self._resume = rest if self.events is None else None
            self._checkpoint = None
        return self._start

    def batches(
        self, rows: int | None = None, columns: Sequence[str] | None = None, *, after_start: bool = False
    ) -> Iterator[pl.DataFrame]:
        """The records in order, in frames of ``rows`` rows (the last one shorter).

        Without ``rows``: held records in frames of :data:`BATCH_ROWS`, read
        ones as the read path decodes them. ``columns`` selects columns first
        (before small frames are gathered into one). ``after_start``: the
        caller skips the records the start covers, so the first such call
        may go on with the read that found the start instead of reading
        those records again (it then begins somewhere among them).
        """
        frames: Iterable[pl.DataFrame]
        if self.events is not None:
            frames = [self.events]
            rows = rows or BATCH_ROWS
        elif after_start and self.start is not None and self._resume is not None:
            frames, self._resume = self._resume, None
        else:
            if self._resume is not None:  # not wanted: let go of its file and threads here and now
                self._resume.close()
                self._resume = None
            assert self.reader is not None
            frames = self.reader()
        if columns is not None:
            frames = (frame.select(columns) for frame in frames)
        if rows is None:
            yield from (frame for frame in frames if frame.height)
            return
        pending: list[pl.DataFrame] = []
        count = 0
        for frame in frames:
            while frame.height:
                part = frame.slice(0, rows - count)
                frame = frame.slice(part.height)
                pending.append(part)
                count += part.height
                if count == rows:
                    yield pl.concat(pending, rechunk=True) if len(pending) > 1 else pending[0]
                    pending, count = [], 0
        if pending:
            yield pl.concat(pending, rechunk=True) if len(pending) > 1 else pending[0]

    @property
    def horizon(self) -> Moment | None:
        """The earliest moment that can still be reconstructed exactly (None: any)."""
        if self.start is None or self.start.complete:
            return None
        return Moment(time=self.start.time, position=self.start.position)

    def check_horizon(self, m: Moment) -> None:
        """Raise :class:`HorizonError` when ``m`` lies before the horizon."""
        h = self.start
        if h is None or h.complete:
            return
        where = f"`{self.path}`" if self.path is not None else "this history"
        if m.position is not None and m.position < h.position:
            msg = (
                f"position {m.position} lies before the horizon of {where}: its first {h.position} records"
                f" were compacted into a checkpoint\n\nask for `position={h.position}` or later"
            )
            raise HorizonError(msg)
        if m.time is not None and h.time is not None and m.time < h.time:
            msg = (
                f"{m.time.isoformat()} lies before the horizon of {where}, {h.time.isoformat()}: the records"
                f" before it were compacted into a checkpoint\n\nask for `at='{h.time.isoformat()}'` or later"
                " (a backup taken before compaction still holds the older history)"
            )
            raise HorizonError(msg)


def load(source: Source, *, on_damage: str = "raise") -> list[History]:
    """The histories in ``source``: one per store (data directory) it holds.

    A frame is split by its ``store`` column; a path is scanned once with
    :func:`lithair_lab.scan` (``on_damage`` as there: ``"raise"``, or
    ``"report"``, which leaves damaged records and an untrustworthy
    checkpoint out) and each store's verified checkpoint becomes its
    starting point.
    """
    if isinstance(source, pl.DataFrame | pl.LazyFrame):
        frame = source.lazy().collect()
        missing = [c for c in ("seq", "timestamp", "model", "op", "payload") if c not in frame.columns]
        if missing:
            names = ", ".join(f"`{c}`" for c in missing)
            msg = f"the frame has no column {names}\n\npass a frame from `ll.scan` (columns of `EVENT_SCHEMA`)"
            raise ValueError(msg)
        if "file" in frame.columns and frame["file"].str.starts_with("native-journal-").any():
            warnings.warn(
                "the frame holds records of a `native-journal-*` file, selected by a checkpoint that the frame"
                " does not carry; if the directory was compacted, the records before it are gone and the state"
                " misses them\n\npass the data directory itself to start from its checkpoint",
                LithairLabWarning,
                stacklevel=4,
            )
        return [History(part) for part in _by_store(frame)]
    return _stores(source, on_damage, held=True)


def stream(source: Source, *, on_damage: str = "raise") -> list[History]:
    """As :func:`load`, but a directory's records are not held: each fold reads them chunk by chunk.

    A frame is split by store as :func:`load` does (it is in memory already).
    """
    if isinstance(source, pl.DataFrame | pl.LazyFrame):
        return load(source, on_damage=on_damage)
    return _stores(source, on_damage, held=False)


def _stores(source: Source, on_damage: str, *, held: bool) -> list[History]:
    if not isinstance(source, str | Path):
        msg = f"`source` must be a data directory or an event frame, got {type(source).__name__}"
        raise TypeError(msg)
    # The read path, imported here so that state/ loads without it.
    from lithair_lab.frames.scan import scan
    from lithair_lab.frames.stores import find_stores, plan
    from lithair_lab.frames.walk import check_on_damage, walk

    path = Path(source)
    check_on_damage(on_damage)
    stores = find_stores(path)
    parts: dict[str, pl.DataFrame] = {}
    frame = None
    if held:
        frame = scan(path, on_damage=on_damage).collect()  # type: ignore[arg-type]
        parts = {str(part["store"][0]): part for part in _by_store(frame)} if frame.height else {}
    histories = []
    for store in stores:
        cp = plan(store, strict=on_damage == "raise").checkpoint
        if frame is not None:
            history = History(parts.get(store.name, frame.clear()), path=store.directory, checkpoint=cp)
        else:
            def reader(store=store) -> Iterator[pl.DataFrame]:  # noqa: ANN001 - bound per store
                return (step.records for step in walk([store], on_damage=on_damage, chunk_size=READ_BYTES))  # type: ignore[arg-type]

            history = History(None, path=store.directory, reader=reader, checkpoint=cp)
        if cp is None and (store.directory / layout.SNAPSHOT).is_file():
            _legacy_snapshot(store.directory / layout.SNAPSHOT)
        histories.append(history)
    return histories


def _by_store(frame: pl.DataFrame) -> list[pl.DataFrame]:
    if "store" not in frame.columns or frame["store"].n_unique() <= 1:
        return [frame]
    return frame.partition_by("store", maintain_order=True)


def _legacy_snapshot(snap: Path) -> None:
    try:
        obj = orjson.loads(snap.read_bytes())
    except orjson.JSONDecodeError:
        obj = "?"
    if obj not in ({}, None):
        warnings.warn(
            f"{snap}: a legacy snapshot covers no journal records and names no model; the journal is"
            " folded from its first record and the snapshot is not used",
            LithairLabWarning,
            stacklevel=4,
        )


def _start_from_checkpoint(history: History, cp: checkpoint.Checkpoint) -> tuple[Start | None, Generator[pl.DataFrame] | None]:
    """The start a checkpoint gives (None: fold the records themselves), and the rest of the read that found it."""
    snap = (history.path or Path()) / layout.SNAPSHOT
    state = orjson.loads(cp.state)
    if not (isinstance(state, dict) and state.get("format") == checkpoint.STATE_FORMAT):
        if cp.journal == layout.ACTIVE or (state in ({}, None) and cp.covered_events == 0):
            return None, None  # an upstream checkpoint over records we hold: fold the records themselves
        raise CheckpointError(
            snap,
            f"its state is not in `{checkpoint.STATE_FORMAT}` form and the records it covers were removed with the"
            f" journals before `{cp.journal}`, so no moment of this directory can be reconstructed exactly",
        )
    segments = None
    if cp.journal == layout.ACTIVE:
        segments = state["segments"] if isinstance(state.get("segments"), int) else -1
    frames = iter([history.events]) if history.events is not None else history.reader()  # type: ignore[misc]
    present, latest, after, rest = _prefix(frames, cp.covered_events, segments)
    events_covered = state.get("events")
    if not isinstance(events_covered, int) or events_covered < present:
        raise CheckpointError(snap, f"its state covers {events_covered!r} records, but {present} precede it")
    complete = events_covered == present
    times = [t for t in (latest,) if t is not None]
    for per_model in state.get("versions", {}).values():
        times.extend(dt.datetime.fromtimestamp(v[1], UTC) for v in per_model.values())
    if not complete and after is not None:
        # The compacted records' own times are gone; the next record's time
        # bounds them from above (timestamps do not go back in a Lithair log).
        times.append(after)
    return Start(
        position=present if complete else events_covered,
        time=max(times) if times else None,  # type: ignore[type-var]
        models=state.get("models", {}),
        versions=state.get("versions", {}),
        complete=complete,
    ), rest


def _prefix(
    frames: Iterator[pl.DataFrame], covered: int, segments: int | None
) -> tuple[int, dt.datetime | None, dt.datetime | None, Generator[pl.DataFrame]]:
    """The records a checkpoint covers, read from the first ones on (stops after them).

    The covered records are the first ``covered`` rows (positions, whatever
    numbering the frame's `seq` uses after them); for a checkpoint of the
    active journal (``segments`` not None: the last whole rotated segment it
    covers, -1 for all) the rows of those segments, which come first, count
    too. Returns how many of them are present, their latest timestamp, the
    timestamp of the record that follows them (None when none does), and
    the rest of ``frames`` from the frame that holds that record on.
    """
    seen, latest, after = 0, None, None
    for frame in frames:
        whole = None
        if segments is not None:
            number = frame["file"].str.extract(r"^events\.raftlog\.(\d+)$").cast(pl.Int64)
            whole = number.is_not_null() if segments < 0 else number <= segments
            covered += int(whole.sum())
        taken = frame["timestamp"].head(max(covered - seen, 0)).max()
        if taken is not None:
            latest = taken if latest is None else max(latest, taken)  # type: ignore[type-var]
        if after is None and seen + frame.height > covered:
            after = frame["timestamp"][covered - seen]
        seen += frame.height
        if after is not None and (whole is None or not whole.fill_null(value=False).all()):
            # past the covered rows, and no whole segment follows the first row that is not one
            return min(seen, covered), latest, after, _then(frame, frames)
    return min(seen, covered), latest, after, _then(None, frames)  # type: ignore[return-value]


def _then(first: pl.DataFrame | None, rest: Iterator[pl.DataFrame]) -> Generator[pl.DataFrame]:
    """``first`` (unless None), then ``rest``; closing it closes ``rest``."""
    if first is not None:
        yield first
    yield from rest

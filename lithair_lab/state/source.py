"""A history to fold: the event frame, the checkpoint to start from, the horizon.

``source`` everywhere in :mod:`lithair_lab.state` is a data directory (its
records come from :func:`lithair_lab.scan`, its checkpoint from
``state.raftsnap``) or an event frame already scanned (no checkpoint).
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lithair_lab.errors import CheckpointError, FormatError, HorizonError
from lithair_lab.formats import checkpoint, layout
from lithair_lab.formats.schema import EVENT_SCHEMA

from .moment import UTC, Moment

STATE_FORMAT = "lithair_lab.state/1"  # the engine's checkpoint state (docs/ARCHITECTURE.md)

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


@dataclass
class History:
    """An event frame plus what is known about its beginning."""

    events: pl.LazyFrame
    start: Start | None = None
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

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


def load(source: Source) -> History:
    """The history of a data directory or an event frame."""
    if isinstance(source, pl.DataFrame | pl.LazyFrame):
        missing = [c for c in ("seq", "timestamp", "model", "op", "payload") if c not in source.collect_schema()]
        if missing:
            names = ", ".join(f"`{c}`" for c in missing)
            msg = f"the frame has no column {names}\n\npass a frame from `ll.scan` (columns of `EVENT_SCHEMA`)"
            raise ValueError(msg)
        return History(source.lazy())
    if not isinstance(source, str | Path):
        msg = f"`source` must be a data directory or an event frame, got {type(source).__name__}"
        raise TypeError(msg)
    path = Path(source)
    if not path.is_dir():
        raise FormatError(path, "not a directory\n\npass a Lithair data directory or a frame from `ll.scan`")
    from lithair_lab.frames import scan  # the read path; imported late so state/ loads without it

    events = scan(path)
    history = History(events, path=path)
    snap = path / layout.SNAPSHOT
    if snap.exists():
        history.start = _start_from_snapshot(history, snap)
    return history


def _start_from_snapshot(history: History, snap: Path) -> Start | None:
    raw = snap.read_bytes()
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CheckpointError(snap, f"not JSON ({e})") from e
    if not checkpoint.is_manifest(obj):
        if obj not in ({}, None):
            warnings.warn(
                f"{snap}: a legacy snapshot covers no journal records and names no model; the journal is"
                " folded from its first record and the snapshot is not used",
                stacklevel=4,
            )
        return None
    try:
        cp = checkpoint.parse_manifest(obj)
        with (snap.parent / cp.journal).open("rb") as journal:
            checkpoint.verify_prefix(cp, journal)
    except FileNotFoundError as e:
        raise CheckpointError(snap, f"its journal `{cp.journal}` is missing") from e
    except ValueError as e:
        raise CheckpointError(snap, str(e)) from e
    state = orjson.loads(cp.state)
    covered = cp.covered_events
    if cp.journal == layout.ACTIVE:
        covered += history.events.filter(pl.col("file") != layout.ACTIVE).select(pl.len()).collect().item()
    prefix = history.events.filter(pl.col("seq") < covered).select(
        pl.len().alias("n"), pl.col("timestamp").max().alias("t")
    ).collect()
    after = history.events.filter(pl.col("seq") == covered).select("timestamp").collect()
    present, known_time = prefix["n"][0], prefix["t"][0]
    if not (isinstance(state, dict) and state.get("format") == STATE_FORMAT):
        if present == covered and cp.journal == layout.ACTIVE:
            return None  # an upstream checkpoint over a journal we hold whole: fold the records themselves
        if state in ({}, None) and covered == 0:
            return None
        raise CheckpointError(
            snap,
            f"its state is not in `{STATE_FORMAT}` form and the records it covers are not all in"
            f" `{cp.journal}`, so no moment of this directory can be reconstructed exactly",
        )
    events_covered = state.get("events")
    if not isinstance(events_covered, int) or events_covered < present:
        raise CheckpointError(snap, f"its state covers {events_covered!r} records, but {present} precede it")
    complete = events_covered == present
    times = [known_time] if known_time is not None else []
    for per_model in state.get("versions", {}).values():
        times.extend(dt.datetime.fromtimestamp(v[1], UTC) for v in per_model.values())
    if not complete and after.height:
        # The compacted records' own times are gone; the next record's time
        # bounds them from above (timestamps do not go back in a Lithair log).
        times.append(after["timestamp"][0])
    return Start(
        position=covered,
        time=max(times) if times else None,
        models=state.get("models", {}),
        versions=state.get("versions", {}),
        complete=complete,
    )


def empty_events() -> pl.DataFrame:
    """An event frame with no rows."""
    return pl.DataFrame(schema=EVENT_SCHEMA)

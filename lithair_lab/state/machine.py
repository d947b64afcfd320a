"""A time machine: one history prepared once, any moment of it in milliseconds."""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import math

import orjson

import polars as pl

from lithair_lab.engine.reducers import ReducerRegistry, ReplayState
from lithair_lab.formats.schema import EVENT_SCHEMA

from . import fold, incremental
from .at import (
    EVENT_COLUMNS,
    Reducers,
    State,
    _concat_anomalies,
    empty_state,
    fold_history,
    replay_frames,
    replay_rows,
    warn_anomalies,
)
from .diff import diff_states
from .moment import Moment, moment
from .source import History, Source, Start, stream

INDEX_STEP = 4096
"""Versions between two of the index's current sets (a query reads one set and at most this many rows)."""
MIN_EVERY = 2048
"""Fewest records between two checkpoints."""
REPLAY_CHECKPOINTS = 256
"""Checkpoints over a history with custom-reducer events (queries replay in Python from one)."""


class TimeMachine:
    """One history decoded once, indexed by version, for many ``state_at`` queries.

    Every payload is decoded when the machine is built, and every version of
    every entity (its state after each of its events) is kept with the
    position of that event and of the entity's next one. The state at a
    position is then one filter of that index (the versions current there),
    and a time is a position in a log whose timestamps do not go back (as
    Lithair writes them), so a query's cost does not depend on the moment.

    Parameters
    ----------
    source
        A data directory or an event frame from :func:`lithair_lab.scan`
        (one store).
    every
        Versions of a model between two of the index's current sets
        (default :data:`INDEX_STEP`); with custom reducers, records between
        two checkpoints of the engine's replay state (default: the history
        split in :data:`REPLAY_CHECKPOINTS` parts, at least
        :data:`MIN_EVERY` records each).
    reducers
        Custom reducers, as for :func:`state_at`. When the history holds
        events of a custom type, the machine keeps the engine's replay state
        every ``every`` records and a query replays, in Python, the records
        after the nearest one.
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).

    Attributes
    ----------
    events
        Records in the history.
    anomalies
        Every anomaly of the history (schema ``ANOMALY_SCHEMA``).
    first_time, last_time
        The earliest and latest timestamps of the history's records.

    Notes
    -----
    The frames answer as :func:`lithair_lab.state_at` does, with the same
    columns (the fields some live entity holds, in name order). Their dtypes
    are the history's, though: each model's records are decoded together
    once, so a column keeps its dtype from moment to moment and frames of
    several moments stack; a field whose JSON types mix anywhere in the
    history is JSON text at every moment. (The queries that fold, with
    custom reducers or in a history whose clock goes back, type the state
    alone, as ``state_at`` does.) In a history whose clock goes back
    (or has records without a time), the records up to a time are not a
    prefix; a time query there folds the decoded records stamped up to it,
    which costs a pass over them. ``benchmarks/bench_state.py`` measures the
    build time, the memory held and the query latency on 1,000,000 events.

    Warns
    -----
    HistoryWarning
        Once, when the history holds anomalies (all are in ``.anomalies``).

    Examples
    --------
    >>> tm = ll.TimeMachine("data/shop")  # doctest: +SKIP
    >>> tm.state_at("2026-01-06T14:03:00Z")["Product"].height  # doctest: +SKIP
    >>> tm.diff("2026-01-06", "2026-01-07")  # doctest: +SKIP
    """

    def __init__(
        self, source: Source, *, every: int | None = None, reducers: Reducers = None, on_damage: str = "raise"
    ) -> None:
        histories = stream(source, on_damage=on_damage)
        if len(histories) != 1:
            msg = (
                f"a time machine works over one store, and the source holds {len(histories)}\n\n"
                "pass one store's directory (or `scan(...)` filtered on `store`)"
            )
            raise ValueError(msg)
        self._history: History = _held(histories[0])
        self._registry = ReducerRegistry.coerce(reducers)  # type: ignore[arg-type]
        h = self._history
        start = h.start if h.start is not None and not h.start.complete else None
        events = h.events if start is None else h.events.filter(pl.col("seq") >= start.position)
        self._first = start.position if start is not None else 0
        self.events = self._first + events.height
        times = events["timestamp"]
        self.first_time: dt.datetime | None = times.min()  # type: ignore[assignment]
        self.last_time: dt.datetime | None = times.max()  # type: ignore[assignment]
        self._custom = [t for t in events["short_type"].drop_nulls().unique() if t in self._registry]
        n = max(events.height, 1)
        if self._custom:
            self._build_replay(events, start, every or max(MIN_EVERY, math.ceil(n / REPLAY_CHECKPOINTS)))
            return
        self.every = every or INDEX_STEP
        rows = fold.crud_rows(events)
        base = fold.start_rows(start.models, start.versions) if start is not None else {}
        found = list(rows.anomalies)
        # A time is a position when the clock never goes back: the records up
        # to it are then the first ones, which the version index answers.
        self._prefix_times = times.null_count() == 0 and times.is_sorted()
        self._index: dict[str, fold.VersionIndex] = {}
        self._rows: list[pl.DataFrame] = []  # undecoded, when a time is not a position
        for name in sorted({*base, *rows.models}):
            model = fold.concat_rows(base.get(name), rows.models.get(name))
            flagged = fold.flag_rows(model.rows).collect(engine=fold.ENGINE)
            found.append(fold.anomalies_of(flagged.lazy(), name).collect(engine=fold.ENGINE))
            decoded, fields = fold.decode_rows(flagged.select(*fold.ROW_SCHEMA, fold.IS_OBJ, "_valid"))
            self._index[name] = fold.VersionIndex(fold.versions(decoded, fields), fields, step=self.every)
            if not self._prefix_times:
                self._rows.append(model.rows.select(pl.lit(name).alias("model"), pl.all()))
        self._names = sorted({*self._index, *(str(m) for m in h.events["model"].drop_nulls().unique())})
        self.anomalies = _concat_anomalies(found)
        self._seqs = events["seq"].cast(pl.Int64)
        self._sorted_times = times.drop_nulls().sort()
        self._times = times
        # The index holds everything queries read; drop the raw frame.
        self._history = History(h.events.clear(), h.start, h.path)
        warn_anomalies(self.anomalies, stacklevel=3)

    def estimated_size(self, unit: str = "mb") -> float:
        """Memory held by the version index (and the replay checkpoints), as ``pl.DataFrame.estimated_size``."""
        if self._custom:
            scale = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30}[unit]
            return self._events.estimated_size(unit) + sum(len(r) for r in self._replays) / scale  # type: ignore[arg-type]
        held = sum(index.estimated_size(unit) for index in self._index.values())
        return held + sum(f.estimated_size(unit) for f in self._rows)  # type: ignore[arg-type]

    @property
    def horizon(self) -> Moment | None:
        """The earliest moment this history can reconstruct exactly (None: any)."""
        return self._history.horizon

    @property
    def models(self) -> list[str]:
        """Every model of the history."""
        return list(self._names)

    def state_at(self, at: object = None, *, position: int | None = None, seq: int | None = None) -> State:
        """The state at a moment; arguments and result as :func:`lithair_lab.state_at`."""
        m = moment(at, position=position, seq=seq)
        self._history.check_horizon(m)
        if self._custom:
            frames = self._replay(self._checkpoint_for(m), m)
        elif m.time is not None and not self._prefix_times:
            frames = self._fold_until(m.time)
        else:
            p = self._position_of(m)
            names = list(self._index)
            plans = [plan for name in names for plan in fold.finish_plans(self._index[name].at(p), self._index[name].fields)]
            done = pl.collect_all(plans, engine=fold.ENGINE)
            frames = {name: fold.finished(done[2 * i], done[2 * i + 1]) for i, name in enumerate(names)}
        state = State({name: frames.get(name, empty_state()) for name in self._names})
        state.moment = m
        limit = self.events if m.position is None else min(m.position, self.events)
        state.events = limit if m.time is None else self._count_until(m.time)
        state.anomalies = self.anomalies.filter(m.mask())
        return state

    def _position_of(self, m: Moment) -> int | None:
        """The position whose prefix is the moment (None: every record)."""
        if m.position is not None:
            return m.position
        if m.time is not None:
            i = int(self._times.search_sorted(m.time, side="right"))
            return int(self._seqs[i]) if i < len(self._seqs) else None
        return None

    def _fold_until(self, t: dt.datetime) -> dict[str, pl.DataFrame]:
        """The state at a time of a history whose clock goes back: its records stamped up to it, folded."""
        state = incremental.Fold()
        for rows in self._rows:
            state.add(rows.filter((pl.col("timestamp") <= t) | pl.col(fold.START)), anomalies=False)
        return state.state()

    def _checkpoint_for(self, m: Moment) -> int:
        """The latest replay checkpoint whose records all belong to the moment ``m``."""
        if m.position is not None:
            return max(bisect.bisect_right(self._positions, m.position) - 1, 0)
        if m.time is not None:
            for j in range(len(self._latest) - 1, 0, -1):
                latest = self._latest[j]
                if latest is not None and latest <= m.time:
                    return j
            return 0
        return len(self._positions) - 1

    def _build_replay(self, events: pl.DataFrame, start: Start | None, every: int) -> None:
        # Custom reducers are Python: the history folds once through the
        # engine's replay, keeping the state every `every` records as compact
        # JSON; a query replays at most `every` records from one of them.
        self.every = every
        self._index, self._decoded = {}, {}
        self._events = events.select(EVENT_COLUMNS)
        replay = ReplayState(self._registry)
        if start is not None:
            replay.models, replay.versions = copy.deepcopy(start.models), copy.deepcopy(start.versions)
        prefix_max = self._events["timestamp"].cum_max()
        self._sorted_times = self._events["timestamp"].drop_nulls().sort()
        self._positions, self._latest, self._replays = [], [], []
        offset = 0
        while True:
            p = self._first + offset
            self._positions.append(p)
            self._latest.append(prefix_max[offset - 1] if offset else None)
            self._replays.append(orjson.dumps({"models": replay.models, "versions": replay.versions}))
            if offset >= self._events.height:
                break
            replay_rows(replay, self._events.slice(offset, every))
            offset = min(offset + every, self._events.height)
        head = fold_history(self._history, Moment(), self._registry, warn=False)
        self.anomalies = head.anomalies
        self._names = sorted(head)
        self._history = History(self._history.events.clear(), self._history.start, self._history.path)
        warn_anomalies(self.anomalies, stacklevel=4)

    def _replay(self, i: int, m: Moment) -> dict[str, pl.DataFrame]:
        saved = orjson.loads(self._replays[i])
        replay = ReplayState(self._registry)
        replay.models, replay.versions = saved["models"], saved["versions"]
        rows = self._events.slice(self._positions[i] - self._first)
        if m.position is not None:
            rows = rows.head(max(m.position - self._positions[i], 0))
        elif m.time is not None:
            rows = rows.filter(pl.col("timestamp") <= m.time)
        replay_rows(replay, rows)
        return replay_frames(replay)

    def diff(self, t1: object, t2: object = None) -> pl.DataFrame:
        """What changed between two moments, as :func:`lithair_lab.diff`."""
        return diff_states(self.state_at(t1), self.state_at(t2))

    def _count_until(self, t: dt.datetime) -> int:
        return self._first + int(self._sorted_times.search_sorted(t, side="right"))

    def __repr__(self) -> str:
        how = f"{len(self._positions)} replay checkpoints every {self.every:,}" if self._custom else "indexed by version"
        return f"<TimeMachine {self.events:,} records, {how}, models {', '.join(self._names)}>"


def _held(history: History) -> History:
    """A history with its records in memory: only the columns a fold reads (the build decodes them all)."""
    if history.events is not None:
        return history
    frames = list(history.batches(columns=EVENT_COLUMNS))
    events = pl.concat(frames, rechunk=False) if frames else pl.DataFrame(schema={c: EVENT_SCHEMA[c] for c in EVENT_COLUMNS})
    return History(events, history.start, history.path)

"""A time machine: one history prepared once, any moment of it in milliseconds."""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import math

import orjson

import polars as pl

from lithair_lab.engine.reducers import ReducerRegistry

from . import fold
from lithair_lab.engine.reducers import ReplayState

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
from .columns import CHANGED_AT, CHANGED_SEQ, KEY, STATE_META, VALUE, VERSION
from .diff import diff_states
from .moment import Moment, moment
from .source import History, Source, Start, load

CHECKPOINTS = 128
"""Default number of in-memory checkpoints over a history."""
MIN_EVERY = 2048
"""Fewest records between two checkpoints."""
REPLAY_CHECKPOINTS = 256
"""Checkpoints over a history with custom-reducer events (queries replay in Python from one)."""


class TimeMachine:
    """One history decoded once, with in-memory checkpoints, for many ``state_at`` queries.

    Every payload is decoded when the machine is built, and the state is
    folded to a checkpoint every ``every`` records. A query starts from the
    latest checkpoint at or before its moment and folds at most ``every``
    decoded records on top, so its cost does not grow with the history.

    Parameters
    ----------
    source
        A data directory or an event frame from :func:`lithair_lab.scan`
        (one store).
    every
        Records between two checkpoints; default: the history split in
        :data:`CHECKPOINTS` parts (at least :data:`MIN_EVERY` records each).
    reducers
        Custom reducers, as for :func:`state_at`. When the history holds
        events of a custom type, the machine keeps the engine's replay state
        every ``every`` records (:data:`REPLAY_CHECKPOINTS` by default) and
        a query replays, in Python, the records after the nearest one.
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).

    Attributes
    ----------
    events
        Records in the history.
    every
        Records between two checkpoints.
    anomalies
        Every anomaly of the history (schema ``ANOMALY_SCHEMA``).
    first_time, last_time
        The earliest and latest timestamps of the history's records.

    Notes
    -----
    On 1,000,000 events over 10,000 entities (``benchmarks/bench_state.py``)
    the build takes about 1.7 times reading the log, holds 132 MiB, and a
    query costs 12-18 ms of CPU time.

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
        histories = load(source, on_damage=on_damage)
        if len(histories) != 1:
            msg = (
                f"a time machine works over one store, and the source holds {len(histories)}\n\n"
                "pass one store's directory (or `scan(...)` filtered on `store`)"
            )
            raise ValueError(msg)
        self._history: History = histories[0]
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
        self.every = every if every is not None else max(MIN_EVERY, math.ceil(n / CHECKPOINTS))
        rows = fold.crud_rows(events)
        base = fold.start_rows(start.models, start.versions) if start is not None else {}
        found = list(rows.anomalies)
        self._models = {}
        self._has_value: dict[str, bool] = {}
        self._suffix_min: dict[str, pl.Series] = {}
        for name in sorted({*base, *rows.models}):
            model = fold.concat_rows(base.get(name), rows.models.get(name))
            flagged = fold.flag_rows(model.rows.lazy(), check_json=True).collect()
            found.append(fold.anomalies_of(flagged.lazy(), name).collect())
            decoded, fields, _ = fold.decode_rows(flagged.select(*fold.ROW_SCHEMA, fold.IS_OBJ, "_valid"))
            # Keep what a fold reads: the payload text only where the value is not an object.
            decoded = decoded.drop("event_type", "event_id", "op").with_columns(
                pl.when(pl.col(fold.IS_OBJ).not_()).then(pl.col("payload"))
            )
            decoded = decoded.sort(fold.ORD)
            self._models[name] = fold.ModelRows(decoded, fields)
            # suffix_min[i]: the earliest timestamp from row i on (non-decreasing),
            # so the rows a time query needs end where it passes the moment.
            self._suffix_min[name] = decoded["timestamp"].reverse().cum_min().reverse().fill_null(strategy="forward").fill_null(strategy="backward")
            self._has_value[name] = bool(decoded.select((pl.col(fold.IS_OBJ).not_() & (pl.col("action") != "delete")).any()).item())
        self._names = sorted({*self._models, *(str(m) for m in h.events["model"].drop_nulls().unique())})
        self.anomalies = _concat_anomalies(found)
        # Checkpoint i holds the state after the first `_positions[i]` records;
        # `_latest[i]` is the latest timestamp among them.
        prefix_max = events["timestamp"].cum_max()
        self._sorted_times = events["timestamp"].drop_nulls().sort()
        self._positions: list[int] = []
        self._latest: list[dt.datetime | None] = []
        self._states: list[dict[str, pl.DataFrame]] = []
        state: dict[str, pl.DataFrame] = {}
        p = self._first
        while True:
            self._positions.append(p)
            self._latest.append(prefix_max[p - self._first - 1] if p > self._first else None)
            self._states.append(state)
            if p >= self.events:
                break
            nxt = min(p + self.every, self.events)
            state = self._fold(state, p, Moment(position=nxt))
            p = nxt
        # The decoded rows now hold everything queries read; drop the raw frame.
        self._history = History(h.events.clear(), h.start, h.path)
        warn_anomalies(self.anomalies, stacklevel=3)

    def estimated_size(self, unit: str = "mb") -> float:
        """Memory held by the decoded rows and the checkpoints (as ``pl.DataFrame.estimated_size``)."""
        frames = [m.rows for m in self._models.values()]
        frames += [f for state in self._states for f in state.values()]
        size = sum(f.estimated_size(unit) for f in frames)  # type: ignore[arg-type]
        if self._custom:
            scale = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30}[unit]
            size += self._events.estimated_size(unit) + sum(len(r) for r in self._replays) / scale  # type: ignore[arg-type]
        return size

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
        i = self._checkpoint_for(m)
        if self._custom:
            frames = self._replay(i, m)
        else:
            frames = self._fold(self._states[i], self._positions[i], m)
        state = State({name: frames.get(name, self._empty(name)) for name in self._names})
        state.moment = m
        limit = self.events if m.position is None else min(m.position, self.events)
        state.events = limit if m.time is None else self._count_until(m.time)
        state.anomalies = self.anomalies.filter(m.mask())
        return state

    def _checkpoint_for(self, m: Moment) -> int:
        """The latest checkpoint whose records all belong to the moment ``m``."""
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
        self._models, self._has_value = {}, {}
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
        self._states = []
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

    def _fold(self, base: dict[str, pl.DataFrame], position: int, m: Moment) -> dict[str, pl.DataFrame]:
        """The state at ``m`` from ``base``, the state after ``position`` records.

        One lazy plan per model, collected together: only the entities the
        records in between touch are folded again; the others are copied.
        """
        plans = {}
        for name, model in self._models.items():
            rows = model.rows
            # From the first record on, the rows of a compacted history's
            # starting state (ORD -1) come first.
            lo = 0 if position <= self._first else rows[fold.ORD].search_sorted(position, side="left")
            if m.position is not None:
                hi = rows[fold.ORD].search_sorted(m.position, side="left")
            elif m.time is not None:
                hi = self._suffix_min[name].search_sorted(m.time, side="right")
            else:
                hi = rows.height
            frame = base.get(name)
            if hi <= lo:
                if frame is not None:
                    plans[name] = frame.lazy()
                continue
            window = rows.slice(lo, hi - lo).lazy()
            if m.time is not None:
                window = window.filter((pl.col("timestamp") <= m.time) | pl.col(fold.START))
            columns = [*STATE_META, *map(fold.column_name, model.fields or []), *([VALUE] if self._has_value[name] else [])]
            if frame is not None and frame.height:
                keys = window.select(KEY).unique()
                start = _as_start(frame.lazy().join(keys, on=KEY, how="semi"), model.fields)
                window = pl.concat([start, window], how="diagonal_relaxed")
            flagged = fold.flag_rows(window, check_json=False)
            plan = fold.state_plan(flagged, flagged.filter(pl.col("_contributes")), model.fields or [])
            if frame is not None and frame.height:
                untouched = frame.lazy().join(keys, on=KEY, how="anti")
                plan = pl.concat([untouched.select(columns), plan.select(columns)], how="vertical_relaxed").sort(KEY)
            plans[name] = plan.select(columns)
        names = list(plans)
        # Per-query plans are small: the in-memory engine runs them about twice
        # as fast as the streaming one (measured in benchmarks/bench_state.py).
        return dict(zip(names, pl.collect_all([plans[n] for n in names], engine="in-memory"), strict=True))

    def _empty(self, name: str) -> pl.DataFrame:
        model = self._models.get(name)
        if model is None:
            return empty_state()
        schema = {**STATE_META, **{fold.column_name(f): model.rows.schema[fold.FIELD + f] for f in model.fields or []}}
        if self._has_value.get(name):
            schema[VALUE] = pl.String()
        return pl.DataFrame(schema=schema)

    def _count_until(self, t: dt.datetime) -> int:
        return self._first + int(self._sorted_times.search_sorted(t, side="right"))

    def __repr__(self) -> str:
        return (
            f"<TimeMachine {self.events:,} records, {len(self._positions)} checkpoints every {self.every:,},"
            f" models {', '.join(self._names)}>"
        )


def _as_start(state: pl.LazyFrame, fields: list[str] | None) -> pl.LazyFrame:
    """A state frame as decoded fold rows standing for it (one per entity)."""
    has_value = VALUE in state.collect_schema()
    return state.select(
        pl.col(KEY),
        pl.lit(-1, pl.Int64).alias(fold.ORD),
        pl.col(CHANGED_SEQ).alias("seq"),
        pl.col(CHANGED_AT).alias("timestamp"),
        pl.lit(None, pl.String).alias("event_type"),
        pl.lit(None, pl.String).alias("event_id"),
        pl.lit(None, pl.String).alias("op"),
        pl.lit("upsert").alias("action"),
        (pl.col(VALUE).fill_null("{}") if has_value else pl.lit("{}")).alias("payload"),
        pl.col(VERSION).alias(fold.WEIGHT),
        pl.lit(value=True).alias(fold.START),
        (pl.col(VALUE).is_null() if has_value else pl.lit(value=True)).alias(fold.IS_OBJ),
        pl.lit(value=True).alias("_valid"),
        *(pl.col(fold.column_name(f)).alias(fold.FIELD + f) for f in fields or []),
        *(pl.lit(value=True).alias(fold.PRESENT + f) for f in fields or []),
    )

"""State at a moment: ``state_at`` and the fold it runs."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import polars as pl

from lithair_lab.engine.reducers import Reducer, ReducerRegistry, ReplayState
from lithair_lab.errors import HistoryWarning, MomentError, NotFoundError
from lithair_lab.formats.envelope import Envelope

from . import fold, incremental
from .columns import ANOMALY_SCHEMA, KEY, STATE_META
from .moment import Moment, moment
from .source import History, Source, Start, stream

Reducers = ReducerRegistry | Mapping[str, Reducer] | None

FOLD_ROWS = 65_536
"""Records folded at a time: memory holds the live state plus about this many records."""

EVENT_COLUMNS = (
    "seq", "timestamp", "event_type", "short_type", "model", "op", "event_id",
    "aggregate_id", "payload", "record_kind",
)  # fmt: skip


class State(dict[str, pl.DataFrame]):
    """The live entities of every model at one moment: model name -> frame.

    Each frame has one row per live entity: the columns of
    :data:`lithair_lab.state.STATE_META` (``_key``, ``_version``,
    ``_changed_at``, ``_changed_seq``), then the fields that some live entity
    holds (even as null), in name order: the same columns whichever path
    (journal, checkpoint, time machine) folded the state. Every model seen
    anywhere in the history has a frame, empty (only the meta columns) when
    nothing of it is live.

    Attributes
    ----------
    moment
        The moment asked for.
    events
        How many records the state folds (the checkpoint's included).
    anomalies
        Inconsistencies met on the way (schema
        :data:`lithair_lab.state.ANOMALY_SCHEMA`): updates before creates,
        deletes of unknown entities, payloads without a key...
    """

    moment: Moment
    events: int
    anomalies: pl.DataFrame

    def __missing__(self, model: str) -> pl.DataFrame:
        known = ", ".join(f"`{m}`" for m in sorted(self)) or "none"
        msg = f"unknown model `{model}`\n\nmodels of this history: {known}"
        raise NotFoundError(msg)

    def entity(self, model: str, key: str) -> dict[str, Any] | None:
        """One entity's row as a dict, or None when it is not live at this moment."""
        rows = self[model].filter(pl.col(KEY) == key)
        return rows.row(0, named=True) if rows.height else None



def state_at(
    source: Source,
    at: object = None,
    *,
    position: int | None = None,
    seq: int | None = None,
    reducers: Reducers = None,
    on_damage: str = "raise",
) -> State:
    """The state of every model at a moment of a history.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame from :func:`lithair_lab.scan`.
    at
        Include every event stamped at or before this moment: a datetime, a
        date (its midnight), an ISO 8601 string or Unix seconds. A moment
        without a timezone is UTC. Events of the same second are ordered by
        position. ``None`` (and no ``position``/``seq``) means the head.
    position
        Instead of ``at``: the state after the first ``position`` records
        (``0`` is the empty state).
    seq
        Instead of ``at``: the state right after the record at ``seq``.
    reducers
        Custom reducers by event type (a ``ReducerRegistry`` or a mapping),
        the same ones the engine registers. CRUD events (``<Model><Op>``)
        without a custom reducer fold by the built-in semantics.
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).

    Returns
    -------
    State
        A dict of model name -> ``pl.DataFrame``, one row per live entity.

    Raises
    ------
    HorizonError
        When the moment lies before the earliest one the directory can
        reconstruct exactly (its older records were compacted away).
    MomentError
        When the moment arguments are malformed or more than one is given.

    Warns
    -----
    HistoryWarning
        When the folded history holds anomalies; they are in ``.anomalies``.

    Notes
    -----
    A moment before the first event gives empty frames; one after the last
    gives the head state. CRUD semantics are those of
    :mod:`lithair_lab.formats.crud`, shared with the engine: a create (or
    replicate) replaces the entity, an update merges its top-level fields (a
    field set to null becomes null; an absent one is kept), a delete removes
    it, and a create after a delete starts a new life whose ``_version``
    restarts at 1. An update of an entity that is not live starts it from
    the update's payload; a delete of one does nothing; both are reported.
    Histories with custom-reducer events fold in Python through the engine's
    own replay (from the nearest checkpoint), the rest with Polars. The
    history is read and folded chunk by chunk (:data:`FOLD_ROWS` records at
    a time, each folded onto the state so far), so memory holds the live
    state and one chunk whatever the history's length. Every payload is
    checked: one that is not JSON is reported (``bad_payload``) and applied
    as null, as the engine applies it. The dtypes come from the state's
    values alone, whichever records were read (a checkpoint's, the
    journal's): a field whose values there have JSON types that do not mix
    (a string here, a number there) is given as JSON text.

    See Also
    --------
    TimeMachine : Many moments of one history, fast.
    history : Every version of one entity.
    diff : What changed between two moments.

    Examples
    --------
    >>> import lithair_lab as ll
    >>> state = ll.state_at("data/shop", at="2026-01-06T14:03:00Z")  # doctest: +SKIP
    >>> state["Product"].columns[:4]  # doctest: +SKIP
    ['_key', '_version', '_changed_at', '_changed_seq']
    """
    m = moment(at, position=position, seq=seq)
    return fold_all(stream(source, on_damage=on_damage), m, ReducerRegistry.coerce(reducers))  # type: ignore[arg-type]


def fold_all(
    histories: list[History], m: Moment, registry: ReducerRegistry, *, warn: bool = True, rows: int | None = None
) -> State:
    """The state at ``m`` of one or several stores' histories (model frames concatenated).

    ``rows`` bounds the records folded at a time (default: the read path's chunks).
    """
    return fold_all_at(histories, [m], registry, warn=warn, rows=rows)[0]


def fold_all_at(
    histories: list[History], moments: list[Moment], registry: ReducerRegistry, *, warn: bool = True, rows: int | None = None
) -> list[State]:
    """:func:`fold_all` at several moments, each history read once for all of them."""
    if len(histories) > 1 and any(m.position is not None for m in moments):
        msg = (
            f"the source holds {len(histories)} stores, and a position names a record of one store\n\n"
            "pass one store's directory, or a time with `at=`"
        )
        raise MomentError(msg)
    per_history = [fold_moments(h, moments, registry, rows=rows) for h in histories]
    states = [_combined([states[i] for states in per_history], m) for i, m in enumerate(moments)]
    if warn:
        for state in states:
            warn_anomalies(state.anomalies)
    return states


def _combined(parts: list[State], m: Moment) -> State:
    """One state of several stores' states at ``m``."""
    if len(parts) == 1:
        return parts[0]
    names = sorted({name for part in parts for name in part})
    state = State({
        name: pl.concat([p[name] for p in parts if name in p], how="diagonal_relaxed").sort(KEY)
        for name in names
    })  # fmt: skip
    state.moment = m
    state.events = sum(p.events for p in parts)
    state.anomalies = _concat_anomalies([p.anomalies for p in parts])
    return state


def fold_history(
    history: History, m: Moment, registry: ReducerRegistry, *, warn: bool = True, rows: int | None = None
) -> State:
    """The state at ``m`` of a history (checkpoint used when it helps), folded chunk by chunk.

    Each chunk of records is folded onto the state so far
    (:class:`lithair_lab.state.incremental.Fold`), so memory holds the live
    state plus one chunk, whatever the history's length.
    """
    state = fold_moments(history, [m], registry, rows=rows)[0]
    if warn:
        warn_anomalies(state.anomalies)
    return state


def fold_moments(history: History, moments: list[Moment], registry: ReducerRegistry, *, rows: int | None = None) -> list[State]:
    """:func:`fold_history` at several moments, reading the history once."""
    for m in moments:
        history.check_horizon(m)
    starts = [history.start if history.start is not None and history.start.usable_for(m) else None for m in moments]
    folds = [incremental.Fold() for _ in moments]
    for folded, start in zip(folds, starts, strict=True):
        if start is not None:
            folded.add(_start_frame(start.models, start.versions), anomalies=False)
    # A start's state names the model of every record it covers (the engine keeps emptied ones).
    models = [dict.fromkeys(start.models if start is not None else ()) for start in starts]
    anomalies: list[list[pl.DataFrame]] = [[] for _ in moments]
    counted, custom = [0] * len(moments), [False] * len(moments)

    def prepared(chunk: pl.DataFrame) -> tuple[dict[str, None], list[tuple[int, bool, incremental.Prepared, list[pl.DataFrame]] | None]]:
        seen = dict.fromkeys(str(x) for x in chunk["model"].drop_nulls().unique(maintain_order=True))
        parts = []
        for m, start in zip(moments, starts, strict=True):
            events = _selected(chunk, m, start)
            if not events.height:
                parts.append(None)
                continue
            types = [t for t in events["short_type"].drop_nulls().unique() if t in registry]
            frame, found = fold.crud_frame(events, custom_types=types)
            parts.append((events.height, bool(types), incremental.prepare(frame), found))
        return seen, parts

    # When every moment folds from the start, the records it covers are not read again.
    after_start = all(start is not None for start in starts)
    for seen, parts in _ahead(history.batches(rows or FOLD_ROWS, EVENT_COLUMNS, after_start=after_start), prepared):
        for i, part in enumerate(parts):
            models[i].update(seen)
            if part is not None:
                n, has_custom, ready, found = part
                counted[i] += n
                custom[i] = custom[i] or has_custom
                anomalies[i] += [*found, folds[i].add(ready)]
    states = []
    for i, (m, start, folded) in enumerate(zip(moments, starts, folds, strict=True)):
        # Custom reducers are Python functions over the whole state, so such a
        # history folds (again) through the engine's own replay. CRUD anomalies
        # are those of the fold above, which saw the same CRUD rows.
        frames = _fold_python(history, m, start, registry, rows) if custom[i] else folded.state()
        state = State({name: frames.get(name, empty_state()) for name in sorted(models[i])})
        state.moment = m
        state.events = (start.position if start else 0) + counted[i]
        state.anomalies = _concat_anomalies(anomalies[i])
        states.append(state)
    return states


def _ahead(items: Iterable[T], work: Callable[[T], U]) -> Iterator[U]:
    """``work`` over ``items``, the next one done in a thread while the caller handles this one.

    The read path and ``work`` (Polars, the C shapes pass) release the GIL,
    so on two cores the next chunk is read and prepared while this one folds.
    """
    it = iter(items)

    def step() -> U | object:
        for item in it:
            return work(item)
        return _END

    with ThreadPoolExecutor(1, thread_name_prefix="lithair-lab-fold") as pool:
        future = pool.submit(step)
        while (result := future.result()) is not _END:
            future = pool.submit(step)
            yield result  # type: ignore[misc]


_END = object()
T = TypeVar("T")
U = TypeVar("U")


def _selected(events: pl.DataFrame, m: Moment, start: Start | None) -> pl.DataFrame:
    """The records of a chunk that the moment includes, after the starting checkpoint."""
    if not m.is_head:
        events = events.filter(m.mask())
    if start is not None:
        events = events.filter(pl.col("seq") >= start.position)
    return events


def _fold_python(
    history: History, m: Moment, start: Start | None, registry: ReducerRegistry, rows: int | None
) -> dict[str, pl.DataFrame]:
    replay = ReplayState(registry)
    if start is not None:
        replay.models = copy.deepcopy(start.models)
        replay.versions = copy.deepcopy(start.versions)
    for chunk in history.batches(rows or FOLD_ROWS, EVENT_COLUMNS):
        replay_rows(replay, _selected(chunk, m, start))
    return replay_frames(replay)


def replay_rows(replay: ReplayState, events: pl.DataFrame) -> None:
    """Fold event rows (``EVENT_COLUMNS``) through the engine's replay, in order."""
    for row in events.iter_rows(named=True):
        replay.events = row["seq"]
        env = None
        if row["record_kind"] == "envelope":
            ts = row["timestamp"]
            env = Envelope(
                row["event_type"], row["event_id"], int(ts.timestamp()) if ts is not None else 0, row["payload"],
                row["aggregate_id"],
            )  # fmt: skip
        replay.apply(env)


def replay_frames(replay: ReplayState) -> dict[str, pl.DataFrame]:
    """A replayed state as state frames (through the vectorized fold, so their shape is the same)."""
    folded = incremental.Fold()
    folded.add(_start_frame(replay.models, replay.versions), anomalies=False)
    return folded.state()


def _start_frame(models: Mapping[str, Mapping[str, Any]], versions: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """Fold rows (with ``model``) standing for a state and its versions, as :func:`fold.start_rows` gives them."""
    parts = [p.rows.select(pl.lit(name).alias("model"), pl.all()) for name, p in fold.start_rows(models, versions).items()]
    return pl.concat(parts) if parts else pl.DataFrame(schema={"model": pl.String(), **fold.ROW_SCHEMA})


def _concat_anomalies(parts: list[pl.DataFrame]) -> pl.DataFrame:
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame(schema=ANOMALY_SCHEMA)
    return pl.concat(parts).sort("seq")


def empty_state() -> pl.DataFrame:
    """A state frame with no entities (and no field columns)."""
    return pl.DataFrame(schema=STATE_META)


def warn_anomalies(anomalies: pl.DataFrame, *, stacklevel: int = 4) -> None:
    """One warning summing up a history's anomalies by kind."""
    if not anomalies.height:
        return
    counts = anomalies.group_by("kind").len().sort("len", descending=True)
    summary = ", ".join(f"{n} {k}" for k, n in counts.iter_rows())
    warnings.warn(
        f"the history holds {anomalies.height} inconsistencies ({summary}); see `.anomalies`",
        HistoryWarning,
        stacklevel=stacklevel,
    )

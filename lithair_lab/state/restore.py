"""Point-in-time recovery and what-if replays: a new data directory, written by the engine's importer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lithair_lab.engine.importer import Importer, RawRecord
from lithair_lab.errors import HorizonError, InvalidEventError, LithairLabError
from lithair_lab.formats import checkpoint, layout
from lithair_lab.formats.envelope import Envelope, RawJSON

from .at import Reducers
from .moment import moment
from .source import Source, load


def restore(
    source: Source,
    at: object = None,
    *,
    into: str | Path,
    position: int | None = None,
    seq: int | None = None,
    reducers: Reducers = None,
    snapshot: bool = True,
    on_damage: str = "raise",
    **store_options: Any,
) -> Path:
    """Write a new data directory holding exactly the history up to a moment.

    Every record up to the moment is written, in order, by the engine's
    importer (:mod:`lithair_lab.engine.importer`) with its original
    ``event_type``, ``event_id``, ``timestamp``, ``aggregate_id`` and payload
    string byte for byte, in the Era C form with a fresh hash chain (for an
    Era C source: the same hashes). Any source works: Era A, B or C, rotated,
    binary, checkpointed. Ids an Era B log repeats stay as records;
    ``dedup.raftids`` holds each id once, so new appends to the restored
    store are deduplicated against all of them. The directory is built
    beside ``into`` and renamed into place when complete, so a crash leaves
    ``into`` absent (or empty), never half-restored. The source is only read,
    a batch at a time.

    Parameters
    ----------
    source
        A data directory or an event frame (one store).
    at, position, seq
        The moment, as for :func:`lithair_lab.state_at` (``None``: the head).
    into
        The new data directory; it must not exist or be empty.
    reducers
        Custom reducers, for the checkpoint's state (give the same to ``open_store``).
    snapshot
        Publish a checkpoint of the restored state (default), so opening it replays nothing.
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).
    **store_options
        ``open_store``'s options that shape what is written: ``binary=True``,
        ``hash_chain=False``, ``max_log_file_size=...``, ``dedup_persist=False``
        (others, such as the durability mode, are accepted and change nothing).

    Returns
    -------
    Path
        ``into``. ``ll.state_at(into)`` and ``open_store(into).state`` equal
        ``ll.state_at(source, at)``, positions (``seq``) included whenever the
        moment is a prefix of the history (a position, or a time in a log whose
        timestamps never go back; raw records go with the record before them).

    Raises
    ------
    HorizonError
        When the source was compacted: its older records are gone, so no
        moment of it can be rewritten as a whole history.
    LithairLabError
        When ``into`` is not empty, or a record cannot be written (its
        place in the import is named); nothing is written then.

    Notes
    -----
    Raw (non-envelope) records are kept as lines of their own in JSON
    journals. Binary journals cannot hold them: with ``binary=True`` they
    are left out, and a warning gives their number. Extra envelope fields
    of the source are not in the event frame and are not carried over.

    See Also
    --------
    what_if : The same, with chosen events removed or replaced.
    """
    return what_if(
        source, at, into=into, position=position, seq=seq, reducers=reducers, snapshot=snapshot,
        on_damage=on_damage, **store_options,
    )  # fmt: skip


def what_if(
    source: Source,
    at: object = None,
    *,
    into: str | Path,
    drop: pl.Expr | Iterable[int] | None = None,
    replace: Mapping[int, Any] | None = None,
    position: int | None = None,
    seq: int | None = None,
    reducers: Reducers = None,
    snapshot: bool = True,
    on_damage: str = "raise",
    **store_options: Any,
) -> Path:
    """Replay a history into a new directory with chosen events removed or replaced.

    For debugging a bad event: drop it, or give it another payload, and see
    the state the history would have reached (``ll.state_at(into)``), or
    compare with ``ll.diff``.

    Parameters
    ----------
    source, at, into, position, seq, reducers, snapshot, on_damage, **store_options
        As for :func:`restore`.
    drop
        The events to leave out: their ``seq`` positions, or a Polars
        expression over the event frame (``pl.col("event_id") == "e42"``).
    replace
        ``seq`` -> new payload (a JSON-serializable object, or a string of
        JSON kept verbatim). The event keeps its type, id, key and timestamp.

    Returns
    -------
    Path
        ``into``.
    """
    m = moment(at, position=position, seq=seq)
    batches, lazy = _one_store(source, on_damage)
    dropped = None
    if drop is not None:  # the positions to leave out, found first (an expression sees the whole frame)
        if isinstance(drop, pl.Expr):
            dropped = lazy.filter(drop.fill_null(value=False)).select("seq").collect()["seq"]
        else:
            dropped = pl.Series("seq", list(drop), dtype=pl.UInt64)
    replacements = {int(k): _replacement(k, v) for k, v in (replace or {}).items()}
    seen: set[int] = set()
    left_out = 0
    last_time = None  # the time of the last timestamped record read, for the raw records that follow it
    with Importer(into, reducers=reducers, snapshot=snapshot, **store_options) as imp:
        for frame in batches():
            if m.position is not None and frame["seq"][0] >= m.position:
                break  # positions only grow: nothing further is in
            if m.time is not None:  # raw records carry no time: each goes with the record before it
                times = frame["timestamp"].forward_fill()
                if last_time is not None:
                    times = times.fill_null(last_time)
                last_time = times[-1] if times[-1] is not None else last_time
                frame = frame.filter((times <= m.time).fill_null(value=True))  # leading raw records: before anything
            else:
                frame = frame.filter(m.mask())
            if dropped is not None:
                frame = frame.filter(~pl.col("seq").is_in(dropped.implode()))
            if imp.binary:  # frames have no room for raw records: they are left out (and counted)
                raw = frame["record_kind"] != "envelope"
                left_out += raw.sum()
                frame = frame.filter(~raw)
            if frame.height:
                imp.add(_records(frame.select(_COLUMNS), replacements, seen))
        missing = sorted(set(replacements) - seen)
        if missing:
            msg = f"`replace` names seq {missing[:5]} that are not among the events written\n\ncheck the positions with `ll.scan`"
            raise LithairLabError(msg)
        target = imp.finish().path
    if left_out:
        import warnings

        from lithair_lab.errors import LithairLabWarning

        warnings.warn(
            f"{left_out} raw (non-envelope) records were left out of `{target}`: binary journals hold envelopes only",
            LithairLabWarning,
            stacklevel=3,
        )
    return target


_COLUMNS = [
    pl.col("seq"), pl.col("record_kind"), pl.col("event_type"), pl.col("event_id"),
    pl.col("timestamp").dt.epoch("s").alias("seconds"), pl.col("aggregate_id"), pl.col("payload"),
]  # fmt: skip
_ROWS = 65_536  # rows of an in-memory frame handed over at a time


def _one_store(source: Source, on_damage: str) -> tuple[Callable[[], Iterator[pl.DataFrame]], pl.LazyFrame]:
    """``source``'s single store: its records batch by batch in replay order (a directory is read
    as it is written, one chunk at a time), and the same as a lazy frame."""
    if not isinstance(source, str | Path):
        histories = load(source, on_damage=on_damage)
        if len(histories) != 1:
            raise _many_stores(len(histories))
        events = histories[0].events
        return (lambda: (events.slice(i, _ROWS) for i in range(0, events.height, _ROWS))), events.lazy()
    from lithair_lab.frames.scan import scan
    from lithair_lab.frames.stores import find_stores, plan
    from lithair_lab.frames.walk import check_on_damage, walk

    check_on_damage(on_damage)
    stores = find_stores(Path(source))
    if len(stores) != 1:
        raise _many_stores(len(stores))
    cp = plan(stores[0], strict=on_damage == "raise").checkpoint
    if cp is not None:
        _refuse_compacted(stores[0].directory, cp)

    def batches() -> Iterator[pl.DataFrame]:
        # The walk itself, not a Polars stream of it: a stream reads ahead of a slow consumer.
        return (step.records for step in walk(stores, on_damage=on_damage) if step.records.height)  # type: ignore[arg-type]

    return batches, scan(source, on_damage=on_damage)  # type: ignore[arg-type]


def _many_stores(n: int) -> LithairLabError:
    return LithairLabError(f"the source holds {n} stores\n\npass one store's directory")


def _replacement(seq: object, new: Any) -> str:
    try:
        return str(RawJSON(new if isinstance(new, str) else orjson.dumps(new).decode()))  # checked, then plain str
    except (InvalidEventError, TypeError) as e:
        msg = f"`replace` for seq {seq}: {e}"
        raise InvalidEventError(msg) from None


def _records(batch: pl.DataFrame, replacements: Mapping[int, str], seen: set[int]) -> Iterator[Envelope | RawRecord]:
    cols = [batch[c].to_list() for c in ("seq", "record_kind", "event_type", "event_id", "seconds", "aggregate_id", "payload")]
    for seq, kind, event_type, event_id, ts, aggregate_id, payload in zip(*cols, strict=True):
        if kind != "envelope":
            yield RawRecord(payload)
            continue
        if ts is None:
            msg = f"the record at seq {seq} has no representable timestamp; it cannot be rewritten"
            raise LithairLabError(msg)
        if seq in replacements:
            payload = replacements[seq]
            seen.add(seq)
        yield Envelope(event_type, event_id, ts, payload, aggregate_id)


def _refuse_compacted(directory: Path, cp: checkpoint.Checkpoint) -> None:
    """Raise when the checkpoint stands for records that are gone, so that no directory
    holding the whole history up to a moment can be written from what is left.

    A checkpoint naming ``events.raftlog`` covers files that are all still there. One
    naming a ``native-journal-*`` covers its first ``covered_events`` records, and the
    records before them only if its state is ours and counts no more (FORMATS.md 5,
    ARCHITECTURE.md "Compaction"): upstream deletes the older journals after a switch.
    """
    if cp.journal == layout.ACTIVE:
        return
    total = checkpoint.history_length(cp)
    if total is None:
        if cp.covered_events == 0 and orjson.loads(cp.state) in ({}, None):
            return
        msg = (
            f"`{directory}`: its checkpoint's state is not in `{checkpoint.STATE_FORMAT}` form and stands for"
            f" records removed with the journals before `{cp.journal}`, so its history cannot be rewritten whole"
        )
        raise HorizonError(msg)
    if total > cp.covered_events:
        msg = (
            f"`{directory}` was compacted: {total - cp.covered_events} records before its checkpoint are gone,"
            " so its history cannot be rewritten whole\n\n"
            "restore from a backup taken before the compaction (`ll.list_backups`)"
        )
        raise HorizonError(msg)

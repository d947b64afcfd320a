"""Point-in-time recovery and what-if replays: a new data directory, written by the engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lithair_lab.engine import open_store
from lithair_lab.errors import DuplicateEventError, HorizonError, InvalidEventError, LithairLabError
from lithair_lab.formats.envelope import RawJSON

from .at import Reducers
from .moment import moment
from .source import History, Source, load

BATCH = 10_000  # records per `append_many`: one validation and one durability wait per batch


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

    Every event up to the moment is appended, in order, through
    :func:`lithair_lab.open_store` with its original ``event_id``,
    ``timestamp``, ``aggregate_id`` and payload string (``RawJSON``, stored
    byte for byte), so hashes and idempotence keys are those of the source.
    The source is only read.

    Parameters
    ----------
    source
        A data directory or an event frame (one store).
    at, position, seq
        The moment, as for :func:`lithair_lab.state_at` (``None``: the head).
    into
        The new data directory; it must not exist or be empty.
    reducers
        Custom reducers, given to the new store so its state is the source's.
    snapshot
        Publish a checkpoint of the restored state at the end.
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).
    **store_options
        Passed to ``open_store`` (``binary=True``, ``max_log_file_size=...``).

    Returns
    -------
    Path
        ``into``. ``ll.state_at(into)`` equals ``ll.state_at(source, at)``.

    Raises
    ------
    HorizonError
        When the source was compacted: its older records are gone, so no
        moment of it can be rewritten as a whole history.
    LithairLabError
        When ``into`` is not empty, or a record cannot be appended (its
        ``seq`` is named).

    Notes
    -----
    Raw (non-envelope) records cannot be appended through the engine; they
    change no state and are left out. Their number is in the warning the
    function issues when there are any.

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
    histories = load(source, on_damage=on_damage)
    if len(histories) != 1:
        msg = f"the source holds {len(histories)} stores\n\npass one store's directory"
        raise LithairLabError(msg)
    history = histories[0]
    _refuse_compacted(history)
    target = Path(into)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        msg = f"`{target}` already exists and is not empty\n\nrestore into a new directory; nothing was written"
        raise LithairLabError(msg)
    events = history.events.filter(m.mask())
    if drop is not None:
        mask = drop if isinstance(drop, pl.Expr) else pl.col("seq").is_in(list(drop))
        events = events.filter(~mask.fill_null(value=False))
    raw = events.filter(pl.col("record_kind") != "envelope").height
    events = events.filter(pl.col("record_kind") == "envelope")
    replacements = {int(k): v for k, v in (replace or {}).items()}
    missing = sorted(set(replacements) - set(events["seq"].to_list()))
    if missing:
        msg = f"`replace` names seq {missing[:5]} that are not among the events written\n\ncheck the positions with `ll.scan`"
        raise LithairLabError(msg)
    with open_store(target, reducers=reducers, **store_options) as store:
        batch: list[dict[str, Any]] = []
        first = 0
        for row in events.iter_rows(named=True):
            if not batch:
                first = row["seq"]
            batch.append(_event(row, replacements))
            if len(batch) == BATCH:
                _append(store, batch, first)
                batch = []
        if batch:
            _append(store, batch, first)
        if snapshot:
            store.snapshot()
    if raw:
        import warnings

        from lithair_lab.errors import LithairLabWarning

        warnings.warn(
            f"{raw} raw (non-envelope) records were left out of `{target}`: the engine writes envelopes only",
            LithairLabWarning,
            stacklevel=3,
        )
    return target


def _refuse_compacted(history: History) -> None:
    start = history.start
    if start is not None and not start.complete:
        where = history.path or "the source"
        msg = (
            f"`{where}` was compacted: records before {start.time.isoformat() if start.time else 'its checkpoint'}"
            f" (position {start.position}) are gone, so its history cannot be rewritten whole\n\n"
            "restore from a backup taken before the compaction (`ll.list_backups`)"
        )
        raise HorizonError(msg)


def _event(row: dict[str, Any], replacements: Mapping[int, Any]) -> dict[str, Any]:
    seq = row["seq"]
    payload: Any = row["payload"]
    if seq in replacements:
        new = replacements[seq]
        payload = new if isinstance(new, str) else orjson.dumps(new).decode()
    if row["timestamp"] is None:
        msg = f"the record at seq {seq} has no representable timestamp; it cannot be rewritten"
        raise LithairLabError(msg)
    try:
        text = RawJSON(payload)
    except InvalidEventError as e:
        msg = f"the record at seq {seq} ({row['event_type']}): {e}"
        raise InvalidEventError(msg) from None
    return {
        "event_type": row["event_type"],
        "payload": text,
        "event_id": row["event_id"],
        "aggregate_id": row["aggregate_id"],
        "timestamp": int(row["timestamp"].timestamp()),
    }


def _append(store: Any, batch: list[dict[str, Any]], first: int) -> None:
    try:
        store.append_many(batch)
    except DuplicateEventError as e:
        msg = (
            f"the records from seq {first} repeat the idempotence key `{e.key}`, which the engine refuses\n\n"
            "Era B logs reuse `Model:Op:pk` ids for every update; such a history cannot be rewritten"
            " through an exactly-once engine"
        )
        raise LithairLabError(msg) from e

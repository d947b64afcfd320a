"""Every version of one entity, with the event that made it and what it changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import polars as pl

from lithair_lab.errors import NotFoundError
from lithair_lab.formats import crud
from lithair_lab.frames import payload

from . import fold
from .columns import HISTORY_META, KEY, VALUE, VERSION
from .source import Source, load


def history(source: Source, model: str, entity_id: str, *, on_damage: str = "raise") -> pl.DataFrame:
    """Every version of one entity: the event that produced it and its field-level changes.

    Parameters
    ----------
    source
        A data directory or an event frame from :func:`lithair_lab.scan`.
    model
        The model name, e.g. ``"Product"`` (the ``<Model>`` of ``<Model><Op>``).
    entity_id
        The entity key (``aggregate_id``, else the payload's primary key).
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).

    Returns
    -------
    polars.DataFrame
        One row per CRUD event of the entity, in position order: the columns
        of :data:`lithair_lab.state.HISTORY_META` (``seq``, ``timestamp``,
        ``event_type``, ``event_id``, ``action``, ``_version``, ``life``,
        ``live``, ``changes``), then the entity's fields *after* the event
        (null once deleted; a field named like a column above is prefixed
        ``payload.``). ``changes`` lists ``{field, old, new}`` with
        values as JSON text (null when absent). ``_version`` restarts at 1 in
        each ``life`` (a create after a delete starts a new one); it is null
        after a delete. When the directory was compacted, the first row is
        the checkpoint's value (``action="checkpoint"``).

    Raises
    ------
    NotFoundError
        When the model or the entity never appears in the history.

    Notes
    -----
    Custom reducers are not applied here: the history is that of the CRUD
    events (``<Model><Op>``) of the entity.
    """
    histories = load(source, on_damage=on_damage)
    frames: list[dict[str, Any]] = []
    models: set[str] = set()
    for h in histories:
        models |= {str(m) for m in h.events["model"].drop_nulls().unique()}
        # Only this entity's records (or keyless ones, whose key is in the payload) are folded.
        mine = (pl.col("model") == model) & (pl.col("aggregate_id").is_null() | (pl.col("aggregate_id") == entity_id))
        rows = fold.crud_rows(h.events.filter(mine))
        start: Any = None
        if h.start is not None and not h.start.complete and entity_id in h.start.models.get(model, {}):
            start = (h.start.models[model][entity_id], h.start.versions.get(model, {}).get(entity_id))
            models.add(model)
        part = rows.models.get(model)
        events = part.rows.filter(pl.col(KEY) == entity_id) if part is not None else None
        if start is not None and h.start is not None and events is not None:
            events = events.filter(pl.col("seq") >= h.start.position)
        frames.extend(_versions(events, start))
    if model not in models:
        known = ", ".join(f"`{m}`" for m in sorted(models)) or "none"
        msg = f"unknown model `{model}`\n\nmodels of this history: {known}"
        raise NotFoundError(msg)
    if not frames:
        msg = f"entity `{entity_id}` of `{model}` never appears in the history"
        raise NotFoundError(msg)
    return _to_frame(frames)


def _versions(events: pl.DataFrame | None, start: Any) -> list[dict[str, Any]]:
    # One entity's events are few: they fold through `crud.apply` itself, the
    # engine's rule, so each version is exactly what the engine held.
    out: list[dict[str, Any]] = []
    entities: dict[str, Any] = {}
    version, life = None, 0
    if start is not None:
        value, info = start
        entities["e"] = value
        version, life = (info[0] if info else None), 1
        out.append({
            "seq": info[2] if info else None, "event_type": None,
            "timestamp": dt.datetime.fromtimestamp(info[1], dt.timezone.utc) if info else None,
            "event_id": None, "action": "checkpoint", VERSION: version, "life": life, "live": True,
            "changes": _changes({}, value), "value": value,
        })  # fmt: skip
    for row in (events.iter_rows(named=True) if events is not None else ()):
        try:
            data = orjson.loads(row["payload"])
        except orjson.JSONDecodeError:
            data = None
        before = entities.get("e", _ABSENT)
        crud.apply(entities, row["action"], "e", data)
        after = entities.get("e", _ABSENT)
        if row["action"] == "delete":
            version = None
        elif before is _ABSENT:
            version, life = 1, life + 1
        else:
            version = (version or 0) + 1
        out.append({
            "seq": row["seq"], "timestamp": row["timestamp"], "event_type": row["event_type"],
            "event_id": row.get("event_id"), "action": row["action"], VERSION: version, "life": life,
            "live": after is not _ABSENT, "changes": _changes(before, after),
            "value": None if after is _ABSENT else after,
        })  # fmt: skip
    return out


class _Absent:
    pass


_ABSENT: Any = _Absent()


def _text(v: Any) -> str:
    return orjson.dumps(v).decode()


def _changes(before: Any, after: Any) -> list[dict[str, str | None]]:
    if before is _ABSENT:
        before = {}
    if after is _ABSENT:
        after = {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        old = None if before == {} else _text(before)
        new = None if after == {} else _text(after)
        return [] if old == new else [{"field": None, "old": old, "new": new}]
    out = []
    for f in dict.fromkeys([*before, *after]):
        old = _text(before[f]) if f in before else None
        new = _text(after[f]) if f in after else None
        if old != new:
            out.append({"field": f, "old": old, "new": new})
    return out


def _to_frame(versions: list[dict[str, Any]]) -> pl.DataFrame:
    meta = pl.DataFrame([{k: r[k] for k in HISTORY_META} for r in versions], schema=HISTORY_META)
    values = [r["value"] for r in versions]
    fields = payload.decode_objects(pl.Series([_text(v if isinstance(v, dict) else {}) for v in values]), strict=False).struct
    columns = fields.struct.unnest()
    columns = columns.rename({c: fold.COLLISION_PREFIX + c for c in columns.columns if c in HISTORY_META or c == VALUE})
    frame = pl.concat([meta, columns], how="horizontal") if columns.width else meta
    if any(v is not None and not isinstance(v, dict) for v in values):
        text = [None if v is None or isinstance(v, dict) else _text(v) for v in values]
        frame = frame.with_columns(pl.Series(VALUE, text, pl.String()))
    return frame

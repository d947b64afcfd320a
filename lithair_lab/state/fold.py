"""The vectorized CRUD fold: event rows -> one row per live entity.

This is ``formats.crud.apply`` folded over a whole history at once, with Polars
expressions instead of a Python loop. Per entity key, in position order:

- the entity's *current life* is the run of events after its last delete
  (a create after a delete starts a new life; its version count restarts);
- within the life, the *base* is the last event that replaces the value
  outright: an upsert, a non-object payload, an event after a non-object
  value, or the life's first event (an update before any create starts from
  its payload alone);
- each top-level field takes its value from the last event, from the base on,
  whose payload holds that field (a field set to null is held; an absent one
  is not, so it keeps its older value).

:func:`life_flags` marks each row by these rules. Two folds use them:
:class:`lithair_lab.state.incremental.Fold` (``state_at``: chunk by chunk,
keeping per live entity only the records its state needs) and
:func:`versions` (the time machine: the state after every event at once).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from dataclasses import dataclass, field

import numpy as np
import orjson
import polars as pl

from lithair_lab.formats import crud
from lithair_lab.frames import payload

from .columns import ANOMALY_SCHEMA, CHANGED_AT, CHANGED_SEQ, KEY, STATE_META, VALUE, VERSION

FIELD = "f:"  # prefix of decoded field columns inside the fold
PRESENT = "p:"  # prefix of their presence flags
ENGINE = "in-memory"
"""The Polars engine of the fold's queries: its window expressions (``over``) run
several times faster there than on the streaming engine ``"auto"`` may pick."""
ORD = "_ord"  # fold order: seq for events, -1 for a starting state's rows
WEIGHT = "_weight"  # changes a row stands for (1 for an event, the version count for a starting row)
START = "_start"  # the row stands for a starting state (checkpoint), not an event
IS_OBJ = "_is_obj"

ROW_SCHEMA: dict[str, pl.DataType] = {
    KEY: pl.String(),
    ORD: pl.Int64(),
    "seq": pl.Int64(),
    "timestamp": STATE_META[CHANGED_AT],
    "event_type": pl.String(),
    "event_id": pl.String(),
    "op": pl.String(),
    "action": pl.String(),
    "payload": pl.String(),
    WEIGHT: pl.UInt32(),
    START: pl.Boolean(),
}
"""The rows the fold works on, per model (undecoded)."""


@dataclass
class ModelRows:
    """One model's fold rows: undecoded (``fields`` None) or with decoded field columns."""

    rows: pl.DataFrame
    fields: list[str] | None = None


@dataclass
class Rows:
    """Every CRUD model's fold rows plus the anomalies found while building them."""

    models: dict[str, ModelRows]
    anomalies: list[pl.DataFrame] = field(default_factory=list)


def crud_rows(
    events: pl.DataFrame,
    *,
    custom_types: Collection[str] = (),
    primary_keys: Mapping[str, str] | None = None,
) -> Rows:
    """:func:`crud_frame`'s rows split by model."""
    frame, anomalies = crud_frame(events, custom_types=custom_types, primary_keys=primary_keys)
    models = {
        str(name[0]): ModelRows(part.drop("model"))
        for name, part in frame.partition_by("model", as_dict=True, maintain_order=True).items()
    }
    return Rows(models, anomalies)


def crud_frame(
    events: pl.DataFrame,
    *,
    custom_types: Collection[str] = (),
    primary_keys: Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """The fold rows (``model`` then ``ROW_SCHEMA``) of an event frame, and the anomalies met building them.

    ``events`` has the ``EVENT_SCHEMA`` columns (at least ``seq``, ``timestamp``,
    ``event_type``, ``short_type``, ``model``, ``op``, ``aggregate_id``,
    ``payload``, ``record_kind``). Records that are not CRUD envelopes, or
    whose short type has a custom reducer, are not part of the result.
    """
    actions = pl.col("op").replace_strict(crud.ACTIONS, default=None, return_dtype=pl.String())
    frame = events.lazy().filter(
        pl.col("model").is_not_null()
        & pl.col("op").is_in(list(crud.ACTIONS))
        & (pl.col("record_kind") == "envelope")
        & ~pl.col("short_type").is_in(list(custom_types))
    ).select(
        pl.col("model"),
        pl.col("aggregate_id").alias(KEY),
        pl.col("seq").cast(pl.Int64).alias(ORD),
        pl.col("seq").cast(pl.Int64),
        pl.col("timestamp"),
        pl.col("event_type"),
        pl.col("event_id"),
        pl.col("op"),
        actions.alias("action"),
        pl.col("payload"),
        pl.lit(1, pl.UInt32).alias(WEIGHT),
        pl.lit(value=False).alias(START),
    ).collect(engine=ENGINE)
    anomalies: list[pl.DataFrame] = []
    if frame[KEY].null_count():
        frame, missing = _keys_from_payloads(frame, primary_keys or {})
        anomalies.append(missing)
    return frame, anomalies


def _keys_from_payloads(frame: pl.DataFrame, primary_keys: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    # Only records without `aggregate_id` (legacy ones) get here. The key's text
    # depends on the JSON type of the primary key (5 -> "5"), which
    # `crud.entity_key` defines once, so this runs in Python on those rows only.
    rows = frame.filter(pl.col(KEY).is_null())
    keys: list[str | None] = []
    problems: list[str | None] = []
    for model, text in zip(rows["model"], rows["payload"], strict=True):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            keys.append(None)
            problems.append("bad_payload")
            continue
        key = crud.entity_key(None, data, primary_keys.get(model, crud.DEFAULT_PRIMARY_KEY))
        keys.append(key)
        problems.append(None if key is not None else "missing_key")
    rows = rows.with_columns(pl.Series(KEY, keys, pl.String()), pl.Series("kind", problems, pl.String()))
    bad = rows.filter(pl.col("kind").is_not_null())
    anomalies = bad.select(
        "seq",
        "timestamp",
        "event_type",
        "model",
        KEY,
        "kind",
        pl.when(pl.col("kind") == "missing_key")
        .then(pl.lit("no `aggregate_id` and no `") + pl.col("model").replace_strict(
            primary_keys, default=crud.DEFAULT_PRIMARY_KEY, return_dtype=pl.String()
        ) + pl.lit("` in the payload"))
        .otherwise(pl.lit("the payload is not valid JSON"))
        .alias("detail"),
    )
    good = rows.filter(pl.col("kind").is_null()).drop("kind")
    fixed = pl.concat([frame.filter(pl.col(KEY).is_not_null()), good]).sort(ORD)
    return fixed, anomalies.cast(ANOMALY_SCHEMA)  # type: ignore[arg-type]


def payload_flags(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, ...] | None]]:
    """Fold rows with ``IS_OBJ`` (the payload is a JSON object), ``_valid`` and ``SHAPE``.

    A payload is JSON when the engine can read it (:func:`payload_keys`);
    one that is not becomes ``null``, the value the engine applies (and
    ``_valid`` says so). Deletes are valid and not objects whatever their
    payload. Returns the rows and, per shape, the keys of its objects.
    """
    shapes, valid, keys = payload_keys(rows["payload"].fill_null("null"))
    objects = np.array([k is not None for k in keys] or [False])
    delete = pl.col("action") == "delete"
    valid_ = pl.col("_valid")
    flagged = rows.with_columns(
        pl.Series(SHAPE, shapes, pl.UInt32),
        pl.Series("_valid", valid, pl.Boolean),
        pl.Series(IS_OBJ, objects[shapes] & valid, pl.Boolean),
    ).with_columns(
        (delete.not_() & pl.col(IS_OBJ)).alias(IS_OBJ),
        (delete | valid_).alias("_valid"),
        pl.when(delete | valid_).then(pl.col("payload")).otherwise(pl.lit("null")).alias("payload"),
    )
    return flagged, keys


SHAPE = "_shape"
"""A payload's shape number (:func:`payload_keys`)."""


def payload_keys(values: pl.Series) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...] | None]]:
    """Per payload its shape number and whether it is JSON; per shape the keys of its objects.

    JSON means what the engine can read (``orjson.loads``): the shape pass
    says so for the payloads it is sure of, orjson for the others. A shape's
    keys come from its first JSON payload (None when it has none, or is not
    an object): payloads of one shape hold the same keys.
    """
    ids, valid = payload.row_shapes(values)
    unsure = np.flatnonzero(~valid)
    valid[unsure] = [_is_json(v) for v in values.gather(unsure).to_list()]
    rows = np.flatnonzero(valid)
    shapes, at = np.unique(ids[rows], return_index=True)
    keys: list[tuple[str, ...] | None] = [None] * (int(ids.max()) + 1 if len(ids) else 0)
    for shape, text_k in zip(shapes.tolist(), values.gather(rows[at]).to_list(), strict=True):
        obj = orjson.loads(text_k)
        keys[shape] = tuple(obj) if isinstance(obj, dict) else None
    return ids, valid, keys


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def flag_rows(rows: pl.DataFrame) -> pl.LazyFrame:
    """One model's rows (in ``ORD`` order) with their payload flags, flagged by :func:`life_flags`."""
    flagged = payload_flags(rows)[0].drop(SHAPE)
    seed = 0
    while (ordered := by_entity(flagged.with_columns(entity([KEY], seed)), [KEY])) is None:
        seed += 1  # two entities share a number: another seed
    return life_flags(ordered.lazy())


ENTITY = "_entity"
"""An entity's number in a frame of fold rows (:func:`entity`)."""


def entity(keys: list[str], seed: int = 0) -> pl.Expr:
    """The ``ENTITY`` column: a hash of the entity's key columns.

    Integers sort and join many times faster than strings; :func:`by_entity`
    finds the (rare) entities that share a number, and a caller then tries
    another ``seed``.
    """
    return (pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])).hash(seed).alias(ENTITY)


def by_entity(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame | None:
    """Rows with ``ENTITY``, each entity's in ``ORD`` order, sorted by entity; None when two entities share a number."""
    out = rows.sort(ENTITY, maintain_order=True)
    same = pl.col(ENTITY) == pl.col(ENTITY).shift(1)
    clash = out.select((same & pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys])).any()).item()
    return None if clash else out


def life_flags(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows in :func:`by_entity`'s order, each flagged by the fold's rules.

    ``_in_life``: no delete of the entity follows the row; ``_live_before``:
    the entity was live before it; ``_base``: it replaces the value outright
    (in life, and an upsert, not an object, or the life's first);
    ``_contributes``: in life from the last base on; ``_last``: the
    entity's last row. The rows need ``action`` and ``IS_OBJ``.
    """
    entity = pl.col(ENTITY)
    first = (entity != entity.shift(1)).fill_null(value=True)
    delete = pl.col("action") == "delete"
    prev = pl.when(first.not_()).then(pl.col("action").shift(1))
    last_delete = pl.col(ORD).filter(delete).max().over(entity)
    return (
        rows.with_columns(
            (prev.is_not_null() & (prev != "delete")).alias("_live_before"),
            (last_delete.is_null() | (pl.col(ORD) > last_delete)).alias("_in_life"),
            (entity != entity.shift(-1)).fill_null(value=True).alias("_last"),
        )
        .with_columns(
            (pl.col("_in_life") & (pl.col("_live_before").not_() | (pl.col("action") == "upsert") | pl.col(IS_OBJ).not_())).alias("_base")
        )
        .with_columns(
            (pl.col("_in_life") & (pl.col(ORD) >= pl.col(ORD).filter(pl.col("_base")).max().over(entity))).alias("_contributes")
        )
    )


def anomalies_of(flagged: pl.LazyFrame, model: str | None) -> pl.LazyFrame:
    """Updates before create, deletes of unknown keys, creates over live entities, odd payloads.

    ``model`` names the rows' model, or None when they have a ``model`` column.
    """
    kind = (
        pl.when(pl.col(START))
        .then(None)
        .when(pl.col("_valid").not_())
        .then(pl.lit("bad_payload"))
        .when((pl.col("action") == "merge") & pl.col("_live_before").not_())
        .then(pl.lit("update_before_create"))
        .when((pl.col("action") == "delete") & pl.col("_live_before").not_())
        .then(pl.lit("delete_unknown"))
        .when((pl.col("op") == "Created") & pl.col("_live_before"))
        .then(pl.lit("create_over_live"))
        .when((pl.col("action") != "delete") & pl.col(IS_OBJ).not_())
        .then(pl.lit("not_object"))
    )
    return (
        flagged.with_columns(kind.alias("kind"))
        .filter(pl.col("kind").is_not_null())
        .select(
            "seq",
            "timestamp",
            "event_type",
            pl.col("model") if model is None else pl.lit(model).alias("model"),
            KEY,
            "kind",
            pl.col("kind").replace_strict(_DETAIL, return_dtype=pl.String()).alias("detail"),
        )
        .cast(ANOMALY_SCHEMA)  # type: ignore[arg-type]
    )


_DETAIL = {
    "bad_payload": "the payload is not valid JSON; the entity's value became null",
    "update_before_create": "the entity was not live; it starts from this payload alone",
    "delete_unknown": "the entity was not live; nothing deleted",
    "create_over_live": "the entity was live; the payload replaced it",
    "not_object": "the payload is not a JSON object; it became the entity's value",
}


COLLISION_PREFIX = "payload."
"""Prefix of a payload field whose name is a state column (``_key`` -> ``payload._key``)."""


def column_name(field: str) -> str:
    """The state frame's column for a payload field."""
    return COLLISION_PREFIX + field if field in STATE_META or field == VALUE else field


def decode_rows(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Add the decoded field columns and their presence flags to fold rows; returns the rows and their fields.

    A field is present in a row when the row's payload holds it, even as
    null (the payload decoder tells an explicit null from an absent key). A
    field whose values have JSON types that do not mix is JSON text.
    """
    rows = rows.with_row_index("_row")
    objects = rows.filter(pl.col(IS_OBJ))
    struct, present = _decode(objects["payload"])
    fields = list(struct.struct.fields)
    decoded = objects.with_columns(
        *(struct.struct.field(f).alias(FIELD + f) for f in fields),
        *(present.get_column(f).alias(PRESENT + f) for f in fields),
    )
    others = rows.filter(pl.col(IS_OBJ).not_())
    if others.height:  # back in the rows' order: the folds' `last()` relies on it
        decoded = pl.concat([decoded, others], how="diagonal_relaxed").sort("_row")
    return decoded.drop("_row"), fields


def _decode(payloads: pl.Series) -> tuple[pl.Series, pl.DataFrame]:
    """Payloads -> (struct, presence frame), by the package's payload decoder.

    A field whose values have several JSON types (an object and a list, a
    string and a number) is kept as JSON text, faithfully.
    """
    if len(payloads) == 0:
        return pl.Series(payloads.name, [], pl.Struct({})), pl.DataFrame()
    decoded = payload.decode_objects(payloads, strict=False, presence=True)
    return decoded.struct, decoded.presence  # type: ignore[return-value]


def start_rows(models: Mapping[str, Mapping[str, Any]], versions: Mapping[str, Mapping[str, Any]]) -> dict[str, ModelRows]:
    """Fold rows standing for a state (model -> key -> object) and its versions.

    ``versions`` is model -> key -> ``[version_count, unix_seconds, seq]`` as
    the engine keeps it; an entity without one (changed only by custom
    reducers) gets null version columns.
    """
    out = {}
    for model, entities in models.items():
        if not entities:
            continue
        vs = versions.get(model, {})
        info = [vs.get(k) or (None, None, None) for k in entities]
        rows = pl.DataFrame(
            {
                KEY: list(entities),
                ORD: [-1] * len(entities),
                "seq": [v[2] for v in info],
                "timestamp": [v[1] for v in info],
                "event_type": None,
                "event_id": None,
                "op": None,
                "action": "upsert",
                "payload": [orjson.dumps(o).decode() for o in entities.values()],
                WEIGHT: [v[0] for v in info],
                START: True,
            },
            schema_overrides={"timestamp": pl.Int64},
        ).with_columns(pl.from_epoch("timestamp", "s").dt.replace_time_zone("UTC"))
        out[model] = ModelRows(rows.cast(ROW_SCHEMA))  # type: ignore[arg-type]
    return out


def concat_rows(*parts: ModelRows | None) -> ModelRows:
    """One model's rows from several undecoded parts (a start, then events)."""
    frames = [p.rows for p in parts if p is not None]
    return ModelRows(pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0])


def finish_plans(rows: pl.LazyFrame, fields: list[str]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Plans of :func:`finish`: the state with every field, and one row saying which are held.

    Collect both (with others, in one ``collect_all``) and pass them to
    :func:`finished`.
    """
    # Fields in name order: first appearance would depend on the path
    # (checkpoint, replay, index) and on superseded records, not on the state.
    present = sorted(f for f in fields if PRESENT + f in rows.collect_schema())
    # A value that is not an object is kept as its JSON text (a payload that
    # is not JSON is "null" by now: :func:`payload_flags`).
    value = pl.when(pl.col(IS_OBJ).not_()).then(pl.col("payload"))
    state = rows.select(
        pl.col(KEY),
        pl.col(WEIGHT).cast(pl.UInt32).alias(VERSION),
        pl.col("timestamp").alias(CHANGED_AT),
        pl.col("seq").alias(CHANGED_SEQ),
        *(pl.col(FIELD + f).alias(column_name(f)) for f in present),
        value.alias(VALUE),
    ).sort(KEY)
    held = rows.select(
        *(pl.col(PRESENT + f).any().alias(column_name(f)) for f in present),
        value.is_not_null().any().alias(VALUE),
    )
    return state, held


def finished(state: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """The state frame from the collected plans of :func:`finish_plans` (columns nobody holds dropped)."""
    if state.height == 0:
        return pl.DataFrame(schema=STATE_META)
    flags = held.row(0, named=True)
    return state.drop([c for c, on in flags.items() if not on])


NEXT = "_next"
"""In a version index: the ``ORD`` of the entity's next event (the version holds until it)."""
_NEVER = 2**62


def versions(decoded: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Every version of every entity: the state after each of its events, as carried rows.

    ``decoded`` holds a model's fold rows, decoded (:func:`decode_rows`),
    each entity's together and in ``ORD`` order (as :func:`flag_rows` orders them). Each event that leaves the entity live gives one
    row in the form :func:`finish_plans` reads, plus ``ORD`` (the event) and
    ``NEXT`` (the entity's next event): the state after the first ``p``
    records is made of the rows with ``ORD < p <= NEXT``. The rules are
    those of :func:`life_flags` (a life after each delete, a base from which
    fields merge), computed for every prefix at once.
    """
    delete = (pl.col("action") == "delete").cast(pl.UInt32)
    prev = pl.when(pl.col(KEY) == pl.col(KEY).shift(1)).then(pl.col("action").shift(1))
    live_before = prev.is_not_null() & (prev != "delete")
    frame = decoded.with_row_index("_i").with_columns(
        (delete.cum_sum() - delete).over(KEY).alias("_life"),
        (live_before.not_() | (pl.col("action") == "upsert") | pl.col(IS_OBJ).not_()).alias("_base"),
        pl.col(ORD).shift(-1).over(KEY).fill_null(_NEVER).alias(NEXT),
    ).with_columns(pl.col("_base").cast(pl.UInt32).cum_sum().over(KEY).alias("_seg"))
    life, seg = [KEY, "_life"], [KEY, "_seg"]
    last = {f: pl.when(pl.col(PRESENT + f)).then(pl.col("_i")).forward_fill().over(seg) for f in fields}
    weights = pl.col(WEIGHT).is_not_null().cum_sum().over(life) > 0
    return frame.select(
        KEY,
        ORD,
        NEXT,
        pl.col("seq").forward_fill().over(life),
        pl.col("timestamp").forward_fill().over(life),
        pl.when(weights).then(pl.col(WEIGHT).fill_null(0).cum_sum().over(life)).cast(pl.UInt32).alias(WEIGHT),
        pl.when(pl.col(IS_OBJ).not_()).then(pl.col("payload")).alias("payload"),
        IS_OBJ,
        *(pl.col(FIELD + f).gather(last[f]) for f in fields),
        *(last[f].is_not_null().alias(PRESENT + f) for f in fields),
        (pl.col("action") == "delete").alias("_gone"),
    ).filter(pl.col("_gone").not_()).drop("_gone")


class VersionIndex:
    """A model's versions (:func:`versions`) ordered by event, with the current set every ``step`` rows.

    The versions current at position ``p`` are those with ``ORD < p <= NEXT``:
    the rows before the first with ``ORD >= p``, less those replaced before
    ``p``. Every ``step`` rows the index keeps which earlier rows are still
    current there, so a query reads that set and at most ``step`` rows after
    it, not every version of the model.
    """

    def __init__(self, rows: pl.DataFrame, fields: list[str], *, step: int = 4096) -> None:
        self.fields, self.step = fields, step
        self.rows = rows.sort(ORD, maintain_order=True)
        order = self.rows[ORD]
        nxt = self.rows[NEXT]
        self._ord = order
        # current[j]: rows i < j * step still current after row j * step - 1
        # (their NEXT is past that row's ORD).
        self._current: list[pl.Series] = []
        for j in range(self.rows.height // step + 1):
            end = j * step
            if end == 0:
                self._current.append(pl.Series("i", [], pl.UInt32))
                continue
            after = int(order[end - 1]) + 1
            head = nxt.head(end)
            self._current.append((head >= after).arg_true().cast(pl.UInt32))

    def at(self, position: int | None) -> pl.LazyFrame:
        """The versions current after the first ``position`` records (None: every record), as a plan."""
        p = _NEVER if position is None else position
        hi = int(self._ord.search_sorted(p, side="left"))  # rows with ORD < p
        j = hi // self.step
        start = j * self.step
        rows = pl.concat([self.rows[self._current[j]], self.rows.slice(start, hi - start)])
        return rows.lazy().filter(pl.col(NEXT) >= p)

    def estimated_size(self, unit: str = "mb") -> float:
        scale = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30}[unit]
        return self.rows.estimated_size(unit) + sum(4 * len(c) for c in self._current) / scale  # type: ignore[arg-type]


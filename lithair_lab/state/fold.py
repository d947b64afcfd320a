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

Only the rows from each live entity's base on are decoded, so a cold query
decodes little more than the live state when updates carry whole objects.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from dataclasses import dataclass, field

import orjson
import polars as pl

from lithair_lab.formats import crud
from lithair_lab.frames import payload

from .columns import ANOMALY_SCHEMA, CHANGED_AT, CHANGED_SEQ, KEY, STATE_META, VALUE, VERSION

FIELD = "f:"  # prefix of decoded field columns inside the fold
PRESENT = "p:"  # prefix of their presence flags
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
    """Split an event frame into per-model fold rows.

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
    ).collect()
    anomalies: list[pl.DataFrame] = []
    if frame[KEY].null_count():
        frame, missing = _keys_from_payloads(frame, primary_keys or {})
        anomalies.append(missing)
    models = {
        str(name[0]): ModelRows(part.drop("model"))
        for name, part in frame.partition_by("model", as_dict=True, maintain_order=True).items()
    }
    return Rows(models, anomalies)


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


def payload_flags(rows: pl.LazyFrame, *, check_json: bool) -> pl.LazyFrame:
    """Add ``IS_OBJ`` (the payload is a JSON object) and ``_valid`` to undecoded rows.

    With ``check_json`` every payload is parsed to tell invalid JSON (which the
    engine applies as a null value) from an object; otherwise a payload that
    starts with ``{`` counts as an object until decoding says otherwise.
    Rows that have the flags already are returned as they are.
    """
    if IS_OBJ in rows.collect_schema():
        return rows
    is_obj = pl.col("payload").str.strip_chars_start().str.starts_with("{")
    valid = pl.col("payload").str.json_path_match("$").is_not_null() | (pl.col("payload").str.strip_chars() == "null")
    not_delete = pl.col("action") != "delete"
    return rows.with_columns(
        (not_delete & is_obj & (valid if check_json else pl.lit(value=True))).alias(IS_OBJ),
        (not_delete.not_() | valid if check_json else pl.lit(None, pl.Boolean)).alias("_valid"),
    )


def flag_rows(rows: pl.LazyFrame, *, check_json: bool) -> pl.LazyFrame:
    """Per row: is it in its entity's current life, is it from the base on, anomalies.

    Rows without payload flags get them first (:func:`payload_flags`).
    """
    same = pl.col(KEY) == pl.col(KEY).shift(1)
    prev_action = pl.when(same).then(pl.col("action").shift(1))
    deletes_after = (pl.col("action") == "delete").cast(pl.UInt32).reverse().cum_sum().reverse().over(KEY)
    return (
        payload_flags(rows, check_json=check_json)
        .sort(KEY, ORD)
        .with_columns(
            (deletes_after == 0).alias("_in_life"),
            (prev_action.is_not_null() & (prev_action != "delete")).alias("_live_before"),
        )
        .with_columns(
            pl.when(pl.col("_in_life") & pl.col("_live_before").not_())
            .then(pl.lit(value=True))
            .when(pl.col("_in_life"))
            .then((pl.col("action") == "upsert") | pl.col(IS_OBJ).not_())
            .otherwise(pl.lit(value=False))
            .alias("_base")
        )
        .with_columns(
            (
                pl.col("_in_life")
                & (pl.col(ORD) >= pl.col(ORD).filter(pl.col("_base")).max().over(KEY))
            ).alias("_contributes")
        )
    )


def anomalies_of(flagged: pl.LazyFrame, model: str) -> pl.LazyFrame:
    """Updates before create, deletes of unknown keys, creates over live entities, odd payloads."""
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
            pl.lit(model).alias("model"),
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


class _InvalidJSON(Exception):
    """A payload that starts like an object is not valid JSON."""


def decode_rows(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[str], set[str]]:
    """Add the decoded field columns and their presence flags to fold rows.

    A field is present in a row when the row's payload holds it, even as
    null (the payload decoder tells an explicit null from an absent key).
    Returns the rows, their fields, and the fields kept as JSON text (their
    values have JSON types that do not mix).
    """
    objects = rows.filter(pl.col(IS_OBJ))
    struct, present, text = _decode(objects["payload"])
    fields = list(struct.struct.fields)
    decoded = objects.with_columns(
        *(struct.struct.field(f).alias(FIELD + f) for f in fields),
        *(present.get_column(f).alias(PRESENT + f) for f in fields),
    )
    others = rows.filter(pl.col(IS_OBJ).not_())
    if others.height == 0:
        return decoded, fields, text  # still in (KEY, ORD) order: the folds' `last()` relies on it
    return pl.concat([decoded, others], how="diagonal_relaxed").sort(KEY, ORD), fields, text


def _decode(payloads: pl.Series) -> tuple[pl.Series, pl.DataFrame, set[str]]:
    """Payloads -> (struct, presence frame, fields kept as JSON text), by the package's payload decoder.

    A field whose values have several JSON types (an object and a list, a
    string and a number) is kept as JSON text, faithfully. Raises
    ``_InvalidJSON`` for a payload that is not a JSON object.
    """
    if len(payloads) == 0:
        return pl.Series(payloads.name, [], pl.Struct({})), pl.DataFrame(), set()
    try:
        decoded = payload.decode_objects(payloads, strict=False, presence=True)
    except payload.InvalidPayloadError:
        raise _InvalidJSON from None
    return decoded.struct, decoded.presence, set(decoded.text)  # type: ignore[return-value]


def json_text(values: pl.Series) -> pl.Series:
    """Decoded values as JSON text (null stays null): the form of a field whose types do not mix."""
    out = [None if v is None else orjson.dumps(v).decode() for v in values.to_list()]
    return pl.Series(values.name, out, pl.String())


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


# -- the streaming fold: state so far + one chunk of rows -> state -----------------------------

DECODED = "_decoded"
"""Marks rows whose field columns are decoded already (a carried state's rows)."""


@dataclass
class Carried:
    """One model's state so far, as fold rows: one decoded starting row per live entity.

    A row has the columns of ``ROW_SCHEMA`` (``ORD`` -1, ``START`` true,
    ``WEIGHT`` the version count, ``seq``/``timestamp`` of the last change,
    ``payload`` the value's JSON text when it is not an object), ``IS_OBJ``,
    ``_valid``, ``DECODED``, and per field its value (``FIELD``) and whether
    the entity holds it (``PRESENT``, true even for a field set to null).
    ``text`` names the fields kept as JSON text because their types do not mix.
    """

    rows: pl.DataFrame
    fields: list[str] = field(default_factory=list)
    text: set[str] = field(default_factory=set)


def fold_chunk(
    carried: Carried | None, rows: pl.DataFrame, *, name: str = "", anomalies: bool = True, check_json: bool = False
) -> tuple[Carried, pl.DataFrame]:
    """Fold one chunk of a model's rows (undecoded, ``ROW_SCHEMA``) onto its state so far.

    Only the entities the chunk touches are folded again, from their carried
    row; the others are kept as they are. The result does not depend on
    where chunks begin and end (the carried row stands for everything before
    the chunk, as a checkpoint does). Returns the new state and the chunk's
    anomalies.
    """
    events = payload_flags(rows.lazy(), check_json=check_json).collect()
    untouched = None
    window = events
    if carried is not None and carried.rows.height:
        keys = events.select(KEY).unique()
        untouched = carried.rows.join(keys, on=KEY, how="anti")
        window = pl.concat([carried.rows.join(keys, on=KEY, how="semi"), events], how="diagonal_relaxed")
    flagged = flag_rows(window.lazy(), check_json=check_json).collect()
    contributing = flagged.filter(pl.col("_contributes"))
    done = pl.col(DECODED).fill_null(value=False) if DECODED in contributing.columns else pl.lit(value=False)
    extra = [c for c in contributing.columns if c.startswith((FIELD, PRESENT)) or c == DECODED]
    try:
        decoded, fields, text = decode_rows(contributing.filter(done.not_()).drop(extra))
    except _InvalidJSON:
        if check_json:
            raise
        return fold_chunk(carried, rows, name=name, anomalies=anomalies, check_json=True)
    old_fields, old_text = (carried.fields, carried.text) if carried is not None else ([], set())
    given = [c.removeprefix(FIELD) for c in window.columns if c.startswith(FIELD)]  # rows decoded already
    old_fields = [*old_fields, *(f for f in given if f not in old_fields)]
    fields = [*old_fields, *(f for f in fields if f not in old_fields)]
    parts = _unify([contributing.filter(done), decoded], fields, old_text, text)
    text = parts.pop()
    merged = pl.concat(parts, how="diagonal_relaxed").sort(KEY, ORD)
    state = _carry(flagged, merged, fields)
    if untouched is not None and untouched.height:
        *parts, text = _unify([untouched, state], fields, old_text, text)
        state = pl.concat(parts, how="diagonal_relaxed")
    found = anomalies_of(flagged.lazy(), name).collect() if anomalies else pl.DataFrame(schema=ANOMALY_SCHEMA)
    return Carried(state, fields, text), found


def _unify(frames: list[pl.DataFrame], fields: list[str], text_a: set[str], text_b: set[str]) -> list[Any]:
    """Make two frames' field columns concatenable: a field kept as JSON text in
    one (``text_a`` for the first, ``text_b`` for the second), or whose types
    have no common supertype, becomes JSON text in both. Returns the frames
    and, last, the set of text fields."""
    a, b = frames
    text = text_a | text_b
    for f in fields:
        col = FIELD + f
        if col not in a.columns or col not in b.columns or f in text:
            continue
        x, y = a.schema[col], b.schema[col]
        if x == y or x == pl.Null or y == pl.Null:
            continue
        if not (x.is_numeric() and y.is_numeric()) and type(x) is not type(y):
            text.add(f)  # two JSON types (a string and a number...), as one chunk's decode keeps them
            continue
        try:
            pl.concat([a.select(col).head(0), b.select(col).head(0)], how="vertical_relaxed")
        except (pl.exceptions.SchemaError, pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
            text.add(f)
    for f in text:
        col = FIELD + f
        if col in a.columns and f not in text_a:
            a = a.with_columns(json_text(a[col]))
        if col in b.columns and f not in text_b:
            b = b.with_columns(json_text(b[col]))
    return [a, b, text]


def _carry(flagged: pl.DataFrame, decoded: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """The carried rows of the entities folded in a chunk (those live at its end)."""
    life = flagged.lazy().filter(pl.col("_in_life")).group_by(KEY).agg(
        pl.when(pl.col(WEIGHT).is_not_null().any()).then(pl.col(WEIGHT).sum().cast(pl.UInt32)).alias(WEIGHT),
        pl.col("timestamp").drop_nulls().last(),
        pl.col("seq").drop_nulls().last(),
    )
    present = [f for f in fields if PRESENT + f in decoded.columns]
    values = decoded.lazy().group_by(KEY).agg(
        *(pl.col(FIELD + f).filter(pl.col(PRESENT + f)).last() for f in present),
        *(pl.col(PRESENT + f).fill_null(value=False).any() for f in present),
        pl.when(pl.col(IS_OBJ).last().not_()).then(pl.col("payload").last()).alias("payload"),
    )
    return (
        life.join(values, on=KEY, how="left")
        .select(
            KEY,
            pl.lit(-1, pl.Int64).alias(ORD),
            "seq",
            "timestamp",
            pl.lit(None, pl.String).alias("event_type"),
            pl.lit(None, pl.String).alias("event_id"),
            pl.lit(None, pl.String).alias("op"),
            pl.lit("upsert").alias("action"),
            "payload",
            WEIGHT,
            pl.lit(value=True).alias(START),
            pl.col("payload").is_null().alias(IS_OBJ),
            pl.lit(value=True).alias("_valid"),
            pl.lit(value=True).alias(DECODED),
            *(pl.col(FIELD + f) for f in present),
            *(pl.col(PRESENT + f) for f in present),
        )
        .collect()
    )


def finish(carried: Carried | None) -> pl.DataFrame:
    """The state frame of a carried state: ``STATE_META``, the fields some live
    entity holds (even as null), then ``VALUE`` when some value is not an object."""
    if carried is None:
        return pl.DataFrame(schema=STATE_META)
    return finished(*pl.collect_all(finish_plans(carried.rows.lazy(), carried.fields)))


def finish_plans(rows: pl.LazyFrame, fields: list[str]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Plans of :func:`finish`: the state with every field, and one row saying which are held.

    Collect both (with others, in one ``collect_all``) and pass them to
    :func:`finished`.
    """
    present = [f for f in fields if PRESENT + f in rows.collect_schema()]
    # A value that is not an object is kept as its JSON text; a payload that
    # is not JSON at all is applied as null, as the engine does.
    value = pl.when(pl.col(IS_OBJ).not_()).then(pl.col("payload"))
    valid = value.str.json_path_match("$").is_not_null() | (value.str.strip_chars() == "null")
    state = rows.select(
        pl.col(KEY),
        pl.col(WEIGHT).cast(pl.UInt32).alias(VERSION),
        pl.col("timestamp").alias(CHANGED_AT),
        pl.col("seq").alias(CHANGED_SEQ),
        *(pl.col(FIELD + f).alias(column_name(f)) for f in present),
        pl.when(value.is_null() | valid).then(value).otherwise(pl.lit("null")).alias(VALUE),
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
    sorted by ``(KEY, ORD)``. Each event that leaves the entity live gives one
    row in the form of :class:`Carried` rows, plus ``ORD`` (the event) and
    ``NEXT`` (the entity's next event): the state after the first ``p``
    records is made of the rows with ``ORD < p <= NEXT``. The rules are
    those of :func:`fold_chunk` (a life after each delete, a base from which
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

    def __init__(self, rows: pl.DataFrame, fields: list[str], text: set[str], *, step: int = 4096) -> None:
        self.fields, self.text, self.step = fields, text, step
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


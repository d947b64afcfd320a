"""What changed between two moments, field by field."""

from __future__ import annotations

import polars as pl

from lithair_lab.engine.reducers import ReducerRegistry

from .at import Reducers, State, fold_all_at
from .columns import DIFF_SCHEMA, KEY, STATE_META, VALUE
from .moment import moment
from .source import Source, stream


def diff(
    source: Source, t1: object, t2: object = None, *, reducers: Reducers = None, on_damage: str = "raise"
) -> pl.DataFrame:
    """Entities created, deleted and updated between two moments, with old and new values.

    Parameters
    ----------
    source
        A data directory or an event frame from :func:`lithair_lab.scan`.
    t1, t2
        The two moments, as ``at=`` of :func:`state_at` (a datetime, ISO
        string, Unix seconds) or a :class:`Moment`; ``t2=None`` is the head.
    reducers
        Custom reducers, as for :func:`state_at`.
    on_damage
        For a directory, as for :func:`lithair_lab.scan`: ``"raise"`` (default)
        at the first damaged record, or ``"report"`` to fold the intact ones
        (list the damage with :func:`lithair_lab.read_damage`).

    Returns
    -------
    polars.DataFrame
        Schema :data:`lithair_lab.state.DIFF_SCHEMA`: ``model``, ``_key``,
        ``change`` (``created`` | ``deleted`` | ``updated``), ``field``,
        ``old``, ``new``. One row per field that differs, values as JSON
        text (null where the field is absent or null). A created or deleted
        entity has one row per non-null field (one row with a null ``field``
        when it has none). An entity live at both moments is ``updated`` even
        when it was deleted and created again in between (its
        :func:`history` shows the lives). Sorted by model, key, field.

    See Also
    --------
    diff_states : The same between two states already computed.
    """
    histories = stream(source, on_damage=on_damage)
    registry = ReducerRegistry.coerce(reducers)  # type: ignore[arg-type]
    before, after = fold_all_at(histories, [moment(t1), moment(t2)], registry, warn=False)
    return diff_states(before, after)


def diff_states(before: State | dict[str, pl.DataFrame], after: State | dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The field-level difference between two states (see :func:`diff`)."""
    parts = []
    for model in sorted(set(before) | set(after)):
        old = before.get(model)
        new = after.get(model)
        parts.append(_diff_model(model, _as_text(old), _as_text(new)))
    frames = [p for p in parts if p.height]
    if not frames:
        return pl.DataFrame(schema=DIFF_SCHEMA)
    return pl.concat(frames).sort("model", KEY, "field", nulls_last=False)


def _as_text(frame: pl.DataFrame | None) -> pl.DataFrame:
    """KEY plus every field as JSON text (the meta columns dropped)."""
    if frame is None:
        return pl.DataFrame(schema={KEY: pl.String()})
    fields = [c for c in frame.columns if c not in STATE_META]
    return frame.select(
        KEY,
        *(
            pl.col(f) if f == VALUE else _json_text(f)
            for f in fields
        ),
    )


def _json_text(field: str) -> pl.Expr:
    # {"f":value} -> value: the struct encoder writes JSON for any dtype.
    prefix = len(pl.DataFrame({field: [None]}).select(pl.struct(field).struct.json_encode()).item()) - len("null}")
    encoded = pl.struct(pl.col(field)).struct.json_encode()
    text = encoded.str.slice(prefix, encoded.str.len_bytes() - prefix - 1)
    return pl.when(pl.col(field).is_null()).then(None).otherwise(text).alias(field)


def _diff_model(model: str, old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    fields = list(dict.fromkeys([c for c in (*old.columns, *new.columns) if c != KEY]))
    old = old.with_columns(*(pl.lit(None, pl.String).alias(f) for f in fields if f not in old.columns))
    new = new.with_columns(*(pl.lit(None, pl.String).alias(f) for f in fields if f not in new.columns))
    joined = _join(old, new, fields)
    rows = [
        joined.filter(pl.col(f).ne_missing(pl.col(f + ":new"))).select(
            pl.lit(model).alias("model"),
            KEY,
            "change",
            pl.lit(f).alias("field"),
            pl.col(f).alias("old"),
            pl.col(f + ":new").alias("new"),
        )
        for f in fields
    ]
    empty = [pl.col(f).is_null() & pl.col(f + ":new").is_null() for f in fields]
    bare = joined.filter(
        (pl.col("change") != "updated") & (pl.all_horizontal(empty) if empty else pl.lit(value=True))
    ).select(pl.lit(model).alias("model"), KEY, "change", *(pl.lit(None, pl.String).alias(c) for c in ("field", "old", "new")))
    return pl.concat([*rows, bare]).cast(DIFF_SCHEMA)  # type: ignore[arg-type]


def _join(old: pl.DataFrame, new: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    left = old.with_columns(pl.lit(value=True).alias("_old"))
    right = new.rename({f: f + ":new" for f in fields}).with_columns(pl.lit(value=True).alias("_new"))
    joined = left.join(right, on=KEY, how="full", coalesce=True)
    return joined.with_columns(
        pl.when(pl.col("_old").is_null())
        .then(pl.lit("created"))
        .when(pl.col("_new").is_null())
        .then(pl.lit("deleted"))
        .otherwise(pl.lit("updated"))
        .alias("change")
    )

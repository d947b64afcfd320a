"""The incremental CRUD fold: a history fed chunk by chunk, decoded once at the end.

The state of an entity is its current life's base value merged with the
fields of the events after it (:mod:`lithair_lab.state.fold` states the
rules). So of all its records, the state needs only the last one to set
each field, and the last one (which says whether the value is an object at
all). :class:`Fold` keeps exactly those records per live entity, undecoded,
plus the entity's version count and last change; each chunk is folded onto
them with a few Polars queries over small columns. Which fields a payload
sets comes from its *shape* (:mod:`lithair_lab.frames.payload`), one parse
per shape rather than per record, and which payloads are JSON at all from a
strict check in the same pass (orjson decides the rare ones it leaves
open). Payloads are decoded once, when the state is asked for, and only
those that hold a live value (merged per entity first, so that the frame
depends on the state alone): memory holds the live state plus a chunk or
two (:func:`prepare` lets the next one be made ready in another thread), and
a cold fold decodes little more than the state itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import orjson
import polars as pl

from lithair_lab.formats import crud
from lithair_lab.formats.batch import owned

from . import fold
from .columns import ANOMALY_SCHEMA, KEY
from .fold import ENTITY, IS_OBJ, ORD, SHAPE, START, WEIGHT

MODEL = "model"
MASK = "_mask"
"""Prefix of the field-mask words: bit ``b`` of word ``w`` says the payload holds field ``64 * w + b`` of its model."""

CARRIED = [MODEL, KEY, ORD, "seq", "timestamp", "action", "payload", WEIGHT, START, IS_OBJ]
"""The columns of the records a fold carries (then the mask words)."""


class Fold:
    """The CRUD state of a history fed in order, chunk by chunk.

    ``add`` folds rows in the form of :data:`lithair_lab.state.fold.ROW_SCHEMA`
    plus a ``model`` column (as :func:`crud_frame` gives them), in position
    order; ``state`` gives each model's state frame. The result does not
    depend on where chunks begin and end.
    """

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, int]] = {}  # model -> field -> bit, in order of first appearance
        self.rows = pl.DataFrame(schema={**_CARRIED_SCHEMA, ENTITY: pl.UInt64(), f"{MASK}0": pl.UInt64()})
        self.seed = 0  # of the entity numbers

    def add(self, rows: pl.DataFrame | Prepared, *, anomalies: bool = True) -> pl.DataFrame:
        """Fold ``rows`` (or what :func:`prepare` made of them) onto the state so far; returns their anomalies."""
        prepared = rows if isinstance(rows, Prepared) else prepare(rows)
        if not prepared.rows.height:
            return pl.DataFrame(schema=ANOMALY_SCHEMA)
        events = self._masked(prepared)
        while True:
            if self.seed:
                events = events.with_columns(fold.entity([MODEL, KEY], self.seed))
            touched = events.select(ENTITY).unique()
            held = self.rows.join(touched, on=ENTITY, how="semi")
            window = pl.concat([held, events], how="diagonal_relaxed").with_columns(_masks_filled(self.words))
            ordered = fold.by_entity(window, [MODEL, KEY])
            if ordered is not None:
                break
            self.seed += 1  # two entities share a number: number them all again
            self.rows = self.rows.with_columns(fold.entity([MODEL, KEY], self.seed))
        flagged = fold.life_flags(ordered.lazy())
        plans = [_carried(flagged, max(map(len, self.fields.values()), default=0))]
        if anomalies:
            plans.append(fold.anomalies_of(flagged, None))
        done = pl.collect_all(plans, engine=fold.ENGINE)
        kept = self.rows.join(touched, on=ENTITY, how="anti")
        self.rows = pl.concat([kept, done[0]], how="diagonal_relaxed").with_columns(_masks_filled(self.words))
        return done[1] if anomalies else pl.DataFrame(schema=ANOMALY_SCHEMA)

    def state(self) -> dict[str, pl.DataFrame]:
        """The state frame of each model with a live entity."""
        out = {}
        for (model,), rows in self.rows.partition_by(MODEL, as_dict=True, maintain_order=True).items():
            out[str(model)] = _state(rows.drop(MODEL, ENTITY))
        return out

    @property
    def words(self) -> int:
        """How many mask words the widest model needs."""
        return max([1, *(-(-len(f) // 64) for f in self.fields.values())])

    def _masked(self, prepared: Prepared) -> pl.DataFrame:
        """The prepared rows with their field masks (fields met for the first time get the next bits)."""
        masks = []
        for model, shape in zip(prepared.pair_models, prepared.pair_shapes, strict=True):
            bits = self.fields.setdefault(model, {})
            for k in prepared.keys[shape] or ():
                bits.setdefault(k, len(bits))
            masks.append(sum(1 << bits[k] for k in prepared.keys[shape] or ()))
        masks.append(0)  # deletes (pair -1) hold no field
        words = [np.array([(m >> (64 * w)) & (2**64 - 1) for m in masks], np.uint64)[prepared.pair] for w in range(self.words)]
        return prepared.rows.with_columns(pl.Series(f"{MASK}{w}", word, pl.UInt64) for w, word in enumerate(words))


class Prepared(NamedTuple):
    """Rows ready for :meth:`Fold.add`: what can be done before the state is known (:func:`prepare`)."""

    rows: pl.DataFrame
    """The rows with their payload flags (:func:`fold.payload_flags`) and entity numbers."""
    keys: list[tuple[str, ...] | None]
    """Per payload shape, the keys of its objects."""
    pair: np.ndarray
    """Per row, its (model, shape) pair; -1 for a delete."""
    pair_models: list[str]
    """Per pair (in order of first appearance), its model ..."""
    pair_shapes: list[int]
    """... and its shape."""


def prepare(rows: pl.DataFrame) -> Prepared:
    """The work on a chunk of rows that does not depend on the state: it can run ahead, in another thread."""
    flagged, keys = fold.payload_flags(rows.drop("event_id"))
    flagged = flagged.with_columns(fold.entity([MODEL, KEY]))
    # A (model, shape) pair as one integer: the model's code in this chunk, then the shape.
    models = flagged[MODEL].cast(pl.Categorical).to_physical().to_numpy().astype(np.uint64)
    shapes = flagged[SHAPE].to_numpy().astype(np.uint64)
    live = (flagged["action"] != "delete").to_numpy()
    codes = np.where(live, (models << np.uint64(32)) | shapes, np.uint64(2**64 - 1))
    unique, first, pair = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first[: len(unique) - (not live.all())], kind="stable")  # first appearance; deletes' code is last
    rank = np.full(len(unique), -1, np.int64)
    rank[order] = np.arange(len(order))
    rows_of = first[order]
    return Prepared(
        flagged.drop(SHAPE), keys, rank[pair.reshape(-1)],
        flagged[MODEL].gather(rows_of).to_list(), flagged[SHAPE].gather(rows_of).to_list(),
    )  # fmt: skip


_CARRIED_SCHEMA = {MODEL: pl.String(), **{c: fold.ROW_SCHEMA[c] for c in CARRIED[1:-1]}, IS_OBJ: pl.Boolean()}


def _masks_filled(words: int) -> list[pl.Expr]:
    """Mask words for every row (a delete, or a row carried before a model grew a word, holds no field)."""
    return [pl.col(f"{MASK}{w}").fill_null(0) for w in range(words)]


def _carried(flagged: pl.LazyFrame, fields: int) -> pl.LazyFrame:
    """Per live entity of a flagged window, the records its state needs, carrying its version count and last change.

    A record is needed when it is the entity's last one, or the last one
    from the base on to set some field (a mask bit).
    """
    entity = pl.col(ENTITY)
    life = pl.col("_in_life")
    holders = []
    for bit in range(fields):
        holds = pl.col("_contributes") & ((pl.col(f"{MASK}{bit // 64}") & (1 << bit % 64)) != 0)
        holders.append(pl.col(ORD).filter(holds).max().over(entity) == pl.col(ORD))
    words = max(1, -(-fields // 64))
    needed = pl.col("_contributes") & pl.any_horizontal(pl.col("_last"), *holders)
    weight = pl.when(pl.col(WEIGHT).filter(life).is_not_null().any()).then(pl.col(WEIGHT).filter(life).sum())
    return (
        flagged.with_columns(
            weight.over(entity).alias("_total"),
            pl.col("seq").filter(life).drop_nulls().last().over(entity),
            pl.col("timestamp").filter(life).drop_nulls().last().over(entity),
            needed.alias("_needed"),  # (here rather than in `filter`: the windows share their groups)
        )
        .filter(pl.col("_needed"))
        .select(
            # carried from chunk to chunk: they must not keep every chunk's buffers alive
            *(owned(c) for c in CARRIED[:2]),
            *CARRIED[2:5],
            "action",
            owned("payload"),
            # The version count rides on the entity's first carried record.
            pl.when((entity != entity.shift(1)).fill_null(value=True)).then(pl.col("_total")).cast(pl.UInt32).alias(WEIGHT),
            pl.lit(value=True).alias(START),
            IS_OBJ,
            ENTITY,
            *(pl.col(f"{MASK}{w}") for w in range(words)),
        )
    )


def _state(rows: pl.DataFrame) -> pl.DataFrame:
    """One model's state frame from its carried records (each entity's together, in order).

    Each live entity's value is merged from its records by the engine's own
    rule (:func:`lithair_lab.formats.crud.apply`), then the values are
    decoded together. So the frame depends on the state alone, not on the
    superseded values those records also hold: a fold from a checkpoint of
    the same state gives the same frame, dtypes included. (A Python step per
    carried record, not per event: a few per live entity.)
    """
    values: dict[str, Any] = {}
    for key, action, text in zip(*(rows[c].to_list() for c in (KEY, "action", "payload")), strict=True):
        crud.apply(values, action, key, orjson.loads(text))
    weight = pl.col(WEIGHT)
    meta = rows.group_by(KEY, maintain_order=True).agg(
        pl.when(weight.is_not_null().any()).then(weight.sum()).cast(pl.UInt32).alias(WEIGHT),
        pl.col("seq").last(),
        pl.col("timestamp").last(),
    )
    merged = pl.DataFrame(
        {
            KEY: list(values),
            "payload": [orjson.dumps(v).decode() for v in values.values()],
            IS_OBJ: [isinstance(v, dict) for v in values.values()],
        },
        schema={KEY: pl.String(), "payload": pl.String(), IS_OBJ: pl.Boolean()},
    )
    decoded, fields = fold.decode_rows(meta.join(merged, on=KEY))
    return fold.finished(*pl.collect_all(fold.finish_plans(decoded.lazy(), fields), engine=fold.ENGINE))

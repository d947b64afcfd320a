"""Walk the stores of a path batch by batch: records with ``seq``/``store``, and damage.

The one loop behind :func:`~lithair_lab.frames.scan.scan` (records) and
:func:`~lithair_lab.frames.damage.scan_damage` (damage), so both see exactly
the same files in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
from polars.io.plugins import register_io_source

from lithair_lab.errors import DamageError
from lithair_lab.formats import batch, checkpoint, layout
from lithair_lab.formats.schema import DAMAGE_SCHEMA, EVENT_COLUMNS, EVENT_SCHEMA

from .stores import NOTICES, Store, plan

OnDamage = Literal["raise", "report"]
ON_DAMAGE = ("raise", "report")


@dataclass(frozen=True)
class Step:
    """One decoded batch: event-frame rows (``EVENT_SCHEMA``) and damage rows (``DAMAGE_SCHEMA``)."""

    records: pl.DataFrame
    damage: pl.DataFrame


def check_on_damage(on_damage: str) -> None:
    """Validate the damage policy before anything is read."""
    if on_damage not in ON_DAMAGE:
        msg = f"`on_damage` must be one of {', '.join(repr(p) for p in ON_DAMAGE)}, got {on_damage!r}"
        raise ValueError(msg)


def walk(
    stores: list[Store],
    *,
    on_damage: OnDamage,
    chunk_size: int = batch.CHUNK_SIZE,
    max_record_size: int = batch.MAX_RECORD_SIZE,
) -> Iterator[Step]:
    """Decode every store's history in replay order.

    ``seq`` restarts at 0 for each store: it is the position of a record in
    its store's history (the number checkpoints count in ``covered_events``).
    In a compacted store, the records after the checkpoint's ``covered_events``
    are numbered from the length of the history the checkpoint's state covers.
    With ``on_damage="raise"`` the first damage row raises :class:`DamageError`
    (a bad checkpoint raises :class:`CheckpointError`) before any record after
    it is returned.
    """
    strict = on_damage == "raise"
    for store in stores:
        p = plan(store, strict=strict)
        if p.problems:
            problems = pl.DataFrame(p.problems, schema=DAMAGE_SCHEMA, orient="row")
            if strict:
                raise_first(problems, store.directory)
            yield Step(pl.DataFrame(schema=EVENT_SCHEMA), problems)
        seq = 0
        # After a compaction the records that follow the checkpoint continue the
        # whole history's numbering (the engine's versions name those positions).
        renumber_from, shift = _renumbering(p.checkpoint)
        for journal in p.journals:
            if not journal.is_file():
                continue  # the active file of a store that has only rotated segments
            rel = journal.relative_to(store.directory).as_posix()
            for b in batch.read_journal(journal, name=rel, chunk_size=chunk_size, max_record_size=max_record_size):
                damage = b.damage.with_columns(pl.lit(store.name, pl.String).alias("store")).select(list(DAMAGE_SCHEMA))
                if strict and damage.height:
                    raise_first(damage, store.directory)
                n = b.records.height
                position = pl.int_range(n, dtype=pl.UInt64) + seq
                if shift:
                    position = pl.when(position >= renumber_from).then(position + shift).otherwise(position)
                records = b.records.with_columns(
                    position.alias("seq"),
                    pl.lit(store.name, pl.String).alias("store"),
                ).select(EVENT_COLUMNS)
                seq += n
                yield Step(records, damage)


def _renumbering(cp: checkpoint.Checkpoint | None) -> tuple[int, int]:
    """``(from, shift)``: positions at or after ``from`` move up by ``shift`` (0: none)."""
    if cp is None or cp.journal == layout.ACTIVE:
        return 0, 0
    length = checkpoint.history_length(cp)
    return (cp.covered_events, length - cp.covered_events) if length and length > cp.covered_events else (0, 0)


def lazy(batches: Callable[[], Iterator[pl.DataFrame]], schema: dict[str, pl.DataType], name: str, detail: str) -> pl.LazyFrame:
    """A LazyFrame streaming ``batches()``, with projection, filter and row limit applied per batch."""

    def io_source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        left = n_rows
        if left is not None and left <= 0:
            return
        for frame in batches():
            if frame.is_empty():
                continue
            if predicate is not None:
                frame = frame.filter(predicate)
            if with_columns is not None:
                frame = frame.select(with_columns)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame
            if left is not None and left <= 0:
                return

    return register_io_source(io_source, schema=schema, explain_name=name, explain_detail=detail)


def raise_first(damage: pl.DataFrame, directory: Path) -> None:
    """Raise :class:`DamageError` for the first row that is damage (not a notice)."""
    rows = damage.filter(~pl.col("kind").is_in(list(NOTICES)))
    if rows.is_empty():
        return
    r = rows.row(0, named=True)
    hint = (
        f"to read every intact record and list all the damage, use `ll.scan(path, on_damage=\"report\")`"
        f" and `ll.read_damage(path)`\n(damaged bytes: {r['raw']})"
    )
    raise DamageError(directory / r["file"], r["offset"], r["kind"], r["detail"], line=r["line"], hint=hint)

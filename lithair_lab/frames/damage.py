"""``scan_damage`` / ``read_damage``: every problem met while reading, as a frame."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lithair_lab.formats import batch
from lithair_lab.formats.schema import DAMAGE_SCHEMA

from .stores import find_stores
from .walk import lazy, walk


def scan_damage(
    source: str | Path,
    *,
    chunk_size: int = batch.CHUNK_SIZE,
    max_record_size: int = batch.MAX_RECORD_SIZE,
) -> pl.LazyFrame:
    """Lazily list the damage of a data directory: one row per problem.

    The same walk as :func:`scan` (same stores, files and order), keeping the
    problems instead of the records.

    Parameters
    ----------
    source
        A data directory, a directory of stores, or one journal file.
    chunk_size, max_record_size
        As for :func:`scan`.

    Returns
    -------
    polars.LazyFrame
        Columns of ``formats.schema.DAMAGE_SCHEMA``: ``store``, ``file``,
        ``offset`` (byte offset of the record's first byte), ``line`` (1-based,
        JSON journals only), ``kind``, ``detail`` and ``raw`` (the damaged bytes,
        escaped and truncated). Kinds: ``bad_crc``, ``bad_json``, ``bad_utf8``,
        ``torn_tail``, ``frame_past_eof``, ``bad_frame``, ``oversized_record``,
        ``unframed_binary``, ``bad_checkpoint``, ``missing_segment``, and two
        notices that are not damage (``on_damage="raise"`` ignores them):
        ``stale_file`` (a journal left beside the one the checkpoint selects)
        and ``leftover_tmp``.

    See Also
    --------
    read_damage : The eager twin.
    scan : The records themselves.
    """
    stores = find_stores(source)

    return lazy(
        lambda: (
            step.damage for step in walk(stores, on_damage="report", chunk_size=chunk_size, max_record_size=max_record_size)
        ),
        DAMAGE_SCHEMA,
        "lithair_lab.scan_damage",
        str(source),
    )


def read_damage(
    source: str | Path,
    *,
    chunk_size: int = batch.CHUNK_SIZE,
    max_record_size: int = batch.MAX_RECORD_SIZE,
) -> pl.DataFrame:
    """Every problem of a data directory as a DataFrame: ``scan_damage(...).collect()``.

    See Also
    --------
    scan_damage : The lazy twin, with the list of damage kinds.
    """
    return scan_damage(source, chunk_size=chunk_size, max_record_size=max_record_size).collect()

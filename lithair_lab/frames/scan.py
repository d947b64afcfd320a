"""``scan`` / ``read``: any Lithair data directory as a lazy Polars event frame."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from lithair_lab.formats import batch
from lithair_lab.formats.schema import EVENT_SCHEMA

from .stores import find_stores
from .walk import OnDamage, check_on_damage, lazy, walk

Source = str | Path | pl.LazyFrame | pl.DataFrame


def scan(
    source: Source,
    *,
    on_damage: OnDamage = "raise",
    chunk_size: int = batch.CHUNK_SIZE,
    max_record_size: int = batch.MAX_RECORD_SIZE,
) -> pl.LazyFrame:
    """Lazily read the events of a data directory, one row per record in replay order.

    Every variant of FORMATS.md is read: CRC-framed and legacy JSON lines,
    envelopes with or without hash fields, raw non-envelope JSON lines (kept
    with ``record_kind="raw"`` and the whole JSON in ``payload``), binary
    frames (detected by content, not by name), rotated segments ``.1 … .N``
    then the active file, and Era C journals selected by the checkpoint.

    Parameters
    ----------
    source
        A data directory; a directory of several stores (``data/products``,
        ``data/users``: the ``store`` column tells them apart; multi-file mode
        subfolders become stores named ``<store>/<subfolder>``); one journal
        file; or an event frame already scanned (returned as is, lazily).
    on_damage
        ``"raise"`` (default): the first damaged record raises
        :class:`~lithair_lab.errors.DamageError` (a checkpoint that must not be
        trusted raises :class:`~lithair_lab.errors.CheckpointError`) when the
        frame is collected. ``"report"``: damaged records are left out of the
        frame; :func:`scan_damage` lists them.
    chunk_size
        Bytes decoded at a time. Each chunk becomes one batch of the stream.
    max_record_size
        A line or frame longer than this is reported as ``oversized_record``
        instead of being loaded.

    Returns
    -------
    polars.LazyFrame
        Columns of ``formats.schema.EVENT_SCHEMA``. ``seq`` is the record's
        position in its store's history (0-based); ``timestamp`` is a UTC
        datetime (null when the stored seconds do not fit one).

    Raises
    ------
    FormatError
        At once, when ``source`` is missing, empty or not a Lithair directory.
    ValueError
        At once, for an unknown ``on_damage``.

    See Also
    --------
    read : Read the same frame eagerly.
    scan_damage : The damage found on the way, as a frame.
    decode_payloads : Payload strings into typed columns.

    Notes
    -----
    The scan streams: files are decoded in chunks of ``chunk_size`` bytes, and
    projections, filters and ``head``/``n_rows`` are applied batch by batch, so
    an aggregate collected with ``engine="streaming"`` keeps memory flat for
    directories larger than RAM. What needs the whole frame in memory: an
    eager ``collect()`` without aggregation (the result itself),
    :func:`decode_payloads` (its schema is inferred from all rows),
    :func:`verify_chain` over several stores at once, sorting by anything but
    ``seq``, and joins whose build side is the event frame.

    Examples
    --------
    >>> import lithair_lab as ll
    >>> ll.scan("data/products").group_by("short_type").len().collect()  # doctest: +SKIP
    """
    if isinstance(source, pl.DataFrame):
        return source.lazy()
    if isinstance(source, pl.LazyFrame):
        return source
    check_on_damage(on_damage)
    stores = find_stores(source)

    return lazy(
        lambda: (
            step.records for step in walk(stores, on_damage=on_damage, chunk_size=chunk_size, max_record_size=max_record_size)
        ),
        EVENT_SCHEMA,
        "lithair_lab.scan",
        str(source),
    )


def read(
    source: Source,
    *,
    on_damage: OnDamage = "raise",
    chunk_size: int = batch.CHUNK_SIZE,
    max_record_size: int = batch.MAX_RECORD_SIZE,
) -> pl.DataFrame:
    """Read the events of a data directory into a DataFrame: ``scan(...).collect()``.

    Parameters and behaviour are those of :func:`scan`.

    See Also
    --------
    scan : The lazy twin; prefer it for large directories.
    read_damage : The damage found on the way, as a frame.
    """
    return scan(source, on_damage=on_damage, chunk_size=chunk_size, max_record_size=max_record_size).collect()

"""``verify_chain``: the SHA-256 hash chain of an event frame, checked record by record."""

from __future__ import annotations

from typing import Any

import polars as pl

from lithair_lab.formats.envelope import event_hash

from .scan import Source, scan

#: One row per problem found in the chain.
CHAIN_SCHEMA: dict[str, pl.DataType] = {
    "store": pl.String(),
    "seq": pl.UInt64(),
    "file": pl.String(),
    "offset": pl.UInt64(),
    "line": pl.UInt64(),
    "event_id": pl.String(),
    "problem": pl.String(),  # "invalid_hash" | "broken_link" | "unverifiable"
    "expected": pl.String(),
    "found": pl.String(),
}
_COLUMNS = ("store", "seq", "file", "offset", "line", "event_type", "event_id", "timestamp", "payload",
            "aggregate_id", "event_hash", "previous_hash")  # fmt: skip


def verify_chain(source: Source) -> pl.DataFrame:
    """Check every record's hash and its link to the record before it.

    Rules (FORMATS.md section 2): an event without ``event_hash`` is legacy
    and resets the chain; a hash that does not match the record is
    ``invalid_hash``; a ``previous_hash`` that differs from the prior record's
    hash is ``broken_link``. A raw (non-envelope) record is not part of the
    chain: the event after it links to the last event before it, as the
    engine appends it. Records are taken per store in ``seq`` order. The
    payload is hashed exactly as stored.

    Parameters
    ----------
    source
        A data directory or an event frame (see :func:`scan`); the frame needs
        the envelope columns.

    Returns
    -------
    polars.DataFrame
        Columns of :data:`CHAIN_SCHEMA`; empty when the chain is intact.

    Notes
    -----
    Polars has no SHA-256 expression, so hashes are computed one record at a
    time with :func:`lithair_lab.formats.envelope.event_hash` (the engine's
    own function), streaming batch by batch.
    """
    frame = scan(source).filter(pl.col("record_kind") == "envelope").select(_COLUMNS).sort("store", "seq")
    frame = frame.with_columns(pl.col("timestamp").dt.epoch("s").alias("timestamp"))
    problems: list[dict[str, Any]] = []
    prev_store: object = object()
    prev_hash: str | None = None
    for batch in frame.collect_batches():
        for r in batch.iter_rows(named=True):
            if r["store"] != prev_store:
                prev_store, prev_hash = r["store"], None
            found = r["event_hash"]
            if found is None:  # legacy record: the chain starts again after it
                prev_hash = None
                continue
            where = {k: r[k] for k in ("store", "seq", "file", "offset", "line", "event_id")}
            if r["timestamp"] is None or r["timestamp"] < 0:
                problems.append({**where, "problem": "unverifiable", "expected": None, "found": found})
            else:
                expected = event_hash(
                    r["event_type"], r["event_id"], r["timestamp"], r["payload"], r["aggregate_id"], r["previous_hash"]
                )
                if expected != found:
                    problems.append({**where, "problem": "invalid_hash", "expected": expected, "found": found})
            if prev_hash is not None and r["previous_hash"] != prev_hash:
                problems.append({**where, "problem": "broken_link", "expected": prev_hash, "found": r["previous_hash"]})
            prev_hash = found
    return pl.DataFrame(problems, schema=CHAIN_SCHEMA, orient="row") if problems else pl.DataFrame(schema=CHAIN_SCHEMA)

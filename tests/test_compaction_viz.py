"""Compaction charts: aggregated before charting, so million-event simulations draw fine."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest
from compaction_frames import frame

from lithair_lab.compaction import simulate
from lithair_lab.engine.policies import NoCompaction, SmartCompaction, SnapshotThenTruncate
from lithair_lab.formats.schema import EVENT_SCHEMA
from lithair_lab.viz.compaction import compaction_growth, compaction_summary
from lithair_lab.viz.style import MAX_MARKS


def million_events() -> pl.DataFrame:
    """1,000,000 whole-object updates of 50 products, built in Polars (no store needed)."""
    n = 1_000_000
    i = pl.int_range(n, dtype=pl.Int64)
    key = pl.lit("p") + (i % 50).cast(pl.String)
    return pl.select(
        seq=i.cast(pl.UInt64), store=pl.lit("s"), file=pl.lit("events.raftlog"), offset=(i * 180).cast(pl.UInt64),
        line=(i + 1).cast(pl.UInt64), encoding=pl.lit("crc"), record_kind=pl.lit("envelope"),
        event_type=pl.when(i < 50).then(pl.lit("ProductCreated")).otherwise(pl.lit("ProductUpdated")),
        short_type=pl.when(i < 50).then(pl.lit("ProductCreated")).otherwise(pl.lit("ProductUpdated")),
        model=pl.lit("Product"), op=pl.when(i < 50).then(pl.lit("Created")).otherwise(pl.lit("Updated")),
        event_id=pl.lit("e") + i.cast(pl.String),
        timestamp=pl.lit(datetime(2026, 1, 1, tzinfo=UTC)) + pl.duration(seconds=i),
        aggregate_id=key, payload=pl.format('{{"id":"{}","price":{}}}', key, i),
        event_hash=pl.lit(None, pl.String), previous_hash=pl.lit(None, pl.String),
    ).cast(EVENT_SCHEMA)  # fmt: skip


def test_charts_of_a_million_event_simulation_stay_small() -> None:
    policies = [NoCompaction(), SnapshotThenTruncate(threshold=1_000), SmartCompaction(threshold=2_000, keep_recent=500)]
    sim = simulate(million_events(), policies, startup=False)
    assert sim.series.height > MAX_MARKS  # the sawtooth has 2 points per compaction: ~1,700 compactions
    chart = compaction_growth(sim)
    spec = chart.to_dict()  # raises MaxRowsError if the data were too big
    rows = chart.data.height
    assert rows <= MAX_MARKS and spec["encoding"]["y"]["title"] == "on disk: journal + snapshot + backups (MiB)"
    # the envelope keeps the sawtooth's extremes: the truncating policy still drops to its floor
    trunc = chart.data.filter(pl.col("policy") == "SnapshotThenTruncate")["total_bytes"]
    assert trunc.min() < trunc.max() / 2
    summary = compaction_summary(sim).to_dict()
    assert len(summary["hconcat"]) == 4  # no startup panel: it was not estimated


def test_summary_marks_integrity_failures_and_bad_arguments_are_clear() -> None:
    rows = [("OrderCreated", f"o{k}", {"id": f"o{k}"}) for k in range(3)]
    rows += [("ProductUpdated", "p0", {"price": i}) for i in range(150)]
    policies = [SnapshotThenTruncate(threshold=100, snapshot=False), SnapshotThenTruncate(threshold=100)]
    sim = simulate(frame(rows), policies, startup=False)
    spec = json.dumps(compaction_summary(sim).to_dict(), ensure_ascii=False)
    assert '"SnapshotThenTruncate ✗"' in spec and '"SnapshotThenTruncate #2"' in spec
    with pytest.raises(ValueError, match="`y` must be one of"):
        compaction_growth(sim, y="size")
    with pytest.raises(TypeError, match=r"result of `ll.simulate\(...\)`"):
        compaction_growth(sim.summary)
    chart = compaction_growth(sim, y="journal_events", x="timestamp")
    assert chart.to_dict()["encoding"]["x"]["type"] == "temporal"

"""Run one policy through a log's history, as if it had been in production from the first event.

The journal grows by one record per event; when it reaches the policy's
trigger (:func:`lithair_lab.engine.policies.next_trigger`, the engine's own
rule) the policy's ``retain`` expression is evaluated over the journal as it
stands, exactly as the engine evaluates it. Between compactions everything is
linear, so the timeline is kept as one row per compaction and sampled
afterwards (:func:`sample`), which keeps million-event logs cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ..engine.policies import CompactionPolicy, next_trigger, retention_mask

ROW = "_row"  # 0-based row of the simulated log (its position in the uncompacted history)


@dataclass(frozen=True)
class Timeline:
    """What one policy did to one log.

    Attributes
    ----------
    compactions
        One row per compaction: ``at`` (row after which it ran), ``timestamp``,
        ``journal_before``/``journal_bytes_before`` (records and bytes it
        replaced), ``retained``/``retained_bytes`` (what it kept).
    retained
        Rows of the log still in the journal at the end, in order.
    snapshot_at
        Rows after which a checkpoint was published (compactions and, for
        policies with a ``snapshot_interval``, periodic refreshes), in order.
    """

    policy: CompactionPolicy
    compactions: pl.DataFrame
    retained: pl.Series
    snapshot_at: pl.Series


COMPACTION_SCHEMA = {
    "at": pl.Int64(),
    "timestamp": pl.Datetime("us", "UTC"),
    "journal_before": pl.Int64(),
    "journal_bytes_before": pl.Int64(),
    "retained": pl.Int64(),
    "retained_bytes": pl.Int64(),
}


def run(policy: CompactionPolicy, log: pl.DataFrame, record_bytes: pl.Series) -> Timeline:
    """Replay ``log`` (EVENT_SCHEMA rows in order) through ``policy``.

    ``record_bytes`` gives each row's size on disk. Each compaction costs one
    evaluation of the policy's expression over the journal of that moment (at
    most about ``2 * threshold`` rows), so the whole run is linear in the log.
    """
    n = log.height
    frame = log.with_columns(pl.int_range(n, dtype=pl.Int64).alias(ROW), record_bytes.alias("_bytes"))
    cum = record_bytes.cast(pl.Int64).cum_sum()

    def bytes_between(lo: int, hi: int) -> int:  # rows lo..hi inclusive
        return 0 if hi < lo else int(cum[hi]) - (int(cum[lo - 1]) if lo else 0)

    kept = frame.clear()  # the records the last compaction retained
    kept_bytes = 0
    start = 0  # first row appended since the last compaction
    rows: list[tuple[object, ...]] = []
    trigger = next_trigger(policy.threshold, 0)
    while trigger is not None:
        at = start + (trigger - kept.height) - 1  # the append that makes the journal reach the trigger
        if at >= n:
            break
        journal = pl.concat([kept, frame.slice(start, at - start + 1)])
        now = log["timestamp"][at]
        mask = retention_mask(policy, journal.drop(ROW, "_bytes"), now=now)
        before_bytes = kept_bytes + bytes_between(start, at)
        kept = journal.filter(mask)
        kept_bytes = int(kept["_bytes"].sum())
        rows.append((at, now, journal.height, before_bytes, kept.height, kept_bytes))
        start = at + 1
        trigger = next_trigger(policy.threshold, kept.height)
    retained = pl.concat([kept[ROW], pl.int_range(start, n, dtype=pl.Int64, eager=True).alias(ROW)])
    compactions = pl.DataFrame(rows, schema=COMPACTION_SCHEMA, orient="row")
    return Timeline(policy, compactions, retained, _snapshot_rows(policy, compactions["at"], n))


def _snapshot_rows(policy: CompactionPolicy, compaction_rows: pl.Series, n: int) -> pl.Series:
    """Rows after which a checkpoint holds the state: each compaction, plus periodic refreshes."""
    if not policy.snapshot:
        return pl.Series("at", [], dtype=pl.Int64)
    interval = getattr(policy, "snapshot_interval", None)
    periodic = (
        pl.int_range(interval - 1, n, interval, dtype=pl.Int64, eager=True) if interval else pl.Series([], dtype=pl.Int64)
    )
    return pl.concat([compaction_rows.cast(pl.Int64), periodic.alias("at")]).unique().sort().alias("at")


SERIES_SCHEMA = {
    "policy": pl.String(),
    "position": pl.Int64(),  # records of the history appended so far (row + 1)
    "timestamp": pl.Datetime("us", "UTC"),
    "journal_events": pl.Int64(),
    "journal_bytes": pl.Int64(),
    "snapshot_bytes": pl.Int64(),
    "backup_bytes": pl.Int64(),
    "total_bytes": pl.Int64(),
    "compactions": pl.Int64(),
}


def sample(
    tl: Timeline, timestamps: pl.Series, record_bytes: pl.Series, state_bytes: pl.Series, *, resolution: int
) -> pl.DataFrame:
    """The timeline as a series: about ``resolution`` evenly spaced moments plus both sides of every compaction.

    Between compactions the journal grows by whole records, so these points
    draw the sawtooth exactly: its peaks (just before each compaction) and its
    troughs (just after) are all present.
    """
    n = timestamps.len()
    if n == 0:
        return pl.DataFrame(schema=SERIES_SCHEMA)
    cum = record_bytes.cast(pl.Int64).cum_sum()
    step = max(1, n // max(resolution, 1))
    regular = pl.DataFrame({"row": pl.int_range(0, n, step, dtype=pl.Int64, eager=True)}).vstack(
        pl.DataFrame({"row": [n - 1]}, schema={"row": pl.Int64})
    )
    at = tl.compactions["at"]
    points = (
        pl.concat(
            [
                regular.with_columns(phase=pl.lit(1, pl.Int64)),
                pl.DataFrame({"row": at, "phase": pl.zeros(at.len(), pl.Int64, eager=True)}),
                pl.DataFrame({"row": at, "phase": pl.ones(at.len(), pl.Int64, eager=True)}),
            ]
        )
        .unique()
        .with_columns(key=pl.col("row") * 2 + pl.col("phase"))
        .sort("key")
    )
    snaps = pl.DataFrame({"skey": tl.snapshot_at * 2 + 1, "snapshot_bytes": state_bytes.gather(tl.snapshot_at)}).sort(
        "skey"
    )
    comp = (
        tl.compactions.with_columns(ckey=pl.col("at") * 2 + 1, cum_at=cum.gather(tl.compactions["at"]))
        .sort("ckey")
        # the checkpoint standing before this compaction (published at a row before `at`)
        .join_asof(snaps.with_columns(skey=pl.col("skey") + 1), left_on="ckey", right_on="skey", strategy="backward")
        .with_columns(
            replaced=pl.col("journal_bytes_before") + pl.col("snapshot_bytes").fill_null(0),
            compactions=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        )
    )
    # a compaction backs up the journal and the checkpoint it replaces; the last `backups` are kept
    backups = tl.policy.backups
    comp = comp.with_columns(
        backup_bytes=pl.col("replaced").rolling_sum(backups, min_samples=1) if backups else pl.lit(0, pl.Int64)
    ).select("ckey", "retained", "retained_bytes", "cum_at", "at", "backup_bytes", "compactions")
    return (
        points.join_asof(comp, left_on="key", right_on="ckey", strategy="backward")
        .join_asof(snaps, left_on="key", right_on="skey", strategy="backward")
        .with_columns(cum=cum.gather(points["row"]), timestamp=timestamps.gather(points["row"]))
        .with_columns(
            journal_events=pl.col("retained").fill_null(0) + pl.col("row") - pl.col("at").fill_null(-1),
            journal_bytes=pl.col("retained_bytes").fill_null(0) + pl.col("cum") - pl.col("cum_at").fill_null(0),
            snapshot_bytes=pl.col("snapshot_bytes").fill_null(0),
            backup_bytes=pl.col("backup_bytes").fill_null(0),
            compactions=pl.col("compactions").fill_null(0),
        )
        .select(
            policy=pl.lit(tl.policy.name),
            position=pl.col("row") + 1,
            timestamp="timestamp",
            journal_events="journal_events",
            journal_bytes="journal_bytes",
            snapshot_bytes="snapshot_bytes",
            backup_bytes="backup_bytes",
            total_bytes=pl.col("journal_bytes") + pl.col("snapshot_bytes") + pl.col("backup_bytes"),
            compactions="compactions",
        )
        .cast(SERIES_SCHEMA)  # type: ignore[arg-type]
    )

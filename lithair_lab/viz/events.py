"""Charts of a whole log: event rate over time, type mix, log and segment growth.

Each aggregates in Polars first, so a chart of a million-event log carries at
most a few thousand rows to the browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

from .style import HEIGHT, MAX_MARKS, WIDTH, choose_every, colour_scale, events_lazy, every_label, lump, top_categories

RAW = "(raw record)"


def _typed(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The event frame with `type`: the short event type, raw legacy lines named as such."""
    return lf.with_columns(pl.col("short_type").fill_null(pl.lit(RAW)).alias("type"))


def _span(lf: pl.LazyFrame) -> Any:
    bounds = lf.select(lo=pl.col("timestamp").min(), hi=pl.col("timestamp").max()).collect()
    lo, hi = bounds["lo"][0], bounds["hi"][0]
    return None if lo is None else hi - lo


def event_rate(source: Any, *, every: str | None = None, top: int = 7, max_buckets: int = 400) -> alt.Chart:
    """Events per time bucket, stacked by event type.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame (``ll.scan``/``ll.read``).
    every
        Bucket width as a Polars duration (``"1h"``, ``"1d"``, ...). None picks the
        smallest width that gives at most ``max_buckets`` buckets.
    top
        Number of event types shown by name; the rest are lumped into `other`.
    max_buckets
        Upper bound on the number of buckets when ``every`` is None.

    Returns
    -------
    altair.Chart
        A stacked area chart; x is UTC time, y is events per bucket.

    See Also
    --------
    type_mix : The same types as a share of the whole log.
    """
    lf = _typed(events_lazy(source)).filter(pl.col("timestamp").is_not_null())
    every = every or choose_every(_span(lf), max_buckets)
    keep = top_categories(lf, "type", top)
    data = (
        lf.select("timestamp", lump("type", keep))
        .sort("timestamp")
        .group_by_dynamic("timestamp", every=every, group_by="type")
        .agg(pl.len().alias("events"))
        .collect()
    )
    domain = keep + (["other"] if (data["type"] == "other").any() else [])
    unit = every_label(every)
    return (
        alt.Chart(data, title=alt.Title("Event rate by type", subtitle=f"events per {unit}, UTC"))
        .mark_area(interpolate="step-after", opacity=0.9)
        .encode(
            x=alt.X("timestamp:T", title="time (UTC)"),
            y=alt.Y("sum(events):Q", title=f"events per {unit}", stack="zero"),
            color=alt.Color("type:N", title="event type", scale=colour_scale(domain), sort=domain),
            order=alt.Order("type:N"),
            tooltip=[
                alt.Tooltip("timestamp:T", title="bucket start (UTC)", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("type:N", title="event type"),
                alt.Tooltip("sum(events):Q", title="events"),
            ],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def type_mix(source: Any, *, top: int = 12) -> alt.Chart:
    """How many events of each type the log holds, as horizontal bars.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame.
    top
        Number of event types shown by name; the rest are lumped into `other`.

    Returns
    -------
    altair.Chart
        One bar per type, longest first, with the share of the log in the tooltip.
    """
    lf = _typed(events_lazy(source))
    keep = top_categories(lf, "type", top)
    data = (
        lf.select(lump("type", keep))
        .group_by("type")
        .agg(pl.len().alias("events"))
        .with_columns((pl.col("events") / pl.col("events").sum()).alias("share"))
        .sort("events", descending=True)
        .collect()
    )
    domain = data["type"].to_list()
    total = int(data["events"].sum())
    return (
        alt.Chart(data, title=alt.Title("Event type mix", subtitle=f"{total:,} records"))
        .mark_bar()
        .encode(
            y=alt.Y("type:N", title="event type", sort=domain),
            x=alt.X("events:Q", title="events (count)"),
            color=alt.Color("type:N", scale=colour_scale(domain), legend=None),
            tooltip=[
                alt.Tooltip("type:N", title="event type"),
                alt.Tooltip("events:Q", title="events", format=","),
                alt.Tooltip("share:Q", title="share of log", format=".1%"),
            ],
        )
        .properties(width=WIDTH, height=max(60, 22 * len(domain)))
    )


def _file_sizes(source: Any, files: list[str], stores: list[str]) -> dict[tuple[str, str], int]:
    """On-disk size of each journal file when ``source`` is a directory; empty otherwise."""
    if not isinstance(source, (str, Path)):
        return {}
    root = Path(source)
    sizes = {}
    for store in stores:
        for name in files:
            for base in (root / store, root):
                p = base / name
                if p.is_file():
                    sizes[(store, name)] = p.stat().st_size
                    break
    return sizes


def log_growth(source: Any, *, max_points: int = 1500) -> alt.Chart:
    """Size of the log over time, coloured by the journal file (segment) being written.

    The y value of a record is the number of bytes the history held just before
    it was appended: the sizes of the earlier files in replay order plus its own
    byte offset. Rotations show as a change of colour.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame. From a directory the
        final size of each file is read from disk; from a frame the last record of
        each file counts as long as that file's median record.
    max_points
        Upper bound on the points drawn (the last point of each time bucket is kept).

    Returns
    -------
    altair.Chart
        A line chart; x is UTC time, y is MiB.
    """
    lf = events_lazy(source).filter(pl.col("timestamp").is_not_null())
    per = (
        lf.group_by("store", "file", maintain_order=True)
        .agg(
            first_seq=pl.col("seq").min(),
            last_offset=pl.col("offset").max(),
            median_len=pl.col("offset").sort().diff().median(),
        )
        .sort("first_seq")
        .collect()
    )
    disk = _file_sizes(source, per["file"].to_list(), per["store"].unique().to_list())
    sizes = [
        disk.get((s, f), int(o + (m if m is not None else 0)))
        for s, f, o, m in zip(per["store"], per["file"], per["last_offset"], per["median_len"], strict=True)
    ]
    bases = pl.DataFrame(
        {
            "store": per["store"],
            "file": per["file"],
            "base": pl.Series([0, *sizes[:-1]], dtype=pl.Int64).cum_sum(),
        }
    )
    every = choose_every(_span(lf), max_points)
    data = (
        lf.select("store", "file", "timestamp", "seq", "offset")
        .join(bases.lazy(), on=["store", "file"], how="left")
        .with_columns(mib=(pl.col("base") + pl.col("offset").cast(pl.Int64)) / 2**20)
        .sort("timestamp", "seq")
        .group_by_dynamic("timestamp", every=every, group_by="file")
        .agg(pl.col("mib").last(), pl.col("seq").last())
        .sort("seq")
        .collect()
    )
    domain = per["file"].unique(maintain_order=True).to_list()
    total = sum(sizes) / 2**20
    return (
        alt.Chart(
            data.head(MAX_MARKS),
            title=alt.Title("Log growth", subtitle=f"{len(domain)} journal file(s), {total:,.2f} MiB in all"),
        )
        .mark_line(point=len(data) < 60, interpolate="step-after")
        .encode(
            x=alt.X("timestamp:T", title="time (UTC)"),
            y=alt.Y("mib:Q", title="history size before the event (MiB)"),
            color=alt.Color("file:N", title="journal file", scale=colour_scale(domain), sort=domain),
            tooltip=[
                alt.Tooltip("timestamp:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("file:N", title="file"),
                alt.Tooltip("seq:Q", title="log position", format=","),
                alt.Tooltip("mib:Q", title="MiB", format=",.3f"),
            ],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )

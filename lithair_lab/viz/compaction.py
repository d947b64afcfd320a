"""Charts of a compaction simulation (:func:`lithair_lab.simulate`).

``compaction_growth`` draws each policy's size over the history (the
sawtooth); ``compaction_summary`` compares the policies side by side. Both
reduce their input in Polars first: a series of any length becomes at most
:data:`~lithair_lab.viz.style.MAX_MARKS` points, keeping each bucket's peak
and trough so the sawtooth keeps its shape.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from .style import HEIGHT, MAX_MARKS, WIDTH, colour_scale

MIB = float(1 << 20)

_MEASURES = {
    "total_bytes": ("on disk: journal + snapshot + backups", "MiB"),
    "journal_bytes": ("journal size", "MiB"),
    "snapshot_bytes": ("snapshot size", "MiB"),
    "backup_bytes": ("backups size", "MiB"),
    "journal_events": ("records in the journal", "records"),
}
_AXES = {"position": ("events appended so far", "Q"), "timestamp": ("time (UTC)", "T")}


def _frames(sim: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    series, summary = getattr(sim, "series", None), getattr(sim, "summary", None)
    if not isinstance(series, pl.DataFrame) or not isinstance(summary, pl.DataFrame):
        msg = f"expected the result of `ll.simulate(...)`, got {type(sim).__name__}"
        raise TypeError(msg)
    return series, summary


def _envelope(series: pl.DataFrame, y: str, budget: int) -> pl.DataFrame:
    """At most ``budget`` points per policy: each bucket of positions keeps its lowest and highest ``y``."""
    buckets = max(1, budget // 2)
    bucket = pl.col("position") * buckets // (pl.col("position").max().over("policy") + 1)
    extreme = pl.col(y).min().over("policy", "_bucket"), pl.col(y).max().over("policy", "_bucket")
    return (
        series.with_columns(bucket.alias("_bucket"))
        .filter((pl.col(y) == extreme[0]) | (pl.col(y) == extreme[1]))
        .unique(subset=["policy", "_bucket", y], keep="first", maintain_order=True)
        .drop("_bucket")
        .sort("policy", "position")
    )


def compaction_growth(sim: Any, *, y: str = "total_bytes", x: str = "position") -> alt.Chart:
    """Size over the history for each simulated policy: the compaction sawtooth.

    Parameters
    ----------
    sim
        The result of :func:`lithair_lab.simulate`.
    y
        ``"total_bytes"`` (journal + snapshot + backups, default),
        ``"journal_bytes"``, ``"snapshot_bytes"``, ``"backup_bytes"`` or
        ``"journal_events"``.
    x
        ``"position"`` (events appended so far, default) or ``"timestamp"``.

    Returns
    -------
    altair.Chart
        One line per policy; bytes are shown in MiB.

    See Also
    --------
    compaction_summary : The policies compared on their final figures.
    """
    if y not in _MEASURES:
        msg = f"`y` must be one of {', '.join(f'`{k}`' for k in _MEASURES)}, got {y!r}"
        raise ValueError(msg)
    if x not in _AXES:
        msg = f"`x` must be `position` or `timestamp`, got {x!r}"
        raise ValueError(msg)
    series, summary = _frames(sim)
    policies = summary["policy"].to_list()
    budget = max(2, MAX_MARKS // max(1, len(policies)))
    data = _envelope(series.select("policy", "position", "timestamp", y), y, budget)
    label, unit = _MEASURES[y]
    if unit == "MiB":
        data = data.with_columns(pl.col(y) / MIB)
    x_title, x_type = _AXES[x]
    return (
        alt.Chart(data, title=alt.Title("Growth under each compaction policy", subtitle=f"{label} ({unit})"))
        .mark_line(interpolate="linear", strokeWidth=1.5)
        .encode(
            x=alt.X(f"{x}:{x_type}", title=x_title),
            y=alt.Y(f"{y}:Q", title=f"{label} ({unit})"),
            color=alt.Color("policy:N", title="policy", scale=colour_scale(policies), sort=policies),
            tooltip=[
                alt.Tooltip("policy:N"),
                alt.Tooltip(f"{x}:{x_type}", title=x_title, **({"format": ","} if x_type == "Q" else {})),
                alt.Tooltip(f"{y}:Q", title=f"{label} ({unit})", format=",.3f" if unit == "MiB" else ","),
            ],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


_SUMMARY_PANELS = (
    ("final_mib", "final size (MiB)", ",.2f"),
    ("peak_mib", "peak size (MiB)", ",.2f"),
    ("startup_ms", "estimated startup (ms)", ",.1f"),
    ("audit_pct", "critical events kept (%)", ".1f"),
    ("horizon_pct", "past moments reconstructable (%)", ".1f"),
)


def compaction_summary(sim: Any) -> alt.HConcatChart:
    """The simulated policies compared: size, startup, audit and time-travel figures.

    Parameters
    ----------
    sim
        The result of :func:`lithair_lab.simulate`.

    Returns
    -------
    altair.HConcatChart
        One bar panel per figure, one bar per policy; a policy that fails
        integrity (its head state differs from the uncompacted one) is
        marked ``✗`` after its name.

    See Also
    --------
    compaction_growth : The size of each policy over the history.
    """
    _, summary = _frames(sim)
    policies = summary["policy"].to_list()
    data = summary.select(
        "policy",
        pl.when(pl.col("integrity")).then(pl.col("policy")).otherwise(pl.col("policy") + " ✗").alias("label"),
        (pl.col("final_bytes") / MIB).alias("final_mib"),
        (pl.col("peak_bytes") / MIB).alias("peak_mib"),
        (pl.col("startup_s") * 1000).alias("startup_ms"),
        (pl.col("audit_completeness") * 100).alias("audit_pct"),
        (pl.col("reconstructable") * 100).alias("horizon_pct"),
        "integrity",
        "differing_entities",
    )
    labels = data["label"].to_list()
    panels = []
    for i, (column, title, fmt) in enumerate(_SUMMARY_PANELS):
        if data[column].null_count() == data.height:
            continue  # e.g. startup not estimated
        panels.append(
            alt.Chart(data, title=title)
            .mark_bar()
            .encode(
                y=alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labels=i == 0)),
                x=alt.X(f"{column}:Q", title=title),
                color=alt.Color("policy:N", scale=colour_scale(policies), sort=policies, legend=None),
                tooltip=[
                    alt.Tooltip("policy:N"),
                    alt.Tooltip(f"{column}:Q", title=title, format=fmt),
                    alt.Tooltip("integrity:N", title="head state intact"),
                    alt.Tooltip("differing_entities:Q", title="entities that differ"),
                ],
            )
            .properties(width=max(120, WIDTH // len(_SUMMARY_PANELS)), height=max(60, 26 * len(policies)))
        )
    return alt.hconcat(*panels).properties(
        title=alt.Title("Compaction policies compared", subtitle="✗: the head state differs from the uncompacted one")
    )

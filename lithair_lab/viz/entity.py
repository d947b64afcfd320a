"""One entity's life: every version of one key, in time."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from ..errors import NotFoundError
from .style import HEIGHT, MAX_MARKS, WIDTH, choose_every, colour_scale, events_lazy, every_label

OPS = ["Created", "Updated", "AdminEdit", "Replicated", "Deleted"]


def entity_timeline(
    source: Any,
    key: str,
    *,
    model: str | None = None,
    field: str | None = None,
    max_points: int = 2000,
) -> alt.Chart:
    """Every version of one entity over time.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame.
    key
        The entity key (``aggregate_id``).
    model
        Restrict to one model (``Product``); None takes every record of ``key``.
    field
        A top-level payload field to plot as a value over time (``"price"``). None
        draws one mark per version on a lane per operation.
    max_points
        Above this many versions the chart shows buckets instead of single versions:
        versions per bucket by operation, or the field's last value with its min-max band.

    Returns
    -------
    altair.Chart

    Raises
    ------
    NotFoundError
        When no record has this key.
    """
    lf = events_lazy(source).filter(pl.col("aggregate_id") == key)
    if model is not None:
        lf = lf.filter(pl.col("model") == model)
    cols = [
        pl.col("seq"),
        pl.col("timestamp"),
        pl.col("event_type"),
        pl.col("op").fill_null(pl.col("short_type")).fill_null(pl.lit("(raw)")),
    ]
    if field is not None:
        value = pl.col("payload").str.json_path_match(f"$.{field}").cast(pl.Float64, strict=False)
        cols.append(value.alias("value"))
    data = lf.select(cols).sort("seq").with_row_index("version", offset=1).collect()
    if data.is_empty():
        where = f" in model `{model}`" if model else ""
        msg = f"no record has key `{key}`{where}\n\nList keys with `ll.read(source)['aggregate_id'].unique()`."
        raise NotFoundError(msg)
    name = f"{model} {key}" if model else key
    domain = [o for o in OPS if o in set(data["op"])] + sorted(set(data["op"]) - set(OPS))
    colour = alt.Color("op:N", title="operation", scale=colour_scale(domain), sort=domain)
    if len(data) > max_points:
        return _bucketed(data, name, field, colour, max_points)
    tooltip = [
        alt.Tooltip("version:Q", title="version"),
        alt.Tooltip("seq:Q", title="log position", format=","),
        alt.Tooltip("timestamp:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S"),
        alt.Tooltip("event_type:N", title="event type"),
    ]
    base = alt.Chart(data, title=alt.Title(f"Timeline of {name}", subtitle=f"{len(data):,} versions"))
    x = alt.X("timestamp:T", title="time (UTC)")
    if field is None:
        chart = base.mark_tick(thickness=2, size=18).encode(
            x=x, y=alt.Y("op:N", title="operation", sort=domain), color=colour, tooltip=tooltip
        )
    else:
        y = alt.Y("value:Q", title=field, scale=alt.Scale(zero=False))
        line = base.mark_line(interpolate="step-after", color="#999999").encode(x=x, y=y)
        dots = base.mark_point(filled=True, size=40).encode(
            x=x, y=y, color=colour, tooltip=[*tooltip, alt.Tooltip("value:Q", title=field)]
        )
        # a delete has no value to plot: a dashed rule marks the end of a life
        ends = base.transform_filter(alt.datum.op == "Deleted").mark_rule(strokeDash=[4, 3]).encode(
            x=x, color=colour, tooltip=tooltip
        )
        chart = line + dots + ends
    return chart.properties(width=WIDTH, height=HEIGHT)


def _bucketed(data: pl.DataFrame, name: str, field: str | None, colour: alt.Color, max_points: int) -> alt.Chart:
    span = data["timestamp"].max() - data["timestamp"].min()  # type: ignore[operator]
    every = choose_every(span, max_points)
    unit = every_label(every)
    title = alt.Title(f"Timeline of {name}", subtitle=f"{len(data):,} versions, per {unit}")
    x = alt.X("timestamp:T", title="time (UTC)")
    if field is None:
        agg = data.group_by_dynamic("timestamp", every=every, group_by="op").agg(pl.len().alias("versions"))
        return (
            alt.Chart(agg.head(MAX_MARKS), title=title)
            .mark_bar()
            .encode(x=x, y=alt.Y("sum(versions):Q", title=f"versions per {unit}"), color=colour)
            .properties(width=WIDTH, height=HEIGHT)
        )
    agg = data.group_by_dynamic("timestamp", every=every).agg(
        lo=pl.col("value").min(), hi=pl.col("value").max(), value=pl.col("value").last(), versions=pl.len()
    )
    base = alt.Chart(agg.head(MAX_MARKS), title=title)
    band = base.mark_area(opacity=0.3, color="#56B4E9").encode(
        x=x, y=alt.Y("lo:Q", title=field, scale=alt.Scale(zero=False)), y2="hi:Q"
    )
    line = base.mark_line(interpolate="step-after", color="#0072B2").encode(
        x=x,
        y="value:Q",
        tooltip=[
            alt.Tooltip("timestamp:T", title="bucket start (UTC)", format="%Y-%m-%d %H:%M:%S"),
            alt.Tooltip("value:Q", title=f"last {field}"),
            alt.Tooltip("lo:Q", title="min"),
            alt.Tooltip("hi:Q", title="max"),
            alt.Tooltip("versions:Q", title="versions"),
        ],
    )
    return (band + line).properties(width=WIDTH, height=HEIGHT)

"""A state diff at a glance: which entities were created, updated or deleted, and which fields moved."""

from __future__ import annotations

import altair as alt
import polars as pl

from ..state.columns import KEY  # the entity-key column of `ll.diff` frames
from .style import WIDTH, colour_scale

CHANGES = ["created", "updated", "deleted"]


def state_diff(diff: pl.DataFrame, *, top_fields: int = 10, title: str = "State diff") -> alt.VConcatChart:
    """Entities changed per model and the fields updated most often, from ``ll.diff``.

    Parameters
    ----------
    diff
        A frame of :func:`lithair_lab.diff` (columns ``model``, ``_key``,
        ``change``, ``field``, ``old``, ``new``; one row per changed field).
    top_fields
        How many of the most often updated fields to show.
    title
        The chart's title (e.g. the two moments compared).

    Returns
    -------
    altair.VConcatChart
        Top: entities per model, stacked by change. Bottom: updated fields.
    """
    missing = [c for c in ("model", KEY, "change", "field") if c not in diff.columns]
    if missing:
        names = ", ".join(f"`{c}`" for c in missing)
        msg = f"`diff` lacks the columns {names}\n\nPass the frame returned by `ll.diff(source, a, b)`."
        raise ValueError(msg)
    entities = (
        diff.select("model", KEY, "change").unique().group_by("model", "change").agg(pl.len().alias("entities"))
    )
    fields = (
        diff.filter((pl.col("change") == "updated") & pl.col("field").is_not_null())
        .group_by("model", "field")
        .agg(pl.col(KEY).n_unique().alias("entities"))
        .with_columns(name=pl.col("model") + "." + pl.col("field"))
        .sort(["entities", "name"], descending=[True, False])
        .head(top_fields)
    )
    total = entities["entities"].sum()
    colour = alt.Color("change:N", title="change", scale=colour_scale(CHANGES), sort=CHANGES)
    top = (
        alt.Chart(entities, title=alt.Title(title, subtitle=f"{total:,} entities changed"))
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title="model", sort="-x"),
            x=alt.X("sum(entities):Q", title="entities (count)"),
            color=colour,
            order=alt.Order("change:N"),
            tooltip=["model:N", "change:N", alt.Tooltip("sum(entities):Q", title="entities")],
        )
        .properties(width=WIDTH, height=max(40, 24 * entities["model"].n_unique()))
    )
    bottom = (
        alt.Chart(fields, title=alt.Title("Fields updated", subtitle=f"top {top_fields} by entities"))
        .mark_bar(color="#E69F00")
        .encode(
            y=alt.Y("name:N", title="model.field", sort=fields["name"].to_list()),
            x=alt.X("entities:Q", title="entities with this field changed (count)"),
            tooltip=["model:N", "field:N", "entities:Q"],
        )
        .properties(width=WIDTH, height=max(40, 22 * len(fields)))
    )
    return alt.vconcat(top, bottom)

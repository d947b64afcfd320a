"""What every chart shares: the colour-blind-safe palette, sizes, and input coercion."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)
OTHER_COLOUR = "#999999"
OTHER = "other"
WIDTH = 640
HEIGHT = 260
MAX_MARKS = 4000  # below Altair's 5,000-row guard: charts always aggregate first

# Bucket widths tried in order; the first that gives at most `max_buckets` wins.
_EVERY: tuple[tuple[str, timedelta], ...] = (
    ("1s", timedelta(seconds=1)),
    ("10s", timedelta(seconds=10)),
    ("1m", timedelta(minutes=1)),
    ("5m", timedelta(minutes=5)),
    ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)),
    ("6h", timedelta(hours=6)),
    ("1d", timedelta(days=1)),
    ("1w", timedelta(weeks=1)),
    ("4w", timedelta(weeks=4)),
)
_UNIT = {"1s": "second", "10s": "10 s", "1m": "minute", "5m": "5 min", "15m": "15 min",
         "1h": "hour", "6h": "6 h", "1d": "day", "1w": "week", "4w": "4 weeks"}  # fmt: skip


def events_lazy(source: Any) -> pl.LazyFrame:
    """The event frame of ``source``: a data directory (str or Path) or an already scanned frame."""
    if isinstance(source, pl.LazyFrame):
        return source
    if isinstance(source, pl.DataFrame):
        return source.lazy()
    if isinstance(source, (str, Path)):
        from ..frames import scan  # the read path; imported late so charts load without it

        return scan(source)
    msg = f"`source` should be a data directory or a Polars frame, got {type(source).__name__}"
    raise TypeError(msg)


def choose_every(span: timedelta | None, max_buckets: int) -> str:
    """The smallest bucket width from a fixed ladder giving at most ``max_buckets`` buckets."""
    if span is None:
        return "1h"
    for every, width in _EVERY:
        if span / width <= max_buckets:
            return every
    return _EVERY[-1][0]


def every_label(every: str) -> str:
    """`1h` -> `hour`, for axis titles such as "events per hour"."""
    return _UNIT.get(every, every)


def colour_scale(domain: list[str]) -> alt.Scale:
    """Palette colours for ``domain`` in order; the catch-all `other` is always grey."""
    colours, i = [], 0
    for name in domain:
        if name == OTHER:
            colours.append(OTHER_COLOUR)
        else:
            colours.append(PALETTE[i % len(PALETTE)])
            i += 1
    return alt.Scale(domain=domain, range=colours)


def top_categories(lf: pl.LazyFrame, column: str, top: int) -> list[str]:
    """The ``top`` most frequent values of ``column`` (ties broken by name), most frequent first."""
    counts = (
        lf.group_by(column).agg(pl.len().alias("n")).sort(["n", column], descending=[True, False]).collect()
    )
    return [v for v in counts[column].to_list() if v is not None][:top]


def lump(column: str, keep: list[str], *, alias: str | None = None) -> pl.Expr:
    """``column`` where its value is in ``keep``, else `other` (nulls included)."""
    return (
        pl.when(pl.col(column).is_in(keep)).then(pl.col(column)).otherwise(pl.lit(OTHER)).alias(alias or column)
    )

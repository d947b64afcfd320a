"""Offline export of any chart to PNG or SVG (vl-convert; no browser, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import vl_convert as vlc

FORMATS = ("png", "svg")


def _spec(chart: Any) -> dict[str, Any]:
    return chart.to_dict() if hasattr(chart, "to_dict") else dict(chart)


def to_png(chart: Any, *, scale: float = 2.0) -> bytes:
    """The chart as PNG bytes (``scale`` 2 gives crisp images on high-density screens)."""
    return bytes(vlc.vegalite_to_png(_spec(chart), scale=scale))


def to_svg(chart: Any) -> str:
    """The chart as an SVG document."""
    return str(vlc.vegalite_to_svg(_spec(chart)))


def save(chart: Any, path: str | Path, *, scale: float = 2.0) -> Path:
    """Write the chart to ``path`` as PNG or SVG, chosen by the file's suffix.

    Parameters
    ----------
    chart
        An Altair chart (or a Vega-Lite spec as a dict).
    path
        Destination ending in ``.png`` or ``.svg``.
    scale
        Pixel density for PNG.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        msg = f"cannot save a chart as `{path.suffix or path.name}`\n\nUse a path ending in `.png` or `.svg`."
        raise ValueError(msg)
    if kind == "png":
        path.write_bytes(to_png(chart, scale=scale))
    else:
        path.write_text(to_svg(chart), encoding="utf-8")
    return path

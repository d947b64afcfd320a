"""How charts show in Jupyter without a network: JupyterLab's own Vega-Lite renderer, plus a PNG.

Altair's default renderer loads Vega from a CDN, so charts stay blank offline;
its `mimetype` renderer emits Vega-Lite 6, which JupyterLab 4 does not know.
This renderer emits the ``application/vnd.vegalite.v5+json`` mimetype that
JupyterLab renders offline (interactive: tooltips work), and a PNG made by
vl-convert for every other frontend (an HTML export, a plain viewer).
It is enabled on import of :mod:`lithair_lab.viz` unless the user chose
another renderer already.
"""

from __future__ import annotations

import base64
from typing import Any

import altair as alt
import vl_convert as vlc

NAME = "lithair_lab"
VEGALITE_MIME = "application/vnd.vegalite.v5+json"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


def mimebundle(spec: dict[str, Any], *, static: bool = True) -> dict[str, Any]:
    """The display bundle of a Vega-Lite spec: JupyterLab's mimetype, a PNG unless ``static`` is False."""
    bundle: dict[str, Any] = {VEGALITE_MIME: {**spec, "$schema": SCHEMA}, "text/plain": "<lithair_lab chart>"}
    if static:
        bundle["image/png"] = base64.b64encode(vlc.vegalite_to_png(spec, scale=1)).decode()
    return bundle


def _renderer(spec: dict[str, Any], **options: Any) -> dict[str, Any]:
    return mimebundle(spec, static=options.get("static", True))


def enable() -> None:
    """Make this the active Altair renderer (done on import unless another was chosen)."""
    if NAME not in alt.renderers.names():
        alt.renderers.register(NAME, _renderer)
    alt.renderers.enable(NAME)


if NAME not in alt.renderers.names():
    alt.renderers.register(NAME, _renderer)
if alt.renderers.active == "default":
    alt.renderers.enable(NAME)

"""What every workbench widget shares: a live view where widgets run, a static one everywhere else."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import polars as pl


class Workbench:
    """A widget with a static fallback.

    In JupyterLab the live widget (:attr:`widget`) is shown. The same display
    also carries ``text/html`` (:meth:`static_html`): what a frontend without
    widget support, or an HTML export that chose it, shows instead.
    """

    widget: w.Widget

    def static_html(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.static_html()
        return bundle

    def _repr_html_(self) -> str:
        return self.static_html()


def show_chart(output: w.Output, chart: Any, *, static: bool = False) -> None:
    """Put a chart (Altair, or a Vega-Lite spec as a dict) into an Output widget without ``display``.

    Setting the outputs directly costs no formatter round trip, works outside a
    kernel (nothing is printed), and skips the PNG unless ``static`` is True: a
    live widget always has JupyterLab's renderer at hand.
    """
    from ..viz.render import mimebundle

    spec = chart if isinstance(chart, dict) else chart.to_dict()
    output.outputs = ({"output_type": "display_data", "data": mimebundle(spec, static=static), "metadata": {}},)


def frame_html(frame: pl.DataFrame, *, css_class: str, rows: int) -> str:
    """A frame as an HTML table (its first ``rows`` rows) inside a classed ``div``."""
    with pl.Config(tbl_rows=rows, fmt_str_lengths=40, tbl_cols=12):
        table = frame._repr_html_()
    return f'<div class="{css_class}">{table}</div>'


def escape(text: object) -> str:
    return html.escape(str(text))

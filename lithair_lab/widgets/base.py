"""What every workbench widget shares: a live view where widgets run, a static one everywhere else."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import polars as pl


# Hide the static view of a cell whose widget did render. A plain HTML export (no
# widget state saved) has no rendered widget, so the static view shows there.
_HIDE_WHEN_LIVE = (
    "<style>.jp-OutputArea:has(.widget-box) > .jp-OutputArea-child:has(.ll-static),"
    " .output:has(.widget-box) > .output_area:has(.ll-static) { display: none; }</style>"
)


class Workbench:
    """A widget with a static fallback.

    Displaying it shows two outputs: the live widget (:attr:`widget`) and its
    static view (:meth:`static_html`), which hides itself wherever the widget
    renders. So JupyterLab shows the widget, and a frontend without widget
    support, or an HTML export of the notebook, shows the static view.
    """

    widget: w.Widget

    def static_html(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        display(self.widget)
        display(HTML(f'{_HIDE_WHEN_LIVE}<div class="ll-static">{self.static_html()}</div>'))

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

"""The store inspector: files, segments, sizes, damage report and chain check, in tabs."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import ipywidgets as w
import polars as pl

from ..viz.style import WIDTH, colour_scale
from .base import Workbench, escape, frame_html, show_chart
from .report import ROLES, StoreReport, inspect_store


def files_chart(report: StoreReport) -> alt.Chart:
    """Bytes per file, coloured by role (journals in replay order first)."""
    data = report.files.with_columns(kib=pl.col("bytes") / 1024, name=pl.col("store") + "/" + pl.col("file"))
    roles = [r for r, _ in ROLES if r in set(data["role"])]
    return (
        alt.Chart(data, title=alt.Title("Files", subtitle=f"{report.files['bytes'].sum() / 2**20:,.2f} MiB in all"))
        .mark_bar()
        .encode(
            y=alt.Y("name:N", title="file", sort=data["name"].to_list()),
            x=alt.X("kib:Q", title="size (KiB)"),
            color=alt.Color("role:N", title="role", scale=colour_scale(roles), sort=roles),
            tooltip=["store:N", "file:N", "role:N", alt.Tooltip("bytes:Q", format=","), alt.Tooltip("records:Q", format=",")],
        )
        .properties(width=WIDTH, height=max(60, 20 * len(data)))
    )


def types_chart(report: StoreReport) -> alt.Chart:
    """Records per event type, from the report's counts (no second read of the log)."""
    data = report.types.with_columns(share=pl.col("events") / max(report.records, 1))
    domain = data["type"].to_list()
    return (
        alt.Chart(data, title=alt.Title("Event types", subtitle=f"{report.records:,} records"))
        .mark_bar()
        .encode(
            y=alt.Y("type:N", title="event type", sort=domain),
            x=alt.X("events:Q", title="events (count)"),
            color=alt.Color("type:N", scale=colour_scale(domain), legend=None),
            tooltip=["type:N", alt.Tooltip("events:Q", format=","), alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(width=WIDTH, height=max(60, 22 * len(domain)))
    )


class StoreInspector(Workbench):
    """Look inside a data directory: what each file is, how big, what it holds, what is damaged.

    Parameters
    ----------
    source
        A data directory, or a directory of several stores.

    Examples
    --------
    >>> ll.widgets.StoreInspector(ll.datasets.path("damaged"))  # doctest: +SKIP
    """

    def __init__(self, source: str | Path) -> None:
        self.source = Path(source)
        self.summary = w.HTML()
        self.tabs = w.Tab()
        self.button = w.Button(description="Check again", icon="refresh", tooltip="Re-read the directory")
        self.button.on_click(lambda _: self.refresh())
        self.widget = w.VBox([w.HBox([self.button]), self.summary, self.tabs])
        self.report = inspect_store(self.source)
        self.refresh(reread=False)

    def refresh(self, *, reread: bool = True) -> None:
        """Re-read the directory (a writer may have appended) and redraw."""
        if reread:
            self.report = inspect_store(self.source)
        r = self.report
        badge = "sound" if r.ok else "PROBLEMS FOUND"
        colour = "#009E73" if r.ok else "#D55E00"
        lines = "".join(f"<li>{escape(line)}</li>" for line in r.summary_lines())
        self.summary.value = f'<b style="color:{colour}">{badge}</b><ul>{lines}</ul>'
        pages: list[tuple[str, w.Widget]] = []
        files_out, types_out = w.Output(), w.Output()
        show_chart(files_out, files_chart(r))
        show_chart(types_out, types_chart(r))
        pages.append(("Files", w.VBox([files_out, w.HTML(frame_html(r.files, css_class="ll-files", rows=60))])))
        pages.append(("Types", types_out))
        damage = "<p>No damaged record.</p>" if r.damage.is_empty() else frame_html(r.damage, css_class="ll-damage", rows=50)
        pages.append((f"Damage ({len(r.damage)})", w.HTML(damage)))
        if r.chained == 0:
            chain = "<p>No record carries a hash: there is no chain to check.</p>"
        elif r.chain.is_empty():
            chain = f"<p>The hash chain holds over {r.chained:,} records.</p>"
        else:
            chain = frame_html(r.chain, css_class="ll-chain", rows=50)
        pages.append((f"Chain ({len(r.chain)})", w.HTML(chain)))
        self.tabs.children = [p for _, p in pages]
        for i, (title, _) in enumerate(pages):
            self.tabs.set_title(i, title)

    def static_html(self) -> str:
        return self.report._repr_html_()

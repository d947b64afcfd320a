"""The time-travel explorer: a slider over log position or time drives the entity table and a chart."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Literal

import altair as alt
import ipywidgets as w
import polars as pl

from ..errors import LithairLabError
from ..viz import event_rate
from ..viz.style import events_lazy
from .base import Workbench, escape, frame_html, show_chart

TABLE_CLASS = "ll-entity-table"


class TimeTravelExplorer(Workbench):
    """Scrub through a history: the live entities of one model at each moment.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame.
    model
        The model shown first (default: the one with the most events).
    by
        ``"position"``: the slider counts records (``0`` is the empty state).
        ``"time"``: the slider moves over ``steps`` moments from the first
        event's time to the last's.
    rows
        Entities shown in the table (the most recently changed first).
    steps
        Number of moments of the time slider.
    machine
        A ready ``ll.TimeMachine`` of the same history (built when None).

    Examples
    --------
    >>> ll.widgets.TimeTravelExplorer(ll.datasets.path("shop"))  # doctest: +SKIP
    """

    def __init__(
        self,
        source: Any,
        *,
        model: str | None = None,
        by: Literal["position", "time"] = "position",
        rows: int = 12,
        steps: int = 200,
        machine: Any = None,
    ) -> None:
        from ..state import TimeMachine  # the time-travel layer

        if by not in ("position", "time"):
            msg = f"`by` should be `position` or `time`, got `{by}`"
            raise LithairLabError(msg)
        self.events = events_lazy(source).select("seq", "timestamp", "model", "short_type").collect()
        self.machine = machine if machine is not None else TimeMachine(source)
        self.rows = rows
        self.by = by
        n = int(getattr(self.machine, "events", len(self.events)))
        horizon = getattr(self.machine, "horizon", None)
        # a compacted directory cannot rebuild moments before its checkpoint: start the slider there
        first = int(horizon.position) if horizon is not None and horizon.position is not None else 0
        models = (
            self.events.filter(pl.col("model").is_not_null())
            .group_by("model")
            .agg(pl.len().alias("n"))
            .sort(["n", "model"], descending=[True, False])["model"]
            .to_list()
        )
        if not models:
            msg = "this history holds no CRUD model to explore\n\nThe explorer shows `<Model><Op>` entities."
            raise LithairLabError(msg)
        self.model = w.Dropdown(options=models, value=model if model in models else models[0], description="model")
        if by == "position":
            self.slider: w.Widget = w.IntSlider(
                value=n, min=first, max=n, step=1, description="position", continuous_update=False,
                layout=w.Layout(width="95%"),
            )  # fmt: skip
        else:
            self.slider = w.SelectionSlider(
                options=self._moments(steps), description="time", continuous_update=False, layout=w.Layout(width="95%")
            )
            self.slider.index = len(self.slider.options) - 1
        self.header = w.HTML()
        self.table = w.HTML()
        self.chart = w.Output()
        # The chart's spec is built once; a step only moves the rule that marks the moment.
        rate = event_rate(self.events.lazy()).properties(height=140, width=600)
        rule = alt.Chart(alt.Data(values=[])).mark_rule(color="#D55E00", strokeWidth=2).encode(x="at:T")
        self._spec: dict[str, Any] = (rate + rule).to_dict()
        self.last_step_s = 0.0
        self.slider.observe(lambda _: self.refresh(), "value")
        self.model.observe(lambda _: self.refresh(), "value")
        self.widget = w.VBox([w.HBox([self.model]), self.slider, self.header, self.table, self.chart])
        self.refresh()

    def _moments(self, steps: int) -> list[tuple[str, dt.datetime]]:
        ts = self.events["timestamp"].drop_nulls()
        if ts.is_empty():
            return [("(no events)", dt.datetime(1970, 1, 1, tzinfo=dt.UTC))]
        lo, hi = ts.min(), ts.max()
        assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
        span = max(hi - lo, dt.timedelta(seconds=1))
        moments = [lo + span * i / (steps - 1) for i in range(steps)] if steps > 1 else [hi]
        return [(m.strftime("%Y-%m-%d %H:%M:%S UTC"), m.replace(microsecond=0)) for m in moments]

    # -- one step -----------------------------------------------------------------------------
    def state(self) -> pl.DataFrame:
        """The current model's live entities at the slider's moment."""
        if self.by == "position":
            state = self.machine.state_at(position=self.slider.value)
        else:
            state = self.machine.state_at(self.slider.value)
        model = self.model.value
        return state[model] if model in state else pl.DataFrame()

    def moment(self) -> tuple[int, dt.datetime | None]:
        """(records included, time of the last of them) at the slider's moment."""
        if self.by == "time":  # every event stamped at or before the moment
            n = int((self.events["timestamp"] <= self.slider.value).sum())
            return n, self.slider.value
        n = int(self.slider.value)
        # Counted from the end, because a compacted log's frame holds fewer rows than the
        # history has positions: the records after its checkpoint are its last rows.
        last = len(self.events) - (self.slider_end() - n) - 1
        return n, (self.events["timestamp"][last] if n and last >= 0 else None)

    def refresh(self) -> None:
        """Recompute the table and chart for the slider's moment (one step)."""
        t0 = time.perf_counter()
        try:
            frame = self.state()
        except LithairLabError as e:  # an observer's exception would vanish into the kernel log
            first = escape(str(e).splitlines()[0])
            self.header.value = f'<span style="color:#D55E00">{first}</span>'
            return
        n, at = self.moment()
        self.header.value = self._header(frame, n, at)
        self.table.value = self._table(frame)
        show_chart(self.chart, self._chart(at))
        self.last_step_s = time.perf_counter() - t0

    def slider_end(self) -> int:
        """Records in the whole history."""
        return int(getattr(self.machine, "events", len(self.events)))

    def _header(self, frame: pl.DataFrame, n: int, at: dt.datetime | None) -> str:
        when = at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "before the first event"
        return (
            f'<span class="ll-explorer-header"><b>{len(frame):,}</b> live <code>{escape(self.model.value)}</code>'
            f" entities after <b>{n:,}</b> of {self.slider_end():,} records ({escape(when)})</span>"
        )

    def _table(self, frame: pl.DataFrame) -> str:
        if "_changed_seq" in frame.columns:
            frame = frame.sort("_changed_seq", descending=True)
        return frame_html(frame.head(self.rows), css_class=TABLE_CLASS, rows=self.rows)

    def _chart(self, at: dt.datetime | None) -> dict[str, Any]:
        self._spec["layer"][1]["data"] = {"values": [{"at": at.isoformat()}] if at is not None else []}
        return self._spec

    def static_html(self) -> str:
        frame = self.state()
        n, at = self.moment()
        return (
            '<div class="ll-explorer">'
            + self._header(frame, n, at)
            + self._table(frame)
            + "<p><i>Static view: run the notebook with widgets to move through time.</i></p></div>"
        )

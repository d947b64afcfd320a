"""The compaction lab: policy parameters as controls; the growth chart and summary table follow."""

from __future__ import annotations

import datetime as dt
from typing import Any

import ipywidgets as w
import polars as pl

from ..engine import policies as P
from ..errors import LithairLabError
from ..viz.style import events_lazy
from .base import Workbench, escape, frame_html, show_chart

SUMMARY_COLUMNS = (
    "policy", "compactions", "final_events", "final_bytes", "peak_bytes", "reduction",
    "startup_s", "integrity", "differing_entities", "audit_completeness", "reconstructable",
)  # fmt: skip
POLICIES = {
    "smart (seed, made safe)": "smart",
    "snapshot then truncate (upstream)": "truncate",
    "keep latest per key (Kafka)": "latest",
    "max count / max age (KurrentDB)": "maxcount",
}


class CompactionLab(Workbench):
    """Try a compaction policy on a log's history, against never compacting.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame.
    policy
        The policy shown first: ``"smart"``, ``"truncate"``, ``"latest"`` or ``"maxcount"``.
    threshold
        The compaction trigger shown first (records); default: a tenth of the log.
    startup
        Passed to ``ll.simulate``: estimate startup times (a calibration of a few
        seconds, once per process) or not.

    Examples
    --------
    >>> ll.widgets.CompactionLab(ll.datasets.path("mailbox-binary"))  # doctest: +SKIP
    """

    def __init__(self, source: Any, *, policy: str = "smart", threshold: int | None = None, startup: bool = False) -> None:
        if policy not in POLICIES.values():
            known = ", ".join(f"`{p}`" for p in POLICIES.values())
            msg = f"unknown policy `{policy}`\n\nChoose one of: {known}."
            raise LithairLabError(msg)
        self.events = events_lazy(source).collect()
        self.startup = startup
        n = max(len(self.events), 10)
        threshold = threshold or max(10, n // 10)
        style = {"description_width": "140px"}
        self.policy = w.Dropdown(options=list(POLICIES.items()), value=policy, description="policy", style=style)
        self.threshold = w.BoundedIntText(value=threshold, min=2, max=10**9, description="threshold (records)", style=style)
        self.keep_recent = w.BoundedIntText(value=max(1, threshold // 10), min=0, max=10**9, description="keep recent", style=style)
        self.snapshot = w.Checkbox(value=True, description="publish a checkpoint")
        self.snapshot_interval = w.BoundedIntText(value=0, min=0, max=10**9, description="snapshot every (0: off)", style=style)
        self.max_count = w.BoundedIntText(value=1, min=1, max=10**6, description="max count per key", style=style)
        self.tombstone_hours = w.BoundedFloatText(value=24, min=0, max=10**6, description="tombstones kept (h)", style=style)
        self.backups = w.BoundedIntText(value=P.SEED_BACKUPS, min=0, max=100, description="backups kept", style=style)
        self.status = w.HTML()
        self.table = w.HTML()
        self.chart = w.Output()
        self.simulation: Any = None
        controls = [
            self.threshold, self.keep_recent, self.snapshot, self.backups,
            self.snapshot_interval, self.max_count, self.tombstone_hours,
        ]  # fmt: skip
        for c in (self.policy, *controls):
            c.observe(lambda _: self.refresh(), "value")
        self.widget = w.VBox([self.policy, w.HBox([w.VBox(controls[:4]), w.VBox(controls[4:])]), self.status, self.chart, self.table])
        self.refresh()

    def make_policy(self) -> P.CompactionPolicy:
        """The policy the controls describe (raises PolicyError when they contradict each other)."""
        kind = self.policy.value
        common = {"threshold": self.threshold.value, "snapshot": self.snapshot.value, "backups": self.backups.value}
        if kind == "smart":
            return P.SmartCompaction(
                **common, keep_recent=self.keep_recent.value, snapshot_interval=self.snapshot_interval.value or None
            )
        if kind == "truncate":
            return P.SnapshotThenTruncate(**common)
        if kind == "latest":
            return P.KeepLatestPerKey(
                **common, active_segment=self.keep_recent.value,
                tombstone_retention=dt.timedelta(hours=self.tombstone_hours.value),
            )  # fmt: skip
        return P.MaxCountMaxAge(**common, max_count=self.max_count.value)

    def _visible(self) -> None:
        kind = self.policy.value
        show = {
            self.keep_recent: kind in ("smart", "latest"),
            self.snapshot_interval: kind == "smart",
            self.max_count: kind == "maxcount",
            self.tombstone_hours: kind == "latest",
        }
        for control, visible in show.items():
            control.layout.display = None if visible else "none"

    def refresh(self) -> None:
        """Simulate the policy described by the controls and redraw."""
        from ..compaction import simulate
        from ..viz.compaction import compaction_growth

        self._visible()
        try:
            policy = self.make_policy()
        except LithairLabError as e:
            self.status.value = f'<span style="color:#D55E00">{escape(str(e).splitlines()[0])}</span>'
            return
        self.simulation = simulate(self.events, [P.NoCompaction(), policy], startup=self.startup)
        self.status.value = ""
        self.table.value = self._table()
        show_chart(self.chart, compaction_growth(self.simulation))

    def _table(self) -> str:
        summary = self.simulation.summary
        return frame_html(summary.select([c for c in SUMMARY_COLUMNS if c in summary.columns]), css_class="ll-compaction-summary", rows=10)

    def static_html(self) -> str:
        from ..viz import to_svg
        from ..viz.compaction import compaction_growth

        if self.simulation is None:
            return f"<div>{self.status.value}</div>"
        chart = to_svg(compaction_growth(self.simulation))
        return f'<div class="ll-compaction-lab">{self.status.value}{chart}{self._table()}</div>'


"""Altair charts of Lithair logs: aggregated in Polars first, exportable offline.

Every chart takes a data directory or an event frame (million-row inputs are
fine: they are reduced to at most a few thousand marks), uses a colour-blind
safe palette, and saves to PNG or SVG with :func:`save`.
"""

from __future__ import annotations

from .compaction import compaction_growth, compaction_summary
from .diff import state_diff
from .entity import entity_timeline
from .events import event_rate, log_growth, type_mix
from .export import save, to_png, to_svg
from .render import enable as enable_offline_rendering
from .style import PALETTE

__all__ = [
    "PALETTE",
    "compaction_growth",
    "compaction_summary",
    "enable_offline_rendering",
    "entity_timeline",
    "event_rate",
    "log_growth",
    "save",
    "state_diff",
    "to_png",
    "to_svg",
    "type_mix",
]

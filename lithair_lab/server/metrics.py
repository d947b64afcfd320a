"""The monitoring figures the seed asks for, read from the store and its directory.

Log size, events since compaction, compactions, last startup time,
critical-event count and backup size (seed: "Monitoring & Alerting").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.models import ModelStore
from ..formats import layout

CRITICAL_OP = "Created"  # the seed's critical events are the creations (ProductCreated, ...)


def journal_bytes(directory: Path) -> int:
    """Bytes of every journal file: rotated segments, the active file, native journals."""
    total = 0
    for p in directory.iterdir():
        if layout.SEGMENT.fullmatch(p.name) or p.name == layout.ACTIVE or layout.NATIVE_JOURNAL.fullmatch(p.name):
            total += p.stat().st_size
    return total


def collect_metrics(db: ModelStore) -> dict[str, Any]:
    """The figures as a JSON-ready dict (sizes in bytes, times in seconds)."""
    store = db.store
    directory = Path(store.path)
    figures: dict[str, Any] = {
        "log_size_bytes": journal_bytes(directory),
        "events": store.event_count,
        "last_startup_seconds": getattr(db, "startup_seconds", None),
        "critical_events_written": db.writes[CRITICAL_OP],
        "writes": dict(db.writes),
        "entities": {name: db.count(name) for name in db.models},
    }
    figures.update(compaction_figures(db))
    return figures


def compaction_figures(db: ModelStore) -> dict[str, Any]:
    """Compactions, events since the last one, backup size (when the store compacts)."""
    stats = getattr(db.store, "compaction_stats", None)
    if stats is None:
        return {"compactions": 0, "events_since_compaction": db.store.event_count, "backup_size_bytes": 0}
    return dict(stats() if callable(stats) else stats)

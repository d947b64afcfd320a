"""The monitoring figures the seed asks for, read from the store and its directory.

Log size, events since compaction, compactions, last startup time,
critical-event count and backup size (seed: "Monitoring & Alerting").
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ..engine.compaction import BACKUP_DIR, AutoCompaction, journal_records
from ..engine.models import ModelStore
from ..formats import checkpoint, layout
from ..formats.batch import read_journal

CRITICAL_OP = "Created"  # the seed's critical events are the creations (ProductCreated, ...)


def journal_bytes(directory: Path) -> int:
    """Bytes of every journal file: rotated segments, the active file, native journals."""
    total = 0
    for p in directory.iterdir():
        if layout.SEGMENT.fullmatch(p.name) or p.name == layout.ACTIVE or layout.NATIVE_JOURNAL.fullmatch(p.name):
            total += p.stat().st_size
    return total


def history_files(directory: Path) -> list[Path]:
    """The journal files that make up the history (a checkpoint may select a native journal)."""
    chosen = None
    snap = directory / layout.SNAPSHOT
    if snap.exists():
        try:
            doc = orjson.loads(snap.read_bytes())
        except orjson.JSONDecodeError:
            doc = None  # a legacy snapshot that is not JSON selects nothing; the engine reports it on open
        if checkpoint.is_manifest(doc):
            chosen = checkpoint.parse_manifest(doc).journal
    return [p for p in layout.journal_files(directory, chosen) if p.exists()]


def count_critical(directory: Path) -> int:
    """How many records of the history are creations (``<Model>Created``), read vectorized."""
    n = 0
    for path in history_files(directory):
        for batch in read_journal(path):
            n += batch.records.filter(pl.col("op") == CRITICAL_OP).height
    return n


class Monitor:
    """The figures of one served directory; counts critical events once, then follows writes.

    The count is taken from the files at start (and again after a compaction,
    which rewrites them) and advanced by every creation written since.
    """

    def __init__(self, db: ModelStore, compaction: AutoCompaction | None = None) -> None:
        self.db = db
        self.compaction = compaction
        self._lock = threading.Lock()
        self._base = 0
        self._written_at_base = 0
        self._compactions_at_base = -1
        self._recount()

    def _recount(self) -> None:
        # A background compaction may switch journals while we read them: then count again.
        for _ in range(5):
            with self.db.transaction():  # no model write lands between the count and its baseline
                compactions = self._compactions()
                try:
                    base = count_critical(Path(self.db.store.path))
                except FileNotFoundError:
                    continue
                if self._compactions() != compactions:
                    continue
                self._base, self._written_at_base = base, self.db.writes[CRITICAL_OP]
                self._compactions_at_base = compactions
                return

    def _compactions(self) -> int:
        return len(self.compaction.reports) if self.compaction is not None else 0

    def critical_events(self) -> int:
        with self._lock:
            if self._compactions() != self._compactions_at_base:
                self._recount()
            return self._base + self.db.writes[CRITICAL_OP] - self._written_at_base

    def collect(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (sizes in bytes, times in seconds)."""
        db = self.db
        figures: dict[str, Any] = {
            "log_size_bytes": journal_bytes(Path(db.store.path)),
            "events": db.store.event_count,
            "last_startup_seconds": getattr(db, "startup_seconds", None),
            "critical_events": self.critical_events(),
            "writes": dict(db.writes),
            "entities": {name: db.count(name) for name in db.models},
        }
        figures.update(compaction_figures(db, self.compaction))
        return figures


def compaction_figures(db: ModelStore, auto: AutoCompaction | None) -> dict[str, Any]:
    """Compactions run by this server, records since the last one, backup bytes, last report."""
    store = db.store
    reports = auto.reports if auto is not None else []
    in_journal = journal_records(store)
    last = reports[-1] if reports else None
    backups = Path(store.path) / BACKUP_DIR
    return {
        "compactions": len(reports),
        "compaction_errors": [f"{type(e).__name__}: {e}" for e in auto.errors] if auto is not None else [],
        "compaction_policy": auto.policy.name if auto is not None else None,
        "next_compaction_at": auto.trigger if auto is not None else None,
        # records in the journal beyond those the last compaction retained (all of them before any)
        "events_since_compaction": in_journal - (last.retained if last is not None else 0),
        "backup_size_bytes": sum(p.stat().st_size for p in backups.rglob("*") if p.is_file()) if backups.is_dir() else 0,
        "last_compaction": None
        if last is None
        else {
            "policy": last.policy,
            "records_before": last.before,
            "records_retained": last.retained,
            "bytes_before": last.bytes_before,
            "bytes_after": last.bytes_after,
            "seconds": last.seconds,
        },
    }


def prometheus_text(figures: dict[str, Any], prefix: str = "lithair_lab") -> str:
    """The numeric figures in Prometheus' text format (nested keys joined by ``_``, maps as labels).

    ``entities`` and ``writes`` become one metric with a ``model`` / ``op``
    label, HTTP responses one with a ``status`` label; text values are left out.
    """
    labelled = {"entities": "model", "writes": "op", "responses": "status"}
    lines: list[str] = []

    def emit(name: str, value: Any, labels: str = "") -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        lines.append(f"{prefix}_{name}{labels} {value}")

    def walk(name: str, value: Any) -> None:
        if isinstance(value, dict):
            key = name.rsplit("_", 1)[-1] if name else ""
            label = labelled.get(key)
            for k, v in value.items():
                if label is not None:
                    emit(name, v, f'{{{label}="{k}"}}')
                else:
                    walk(f"{name}_{k}" if name else k, v)
        else:
            emit(name, value)

    walk("", figures)
    return "\n".join(lines) + "\n"

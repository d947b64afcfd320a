"""File names of a data directory and which of them make up the history (FORMATS.md 1, 4)."""

from __future__ import annotations

import re
from pathlib import Path

ACTIVE = "events.raftlog"
SNAPSHOT = "state.raftsnap"
META = "meta.raftmeta"
DEDUP = "dedup.raftids"
INDEX = "events.raftidx"
SCHEMA_DIR = ".schema"
SEGMENT = re.compile(r"events\.raftlog\.(\d+)")
NATIVE_JOURNAL = re.compile(r"native-journal-[0-9a-f-]{36}\.raftlog")
LITHAIR_FILE = re.compile(
    r"events\.raftlog(\.\d+)?|state\.raftsnap|meta\.raftmeta|dedup\.raftids|events\.raftidx"
    r"|native-journal-[0-9a-f-]{36}\.raftlog|native-snapshot-[0-9a-f-]{36}\.tmp|snapshot\.raftsnap"
)


def segments(directory: Path) -> list[Path]:
    """Rotated segments ``events.raftlog.N`` in replay order (``.1`` oldest)."""
    found = []
    for p in directory.iterdir():
        m = SEGMENT.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def journal_files(directory: Path, checkpoint_journal: str | None = None) -> list[Path]:
    """The files whose records make up the history, in replay order.

    A checkpoint that selects a ``native-journal-*`` file makes that journal
    alone current; otherwise the history is ``.1 … .N`` then ``events.raftlog``
    (the active file is listed even when it does not exist yet).
    """
    if checkpoint_journal is not None and checkpoint_journal != ACTIVE:
        return [directory / checkpoint_journal]
    return [*segments(directory), directory / ACTIVE]


def is_data_dir(directory: Path) -> bool:
    """True when ``directory`` holds at least one Lithair file."""
    return any(LITHAIR_FILE.fullmatch(p.name) for p in directory.iterdir())

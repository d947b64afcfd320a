"""Which stores a path holds, and which files make up each store's history.

A *store* is one data directory. A path given to :func:`lithair_lab.scan` may
be a data directory, a parent of several (``data/products``, ``data/users``),
a store in multi-file mode (each ``<aggregate_id>/`` or ``global/`` subfolder
is itself a data directory), or one journal file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lithair_lab.errors import CheckpointError, FormatError
from lithair_lab.formats import checkpoint, layout
from lithair_lab.formats.batch import show_raw

#: Kinds of store-level findings that are reported but are not damage:
#: ``on_damage="raise"`` does not raise for them.
NOTICES = frozenset({"stale_file", "leftover_tmp"})
_HELP = (
    "pass a Lithair data directory (holding `events.raftlog`, `state.raftsnap`, …),"
    " a directory of such stores, or one journal file"
)


@dataclass(frozen=True)
class Store:
    """One data directory to read; ``name`` is the value of the ``store`` column."""

    name: str
    directory: Path
    single_file: Path | None = None  # set when the user pointed at one journal file


@dataclass
class Plan:
    """The history of one store: journals in replay order, the checkpoint, findings."""

    store: Store
    journals: list[Path]
    checkpoint: checkpoint.Checkpoint | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, file: str, kind: str, detail: str) -> None:
        self.problems.append(
            {"store": self.store.name, "file": file, "offset": 0, "line": None, "kind": kind, "detail": detail, "raw": ""}
        )


def find_stores(source: str | Path) -> list[Store]:
    """The stores under ``source``, in a stable order (the path itself first).

    Raises
    ------
    FormatError
        When ``source`` does not exist, is empty, or holds nothing of Lithair.
    TypeError
        When ``source`` is not a path.
    """
    if not isinstance(source, str | Path):
        msg = f"`source` must be a path (str or Path) or an event frame, got {type(source).__name__}"
        raise TypeError(msg)
    root = Path(source)
    if not root.exists():
        raise FormatError(root, f"no such file or directory\n\n{_HELP}")
    if root.is_file():
        if layout.SEGMENT.fullmatch(root.name) or layout.NATIVE_JOURNAL.fullmatch(root.name) or root.name == layout.ACTIVE:
            return [Store(root.parent.name, root.parent, single_file=root)]
        raise FormatError(root, f"is a file, not a data directory, and not named like a journal\n\n{_HELP}")
    entries = sorted(root.iterdir())
    if not entries:
        raise FormatError(root, f"is an empty directory: there are no events to read\n\n{_HELP}")
    stores: list[Store] = []
    if layout.is_data_dir(root):
        _walk(root, root.name, stores)
    else:
        for sub in entries:
            if sub.is_dir() and not sub.name.startswith("."):
                _walk(sub, sub.name, stores)
    if not stores:
        names = ", ".join(f"`{p.name}`" for p in entries[:5]) + (", …" if len(entries) > 5 else "")
        raise FormatError(root, f"holds no Lithair data directory (found {names})\n\n{_HELP}")
    return stores


def _walk(directory: Path, name: str, out: list[Store]) -> None:
    if layout.is_data_dir(directory):
        out.append(Store(name, directory))
    for sub in sorted(directory.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            _walk(sub, f"{name}/{sub.name}", out)


def plan(store: Store, *, strict: bool) -> Plan:
    """Select the journals of ``store`` (FORMATS.md section 4) and verify its checkpoint.

    With ``strict`` a checkpoint that must not be trusted raises
    :class:`CheckpointError`; otherwise it is recorded as a ``bad_checkpoint``
    problem and the journal it names (or the default history) is read.
    """
    d = store.directory
    if store.single_file is not None:
        return Plan(store, [store.single_file])
    cp, named, problems = _checkpoint(d, store.name)
    if problems and strict:
        p = problems[0]
        raise CheckpointError(d / layout.SNAPSHOT, f"{p['detail']}\n\n{_SEE_ALL}")
    result = Plan(store, layout.journal_files(d, named), cp, problems)
    journals = {p.name for p in result.journals}
    numbers = [int(m.group(1)) for p in result.journals if (m := layout.SEGMENT.fullmatch(p.name))]
    missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
    if missing:
        result.problem(
            f"{layout.ACTIVE}.{missing[0]}", "missing_segment",
            f"rotated segment(s) {', '.join(f'.{n}' for n in missing)} are missing: records are lost between segments",
        )  # fmt: skip
    for p in sorted(d.iterdir()):
        if p.name in journals or not p.is_file():
            continue
        if layout.SEGMENT.fullmatch(p.name) or layout.NATIVE_JOURNAL.fullmatch(p.name) or p.name == layout.ACTIVE:
            why = f"the checkpoint selects `{named}`" if named and named != layout.ACTIVE else "no checkpoint selects it"
            result.problem(p.name, "stale_file", f"not part of the history ({why}); not read")
        elif p.name.startswith("native-snapshot-") and p.name.endswith(".tmp"):
            result.problem(p.name, "leftover_tmp", "leftover of an interrupted checkpoint publish; ignored")
    return result


_SEE_ALL = "to read what can be read and see every problem, use `on_damage=\"report\"` and `ll.read_damage(path)`"


def _checkpoint(d: Path, store: str) -> tuple[checkpoint.Checkpoint | None, str | None, list[dict[str, Any]]]:
    """The verified checkpoint of ``d`` (or None), the journal it selects, and problems."""
    path = d / layout.SNAPSHOT
    if not path.is_file():
        return None, None, []
    data = path.read_bytes()
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, None, []  # a legacy snapshot in some other shape: covers no records
    if not checkpoint.is_manifest(obj):
        return None, None, []
    inner = obj.get(checkpoint.MANIFEST_KEY)
    named = inner.get("journal") if isinstance(inner, dict) else None
    if not isinstance(named, str) or not checkpoint.JOURNAL_NAME.fullmatch(named):
        named = None
    try:
        cp = checkpoint.parse_manifest(obj)
        _verify_journal(d, cp)
    except ValueError as e:
        problem = {
            "store": store, "file": layout.SNAPSHOT, "offset": 0, "line": None, "kind": "bad_checkpoint",
            "detail": f"checkpoint manifest must not be trusted: {e}", "raw": _preview(data),
        }  # fmt: skip
        return None, named, [problem]
    return cp, cp.journal, []


def _verify_journal(d: Path, cp: checkpoint.Checkpoint) -> None:
    """Check the checkpoint's journal prefix; raises ValueError naming the problem.

    The engine's checkpoint states of ``events.raftlog`` carry ``segments: k``; after a
    crash between a rotation's rename and its re-checkpoint, the covered prefix
    is that of segment ``.k+1`` (docs/ARCHITECTURE.md), which is accepted too.
    """
    journal = d / cp.journal
    if not journal.is_file():
        raise ValueError(f"the checkpoint's journal `{cp.journal}` is missing")
    try:
        with journal.open("rb") as f:
            checkpoint.verify_prefix(cp, f)
    except ValueError:
        state = orjson.loads(cp.state)
        k = state.get("segments") if isinstance(state, dict) else None
        moved = d / f"{layout.ACTIVE}.{k + 1}" if isinstance(k, int) and cp.journal == layout.ACTIVE else None
        if moved is None or not moved.is_file():
            raise
        with moved.open("rb") as f:
            checkpoint.verify_prefix(cp, f)


def _preview(data: bytes) -> str:
    return show_raw(data)

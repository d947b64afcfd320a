"""Era C checkpoint manifests in ``state.raftsnap`` (FORMATS.md section 5)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

MANIFEST_KEY = "__lithair_native_checkpoint"
JOURNAL_NAME = re.compile(
    r"events\.raftlog|native-journal-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.raftlog"
)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: The `state` of checkpoints lithair_lab's engine writes (docs/ARCHITECTURE.md).
STATE_FORMAT = "lithair_lab.state/1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified manifest: ``state`` covers the first ``covered_events`` records
    (``offset`` bytes) of ``journal``."""

    journal: str
    offset: int
    covered_events: int
    prefix_sha256: str
    last_event_hash: str | None
    state: str
    version: int = 1

    def inner(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "journal": self.journal,
            "offset": self.offset,
            "covered_events": self.covered_events,
            "prefix_sha256": self.prefix_sha256,
            "last_event_hash": self.last_event_hash,
            "state": self.state,
        }

    def to_bytes(self) -> bytes:
        """The manifest file's exact bytes (compact JSON, no trailing newline)."""
        inner = orjson.dumps(self.inner())
        digest = hashlib.sha256(inner).hexdigest()
        return b'{"' + MANIFEST_KEY.encode() + b'":' + inner + b',"sha256":"' + digest.encode() + b'"}'


def is_manifest(obj: Any) -> bool:
    """True when a decoded ``state.raftsnap`` is a checkpoint manifest (not a legacy snapshot)."""
    return isinstance(obj, dict) and MANIFEST_KEY in obj


def parse_manifest(obj: dict[str, Any]) -> Checkpoint:
    """Validate a decoded manifest's own fields; raises ValueError naming the problem.

    Checks that need the journal (length, prefix hash) are done by
    :func:`verify_prefix`, by whoever opens the journal.
    """
    inner = obj.get(MANIFEST_KEY)
    if not isinstance(inner, dict):
        raise ValueError(f"`{MANIFEST_KEY}` is not an object")
    if inner.get("version") != 1:
        raise ValueError(f"unsupported checkpoint version {inner.get('version')!r} (expected 1)")
    expected = hashlib.sha256(orjson.dumps(inner)).hexdigest()
    if obj.get("sha256") != expected:
        raise ValueError(f"manifest sha256 {obj.get('sha256')!r} does not match its content ({expected})")
    journal = inner.get("journal")
    if not isinstance(journal, str) or not JOURNAL_NAME.fullmatch(journal):
        raise ValueError(f"journal name {journal!r} is not `events.raftlog` or `native-journal-<uuid>.raftlog`")
    offset, covered = inner.get("offset"), inner.get("covered_events")
    for name, v in (("offset", offset), ("covered_events", covered)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"`{name}` must be a non-negative integer, got {v!r}")
    state = inner.get("state")
    if not isinstance(state, str):
        raise ValueError("`state` is not a string")
    try:
        orjson.loads(state)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"`state` is not JSON ({e})") from e
    prefix, last = inner.get("prefix_sha256"), inner.get("last_event_hash")
    if not isinstance(prefix, str):
        raise ValueError("`prefix_sha256` is not a string")
    if last is not None and not isinstance(last, str):
        raise ValueError("`last_event_hash` is not a string or null")
    return Checkpoint(journal, offset, covered, prefix, last, state)  # type: ignore[arg-type]


def verify_prefix(cp: Checkpoint, journal: BinaryIO) -> None:
    """Raise ValueError unless the journal's first ``offset`` bytes hash to ``prefix_sha256``.

    Reads ``journal`` from its start in 1 MiB chunks, so memory stays flat.
    """
    h = hashlib.sha256()
    journal.seek(0)
    remaining = cp.offset
    while remaining:
        chunk = journal.read(min(remaining, 1 << 20))
        if not chunk:
            raise ValueError(
                f"journal `{cp.journal}` is {cp.offset - remaining} bytes, shorter than the checkpoint's offset {cp.offset}"
            )
        h.update(chunk)
        remaining -= len(chunk)
    if h.hexdigest() != cp.prefix_sha256:
        raise ValueError(
            f"the first {cp.offset} bytes of `{cp.journal}` hash to {h.hexdigest()}, not the checkpoint's"
            f" {cp.prefix_sha256} (the journal was changed after the checkpoint)"
        )


def history_length(cp: Checkpoint) -> int | None:
    """How many records of the whole history a lithair_lab checkpoint's state covers.

    After a compaction this exceeds ``covered_events``: the records that follow
    the checkpoint continue the history's numbering from it. None for upstream
    checkpoints, whose state has no such count.
    """
    if f'"format":"{STATE_FORMAT}"' not in cp.state:  # cheap test before decoding a large state
        return None
    state = orjson.loads(cp.state)
    events = state.get("events") if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None
    return events if isinstance(events, int) and not isinstance(events, bool) else None

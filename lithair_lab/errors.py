"""One exception hierarchy for the whole package.

Every error a user can act on derives from :class:`LithairLabError`; the ones
that carry data keep it as attributes so callers need not parse messages.
"""

from __future__ import annotations

from pathlib import Path


class LithairLabError(Exception):
    """Root of every error raised by lithair_lab."""


class InvalidEventError(LithairLabError, ValueError):
    """An event given to the engine is malformed (type, payload, id, timestamp)."""


class DuplicateEventError(LithairLabError):
    """An append reused an idempotence key that the store has already seen."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"duplicate event: idempotence key `{key}` was already appended")


class StoreLockedError(LithairLabError):
    """Another process holds the write lock of a data directory."""

    def __init__(self, path: Path | str, holder: str) -> None:
        self.path = Path(path)
        self.holder = holder
        super().__init__(f"data directory `{path}` is locked for writing by {holder}")


class FormatError(LithairLabError):
    """A file is not in any Lithair format we know, or a path is not a data directory."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class CheckpointError(FormatError):
    """`state.raftsnap` holds a checkpoint manifest that must not be trusted."""


class DamageError(LithairLabError):
    """A record inside a journal is damaged (bad CRC, bad JSON, torn frame, ...).

    ``line`` is 1-based for JSON journals and ``None`` for binary ones; ``offset``
    is the byte offset of the record's first byte in ``path``.
    """

    def __init__(
        self,
        path: Path | str,
        offset: int,
        kind: str,
        detail: str = "",
        *,
        line: int | None = None,
        hint: str = "",
    ) -> None:
        self.path = Path(path)
        self.offset = offset
        self.line = line
        self.kind = kind
        self.detail = detail
        where = f"line {line}, byte offset {offset}" if line is not None else f"byte offset {offset}"
        msg = f"{path}: {where}: {kind}"
        if detail:
            msg += f" ({detail})"
        if hint:
            msg += f"\n\n{hint}"
        super().__init__(msg)


class SchemaConflictError(LithairLabError, ValueError):
    """Payload rows disagree on a field's type; ``field`` and ``types`` (type name -> example seqs) say how."""

    def __init__(self, field: str, types: dict[str, list[int]], hint: str = "") -> None:
        self.field = field
        self.types = types
        shown = "; ".join(f"{t} (e.g. seq {', '.join(map(str, seqs[:3]))})" for t, seqs in types.items())
        msg = f"payload field `{field}` has conflicting types across rows: {shown}"
        super().__init__(msg + (f"\n\n{hint}" if hint else ""))


class HorizonError(LithairLabError):
    """A moment lies before the earliest point a directory can still reconstruct exactly."""


class MomentError(LithairLabError, ValueError):
    """A moment (``at=``, ``position=``, ``seq=``) that cannot be understood."""


class LithairLabWarning(UserWarning):
    """Root of every warning issued by lithair_lab."""


class HistoryWarning(LithairLabWarning):
    """A history holds inconsistencies (an update before its create, a delete of an unknown entity...)."""


class PerformanceWarning(LithairLabWarning):
    """A slower path is taken (for example the native read accelerator is not built)."""


class PolicyError(LithairLabError, ValueError):
    """A compaction policy is invalid or would lose state."""


class ConstraintError(LithairLabError):
    """A model write was refused by a constraint (unique, foreign key, protected delete...).

    ``kind`` is ``"unique"``, ``"foreign_key"``, ``"protected"``, ``"exists"`` or
    ``"duplicate"``; ``details`` holds what the caller may act on (the
    conflicting key, the referrers...).
    """

    def __init__(self, message: str, *, kind: str = "", model: str | None = None, details: dict[str, object] | None = None) -> None:
        self.kind = kind
        self.model = model
        self.details = details or {}
        super().__init__(message)


class ValidationError(LithairLabError, ValueError):
    """A model write was refused because of a value: wrong type, missing, null, unknown or immutable field."""

    def __init__(self, message: str, *, model: str | None = None, field: str | None = None) -> None:
        self.model = model
        self.field = field
        super().__init__(message)


class NotFoundError(LithairLabError, KeyError):
    """An unknown model or entity id."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else ""

"""Secondary indexes of a model: field values -> entity keys.

Indexes live in memory only. They are derived from the store's state, so
they are rebuilt on open (replay) and maintained on every write; nothing
about them is written to disk.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import orjson

from .model import Index


def norm(value: Any) -> Hashable:
    """A hashable key for a JSON value that keeps `1`, `"1"` and `true` apart.

    Integers and floats of equal value share a key (``1 == 1.0`` in JSON terms).
    """
    if value is None:
        return ("z",)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return ("j", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


class SecondaryIndex:
    """One index: the tuple of normalized field values -> the set of entity keys."""

    __slots__ = ("entries", "index")

    def __init__(self, index: Index) -> None:
        self.index = index
        self.entries: dict[Hashable, set[str]] = {}

    def key_of(self, obj: dict[str, Any]) -> tuple[Hashable, ...]:
        return tuple(norm(obj.get(f)) for f in self.index.fields)

    def add(self, key: str, obj: dict[str, Any]) -> None:
        self.entries.setdefault(self.key_of(obj), set()).add(key)

    def remove(self, key: str, obj: dict[str, Any]) -> None:
        k = self.key_of(obj)
        keys = self.entries.get(k)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.entries[k]

    def lookup(self, values: Iterable[Any]) -> set[str]:
        return self.entries.get(tuple(norm(v) for v in values), set())

    def conflicts(self, key: str, obj: dict[str, Any]) -> set[str]:
        """Other entities holding the same values (null never conflicts)."""
        k = self.key_of(obj)
        if any(part == ("z",) for part in k):
            return set()
        return self.entries.get(k, set()) - {key}


class ReferenceIndex:
    """Referrers of one relation: target entity key -> referring entity keys."""

    __slots__ = ("entries", "field", "model")

    def __init__(self, model: str, field: str) -> None:
        self.model = model
        self.field = field
        self.entries: dict[str, set[str]] = {}

    @staticmethod
    def target_of(value: Any) -> str | None:
        if value is None:
            return None
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    def add(self, key: str, obj: dict[str, Any]) -> None:
        t = self.target_of(obj.get(self.field))
        if t is not None:
            self.entries.setdefault(t, set()).add(key)

    def remove(self, key: str, obj: dict[str, Any]) -> None:
        t = self.target_of(obj.get(self.field))
        keys = self.entries.get(t) if t is not None else None
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.entries[t]  # type: ignore[arg-type]

    def referrers(self, target: str) -> set[str]:
        return self.entries.get(target, set())

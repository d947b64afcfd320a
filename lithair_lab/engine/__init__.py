"""The engine: the only writer of data directories (append, dedup, durability, rotation, snapshots)."""

from __future__ import annotations

from .reducers import ReducerRegistry, ReplayState
from .store import Store, open_store

__all__ = ["ReducerRegistry", "ReplayState", "Store", "open_store"]

"""The engine: the only writer of data directories (append, dedup, durability, rotation, snapshots)."""

from __future__ import annotations

from .reducers import ReducerRegistry, ReplayState
from .store import Pending, Store, open_store

__all__ = ["Pending", "ReducerRegistry", "ReplayState", "Store", "open_store"]

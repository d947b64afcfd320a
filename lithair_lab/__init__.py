"""lithair_lab: Lithair event-sourced data directories in Polars and Jupyter.

The public API is flat: ``import lithair_lab as ll`` then ``ll.open_store``,
``ll.scan``, ``ll.state_at``, ... Submodules are for people extending it.
"""

from __future__ import annotations

from importlib.metadata import version as _version

from .errors import (
    CheckpointError,
    ConstraintError,
    DamageError,
    DuplicateEventError,
    FormatError,
    HorizonError,
    InvalidEventError,
    LithairLabError,
    NotFoundError,
    PolicyError,
    StoreLockedError,
)
from .engine import ReducerRegistry, Store, open_store
from .formats.envelope import RawJSON

__version__ = _version("lithair_lab")

__all__ = [
    "RawJSON",
    "ReducerRegistry",
    "Store",
    "open_store",
    "CheckpointError",
    "ConstraintError",
    "DamageError",
    "DuplicateEventError",
    "FormatError",
    "HorizonError",
    "InvalidEventError",
    "LithairLabError",
    "NotFoundError",
    "PolicyError",
    "StoreLockedError",
    "__version__",
]

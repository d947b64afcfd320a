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
    ValidationError,
)
from .engine import ReducerRegistry, Store, open_store
from .engine.models import Field, Index, Model, ModelStore, model_from_schema, open_models, shop_models
from .formats.envelope import RawJSON
from .server import RunningServer, serve, start_server

__version__ = _version("lithair_lab")

__all__ = [
    "Field",
    "Index",
    "Model",
    "ModelStore",
    "RunningServer",
    "ValidationError",
    "model_from_schema",
    "open_models",
    "serve",
    "shop_models",
    "start_server",
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

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
    HistoryWarning,
    HorizonError,
    InvalidEventError,
    LithairLabError,
    LithairLabWarning,
    MomentError,
    NotFoundError,
    PolicyError,
    SchemaConflictError,
    StoreLockedError,
    ValidationError,
)
from .engine import Pending, ReducerRegistry, Store, open_store
from .compaction import Simulation, simulate
from .engine.compaction import list_backups, restore_backup
from .engine.policies import (
    CompactionPolicy,
    KeepLatestPerKey,
    MaxCountMaxAge,
    NoCompaction,
    SmartCompaction,
    SnapshotThenTruncate,
)
from .engine.models import Field, Index, Model, ModelStore, model_from_schema, open_models, shop_models
from .formats.envelope import RawJSON
from .frames import (
    Follower,
    decode_objects,
    decode_payloads,
    follow,
    payload_schema,
    read,
    read_damage,
    read_dedup,
    read_meta,
    read_snapshot,
    scan,
    scan_damage,
    verify_chain,
)
from .server import RunningServer, serve, start_server
from .state import State, TimeMachine, diff, history, restore, state_at, what_if

__version__ = _version("lithair_lab")

# The workbench (charts, widgets, datasets) loads on first use: `ll.viz.event_rate(...)`,
# `ll.widgets.TimeTravelExplorer(...)`, `ll.datasets.path("shop")`, `ll.inspect_store(...)`.
_WORKBENCH = {"viz": "viz", "widgets": "widgets", "datasets": "datasets", "inspect_store": "widgets.report"}


def __getattr__(name: str) -> object:
    if name in _WORKBENCH:
        import importlib

        module = importlib.import_module(f".{_WORKBENCH[name]}", __name__)
        return module if name == _WORKBENCH[name] else getattr(module, name)
    msg = f"module `lithair_lab` has no attribute `{name}`"
    raise AttributeError(msg)


__all__ = [
    "CheckpointError",
    "CompactionPolicy",
    "ConstraintError",
    "DamageError",
    "datasets",
    "decode_objects",
    "decode_payloads",
    "diff",
    "DuplicateEventError",
    "Field",
    "follow",
    "Follower",
    "FormatError",
    "history",
    "HistoryWarning",
    "HorizonError",
    "Index",
    "inspect_store",
    "InvalidEventError",
    "KeepLatestPerKey",
    "list_backups",
    "LithairLabError",
    "LithairLabWarning",
    "MaxCountMaxAge",
    "Model",
    "model_from_schema",
    "ModelStore",
    "MomentError",
    "NoCompaction",
    "NotFoundError",
    "open_models",
    "open_store",
    "payload_schema",
    "Pending",
    "PolicyError",
    "RawJSON",
    "read",
    "read_damage",
    "read_dedup",
    "read_meta",
    "read_snapshot",
    "ReducerRegistry",
    "restore",
    "restore_backup",
    "RunningServer",
    "scan",
    "scan_damage",
    "SchemaConflictError",
    "serve",
    "shop_models",
    "simulate",
    "Simulation",
    "SmartCompaction",
    "SnapshotThenTruncate",
    "start_server",
    "State",
    "state_at",
    "Store",
    "StoreLockedError",
    "TimeMachine",
    "ValidationError",
    "verify_chain",
    "viz",
    "what_if",
    "widgets",
    "__version__",
]

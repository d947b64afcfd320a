"""Time travel: the state at any moment, entity histories, diffs, recovery.

``state_at`` folds a history to one moment; ``TimeMachine`` answers many
moments of one history fast; ``history`` and ``diff`` tell what changed;
``restore`` and ``what_if`` write a new data directory through the engine.
The column names of every frame returned here are constants of
:mod:`lithair_lab.state.columns`.
"""

from __future__ import annotations

from .at import State, state_at
from .diff import diff, diff_states
from .history import history
from .machine import TimeMachine
from .restore import restore, what_if
from .columns import (
    ANOMALY_KINDS,
    ANOMALY_SCHEMA,
    CHANGED_AT,
    CHANGED_SEQ,
    DIFF_SCHEMA,
    HISTORY_META,
    KEY,
    STATE_META,
    VALUE,
    VERSION,
)
from .moment import Moment, moment

__all__ = [
    "ANOMALY_KINDS",
    "ANOMALY_SCHEMA",
    "CHANGED_AT",
    "CHANGED_SEQ",
    "DIFF_SCHEMA",
    "HISTORY_META",
    "KEY",
    "STATE_META",
    "VALUE",
    "VERSION",
    "Moment",
    "State",
    "TimeMachine",
    "diff",
    "diff_states",
    "history",
    "moment",
    "restore",
    "state_at",
    "what_if",
]

"""The compaction simulator: try policies on your own log before you trust one.

``simulate(source, policies)`` replays a log as if each policy had been in
production from the first event, and reports growth, cost and what each
policy gives up (integrity, audit completeness, time-travel horizon). The
policies themselves live in :mod:`lithair_lab.engine.policies`, shared with
the engine's ``Store.compact``.
"""

from __future__ import annotations

from .simulate import SUMMARY_SCHEMA, Simulation, simulate
from .startup import StartupModel, calibrate_startup
from .timeline import SERIES_SCHEMA

__all__ = ["SERIES_SCHEMA", "SUMMARY_SCHEMA", "Simulation", "StartupModel", "calibrate_startup", "simulate"]

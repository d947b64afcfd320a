"""ipywidgets for the workbench: time-travel explorer, compaction lab, store inspector.

Each shows a live widget in JupyterLab and carries a static HTML view for
frontends without widgets (``text/html`` in the same display).
"""

from __future__ import annotations

from .compaction_lab import CompactionLab
from .explorer import TimeTravelExplorer
from .inspector import StoreInspector
from .report import StoreReport, inspect_store

__all__ = ["CompactionLab", "StoreInspector", "StoreReport", "TimeTravelExplorer", "inspect_store"]

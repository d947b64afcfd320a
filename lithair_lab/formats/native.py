"""The optional native decoder of the read path (``_native.c``: JSON lines and binary frames), or its absence.

``pip install`` compiles it when a C compiler is there (``setup.py``,
``optional=True``); without it, or with the environment variable
``LITHAIR_LAB_PURE_PYTHON=1``, :mod:`.batch` decodes with Polars and Python
alone: same frames, same damage, slower.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from ..errors import PerformanceWarning

#: Set to ``1`` to force the pure-Python read path (tests compare both).
PURE_PYTHON_ENV = "LITHAIR_LAB_PURE_PYTHON"

try:
    from . import _native as _module
except ImportError as e:  # no compiler at install time, or a stale build
    _module = None
    _missing = str(e)

_warned = False


def load() -> ModuleType | None:
    """The compiled ``_native`` module, or None (forced off, or not built: warns once)."""
    global _warned
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    if _module is None and not _warned:
        _warned = True
        warnings.warn(
            f"the native read accelerator `lithair_lab.formats._native` is not built ({_missing}); reading"
            " JSON journals falls back to pure Python, several times slower\n\nInstall with a C compiler"
            " available (`pip install -e .`), or set `LITHAIR_LAB_PURE_PYTHON=1` to silence this.",
            PerformanceWarning,
            stacklevel=3,
        )
    return _module

"""Upstream environment variables (FORMATS.md section 7): ``LT_`` wins over ``RS_``."""

from __future__ import annotations

import os
from collections.abc import Mapping

TRUTHY = frozenset({"1", "true"})


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``LT_<name>``, else ``RS_<name>``, else None."""
    env = os.environ if environ is None else environ
    for prefix in ("LT_", "RS_"):
        v = env.get(prefix + name)
        if v is not None:
            return v
    return None


def env_flag(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Truthy is ``1`` or ``true`` (any case); anything else set is false."""
    v = env_value(name, environ)
    return default if v is None else v.strip().lower() in TRUTHY


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """An integer variable; a value that is not an integer is an error naming it."""
    v = env_value(name, environ)
    if v is None or v.strip() == "":
        return default
    try:
        return int(v.strip())
    except ValueError:
        raise ValueError(f"environment variable `LT_{name}`/`RS_{name}` must be an integer, got {v!r}") from None

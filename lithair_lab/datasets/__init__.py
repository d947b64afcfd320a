"""Workloads to generate and the small data directories bundled with the project.

>>> import lithair_lab as ll
>>> ll.datasets.path("shop")  # doctest: +SKIP
PosixPath('.../datasets/shop')
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NotFoundError
from .generate import generate
from .workloads import Event, mailbox, shop

ROOT = Path(__file__).resolve().parents[2] / "datasets"
"""Where the bundled directories live (``datasets/`` at the top of the repository)."""

BUNDLED: dict[str, str] = {
    "shop": "JSON store: a shop with rotated segments and a checkpoint",
    "mailbox-binary": "binary (bincode) store: a mailbox of read/unread toggles",
    "upstream-era-b": "upstream-style Era B directory: full Rust type paths, no hash chain",
    "damaged": "a shop store with a flipped byte inside a segment and a torn tail",
}
"""The bundled data directories and what each shows."""


def path(name: str) -> Path:
    """The path of a bundled data directory.

    Parameters
    ----------
    name
        One of :data:`BUNDLED`.

    Raises
    ------
    NotFoundError
        For an unknown name, or when the directory is missing from this checkout.
    """
    if name not in BUNDLED:
        known = ", ".join(f"`{n}`" for n in BUNDLED)
        msg = f"no bundled dataset `{name}`\n\nChoose one of: {known}."
        raise NotFoundError(msg)
    p = ROOT / name
    if not p.is_dir():
        msg = f"bundled dataset `{name}` is missing at `{p}`\n\nRebuild it with `python -m lithair_lab.datasets.bundled`."
        raise NotFoundError(msg)
    return p


__all__ = ["BUNDLED", "ROOT", "Event", "generate", "mailbox", "path", "shop"]

"""Data directories as Polars frames: events, damage, payload columns, snapshots, chain, follow.

Layering: ``frames`` reads through the shared codec in :mod:`lithair_lab.formats`
(:mod:`~lithair_lab.formats.batch` for many records at once) and never writes.
"""

from __future__ import annotations

from .chain import CHAIN_SCHEMA, verify_chain
from .damage import read_damage, scan_damage
from .follow import Follower, follow
from .payload import decode_objects, decode_payloads, payload_schema
from .scan import read, scan
from .snapshots import DEDUP_SCHEMA, SNAPSHOT_SCHEMA, read_dedup, read_meta, read_snapshot

__all__ = [
    "CHAIN_SCHEMA",
    "DEDUP_SCHEMA",
    "SNAPSHOT_SCHEMA",
    "Follower",
    "decode_objects",
    "decode_payloads",
    "follow",
    "payload_schema",
    "read",
    "read_damage",
    "read_dedup",
    "read_meta",
    "read_snapshot",
    "scan",
    "scan_damage",
    "verify_chain",
]

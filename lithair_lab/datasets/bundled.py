"""Build the small data directories bundled in ``datasets/`` (a few MB in all).

Run ``python -m lithair_lab.datasets.bundled`` to rebuild them; a test rebuilds
them in a temporary directory and checks that they match the committed bytes.
Everything is deterministic except ``meta.raftmeta``'s ``created_at`` (the real
creation time, by the engine's rule), which the test ignores.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..engine.lock import LOCK_NAME
from ..formats import layout
from .generate import generate
from .upstream import write_era_b
from .workloads import shop

SEED = 2026


def _drop_lock(directory: Path) -> None:
    # The closed store's advisory lock file names a pid and a host: not data, not reproducible.
    (directory / LOCK_NAME).unlink(missing_ok=True)


def build_shop(path: Path) -> Path:
    """A JSON store: 4,000 shop events in rotated segments, a checkpoint at event 3,000."""
    generate("shop", path, events=4000, seed=SEED, weeks=2, max_log_file_size=400_000, snapshot_every=3000, progress=False)
    _drop_lock(path)
    return path


def build_mailbox_binary(path: Path) -> Path:
    """A binary (bincode) store: 2,500 mailbox events."""
    generate("mailbox", path, events=2500, seed=SEED, weeks=1, binary=True, progress=False)
    _drop_lock(path)
    return path


def build_upstream_era_b(path: Path) -> Path:
    """An upstream-style Era B directory: 1,200 shop events, one surviving rotation."""
    return write_era_b(path, shop(1200, seed=SEED + 1, weeks=1), rotate_after=500)


FLIPPED_LINE = 120  # 1-based line of `events.raftlog.1` whose payload has one byte flipped
TORN_BYTES = 57  # bytes of a half-written record left at the end of `events.raftlog`


def build_damaged(path: Path) -> Path:
    """A shop store with realistic damage: one flipped byte inside a segment, and a torn tail.

    The store is written by the engine, then damaged as a disk and a crash would:
    line :data:`FLIPPED_LINE` of ``events.raftlog.1`` has one bit flipped in its
    payload (its CRC no longer matches), and the first :data:`TORN_BYTES` bytes of
    one more record are left after the last whole record of ``events.raftlog``,
    as a crash in the middle of an append leaves them.
    """
    generate("shop", path, events=800, seed=SEED + 2, weeks=1, max_log_file_size=150_000, progress=False)
    _drop_lock(path)
    segment = path / f"{layout.ACTIVE}.1"
    data = bytearray(segment.read_bytes())
    start = sum(len(line) for line in data.splitlines(keepends=True)[: FLIPPED_LINE - 1])
    at = data.index(b'"payload"', start) + 20  # a byte inside the payload string
    data[at] ^= 0x04
    segment.write_bytes(bytes(data))
    extra = path / "_next_record.tmp"
    generate("shop", extra, events=801, seed=SEED + 2, weeks=1, max_log_file_size=150_000, progress=False)
    last = (extra / layout.ACTIVE).read_bytes().splitlines(keepends=True)[-1]
    shutil.rmtree(extra)
    with (path / layout.ACTIVE).open("ab") as f:
        f.write(last[:TORN_BYTES])
    return path


BUILDERS = {
    "shop": build_shop,
    "mailbox-binary": build_mailbox_binary,
    "upstream-era-b": build_upstream_era_b,
    "damaged": build_damaged,
}


def build_all(root: Path) -> dict[str, Path]:
    """Build every bundled directory under ``root`` (each must not exist yet)."""
    return {name: build(root / name) for name, build in BUILDERS.items()}


if __name__ == "__main__":  # python -m lithair_lab.datasets.bundled [ROOT]
    from . import ROOT

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for name in BUILDERS:
        if (target / name).exists():
            shutil.rmtree(target / name)  # the committed copy is rebuilt from its recipe
    for name, p in build_all(target).items():
        size = sum(f.stat().st_size for f in p.iterdir())
        print(f"{name}: {size:,} bytes in {len(list(p.iterdir()))} files")

"""The in-memory idempotence index: 128-bit digests, about 17 bytes per id.

Keys are hashed with BLAKE2b to 16 bytes (a false duplicate would lose an
event, so the digest is wide enough that a collision among 10^10 ids has
probability below 10^-18). New keys go to a small Python set; when it grows
past ``merge_at`` it is merged into one sorted numpy ``S16`` array, looked up by
binary search. The durable form is ``dedup.raftids`` (one raw id per line),
written by the journal writer; this module only holds the set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

DIGEST_SIZE = 16
_DTYPE = np.dtype(f"S{DIGEST_SIZE}")


def digest(key: str) -> bytes:
    """The 16-byte digest of an idempotence key."""
    return hashlib.blake2b(key.encode(), digest_size=DIGEST_SIZE).digest()


def digest_bytes(key: bytes) -> bytes:
    """:func:`digest` of a key already encoded as UTF-8 (as read from ``dedup.raftids``)."""
    return hashlib.blake2b(key, digest_size=DIGEST_SIZE).digest()


class DedupIndex:
    """A set of idempotence keys with flat memory (sorted digests + a recent set).

    Not thread-safe by itself: the store calls it under its write lock.
    """

    __slots__ = ("_merge_at", "_recent", "_sorted")

    def __init__(self, keys: Iterable[str] = (), *, merge_at: int = 65_536) -> None:
        self._sorted = np.empty(0, dtype=_DTYPE)
        self._recent: set[bytes] = set()
        self._merge_at = merge_at
        self.update(keys)

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._has(digest(key))

    def _has(self, d: bytes) -> bool:
        if d in self._recent:
            return True
        arr = self._sorted
        if not len(arr):
            return False
        i = int(arr.searchsorted(np.bytes_(d)))
        # numpy strips trailing NULs from S16 items; stripping is injective on 16-byte values
        return i < len(arr) and arr[i] == d.rstrip(b"\x00")

    def add(self, key: str) -> bool:
        """Add ``key``; False (and nothing changes) when it was already present."""
        d = digest(key)
        if self._has(d):
            return False
        self._recent.add(d)
        if len(self._recent) >= max(self._merge_at, len(self._sorted) >> 3):
            self._merge()
        return True

    def discard(self, key: str) -> None:
        """Forget a key added by :meth:`add` whose write then failed."""
        d = digest(key)
        if d in self._recent:
            self._recent.discard(d)
            return
        arr = self._sorted
        i = int(arr.searchsorted(np.bytes_(d))) if len(arr) else 0
        if i < len(arr) and arr[i] == d.rstrip(b"\x00"):
            self._sorted = np.delete(arr, i)

    def update(self, keys: Iterable[str | bytes]) -> None:
        """Add many keys at once (str, or their UTF-8 bytes); repeats are fine.

        Opening an Era B log repeats ids, and that is not an error: the set just
        holds each once.
        """
        batch = DigestBatch()
        for k in keys:
            batch.add(k if isinstance(k, bytes) else k.encode())
        self.merge(batch)

    def merge(self, batch: DigestBatch) -> None:
        """Add every digest gathered in ``batch`` (one sort for the lot)."""
        parts = batch.arrays()
        if parts:
            self._sorted = np.unique(np.concatenate([self._sorted, *parts]))

    def _merge(self) -> None:
        recent = np.fromiter(self._recent, dtype=_DTYPE, count=len(self._recent))
        self._sorted = np.unique(np.concatenate((self._sorted, recent)))
        self._recent.clear()

    def nbytes(self) -> int:
        """Approximate memory held: the sorted array plus the recent set's digests and slots."""
        recent = len(self._recent) * (DIGEST_SIZE + 33 + 16)  # bytes object header + set slot
        return int(self._sorted.nbytes) + recent


class DigestBatch:
    """Digests of many keys gathered for one merge: 16 bytes per key, in numpy chunks.

    Used while opening a store, where ids stream in from ``dedup.raftids`` and
    the journal; memory stays at the digests' size however many ids there are.
    """

    __slots__ = ("_parts", "_pending")
    CHUNK = 1 << 18

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._pending: list[bytes] = []

    def add(self, key: bytes) -> None:
        """Gather the digest of a key given as UTF-8 bytes."""
        self._pending.append(digest_bytes(key))
        if len(self._pending) >= self.CHUNK:
            self._parts.append(np.array(self._pending, dtype=_DTYPE))
            self._pending.clear()

    def arrays(self) -> list[np.ndarray]:
        """The gathered digests as arrays (unsorted, possibly repeating)."""
        if self._pending:
            self._parts.append(np.array(self._pending, dtype=_DTYPE))
            self._pending.clear()
        return self._parts

"""The in-memory idempotence index: 128-bit digests, 21 to 43 bytes per id.

Keys are hashed with BLAKE2b to 16 bytes (a false duplicate would lose an
event, so the digest is wide enough that a collision among 10^10 ids has
probability below 10^-18).

With the native encoder built, the digests live in its open-addressing table
(:class:`NativeDedupIndex`: one C call per lookup, 16 bytes per slot, at
most 3/4 full). Without it (:class:`DedupIndex`'s own pure-Python
form), new keys go to a small Python set; when it grows past ``merge_at`` it
is merged into one sorted numpy ``S16`` array, looked up by binary search,
with a Bloom filter of the sorted digests (16 bits per id, two probes, about
1.4% false positives) in front so most lookups of new keys skip the search.
Both hold the same set and write the same cache. The durable form is
``dedup.raftids`` (one raw id per line), written by the journal writer; this
module only holds the set.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..formats.envelope import _encoder

DIGEST_SIZE = 16
_DTYPE = np.dtype(f"S{DIGEST_SIZE}")


_blake2b = hashlib.blake2b


def digest(key: str) -> bytes:
    """The 16-byte digest of an idempotence key."""
    return _blake2b(key.encode(), digest_size=DIGEST_SIZE).digest()


def digest_bytes(key: bytes) -> bytes:
    """:func:`digest` of a key already encoded as UTF-8 (as read from ``dedup.raftids``)."""
    return _blake2b(key, digest_size=DIGEST_SIZE).digest()


class DedupIndex:
    """A set of idempotence keys with flat memory (sorted digests + a recent set).

    ``DedupIndex()`` gives a :class:`NativeDedupIndex` when the native encoder
    is built (same methods, same set). Not thread-safe by itself: the store
    calls it under its write lock.
    """

    __slots__ = ("_bloom", "_mask", "_merge_at", "_recent", "_sorted")

    def __new__(cls, keys: Iterable[str] = (), *, merge_at: int = 65_536) -> DedupIndex:  # noqa: ARG003
        if cls is DedupIndex and _encoder is not None:
            cls = NativeDedupIndex
        return object.__new__(cls)

    def __init__(self, keys: Iterable[str] = (), *, merge_at: int = 65_536) -> None:
        self._sorted = np.empty(0, dtype=_DTYPE)
        self._bloom = bytearray(1)
        self._mask = 7
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
        x = int.from_bytes(d[:8], "little")
        p, q = x & self._mask, (x >> 32) & self._mask
        bloom = self._bloom
        if not (bloom[p >> 3] >> (p & 7) & bloom[q >> 3] >> (q & 7) & 1):
            return False  # certainly absent from the sorted digests
        i = int(arr.searchsorted(np.bytes_(d)))
        # numpy strips trailing NULs from S16 items; stripping is injective on 16-byte values
        return i < len(arr) and arr[i] == d.rstrip(b"\x00")

    def add(self, key: str) -> bool:
        """Add ``key``; False (and nothing changes) when it was already present."""
        return self.add_digest(digest(key))

    def add_digest(self, d: bytes) -> bool:
        """:meth:`add` of a key's :func:`digest`."""
        if self._has(d):
            return False
        self._recent.add(d)
        if len(self._recent) >= max(self._merge_at, len(self._sorted) >> 3):
            self._merge()
        return True

    def add_all(self, keys: list[str]) -> str | None:
        """Add every key, or none: returns the first key already present (or repeated
        within ``keys``) and changes nothing, else None. One digest per key."""
        digests = [digest(k) for k in keys]
        seen: set[bytes] = set()
        for k, d in zip(keys, digests, strict=True):
            if d in seen or self._has(d):
                return k
            seen.add(d)
        self._recent |= seen
        if len(self._recent) >= max(self._merge_at, len(self._sorted) >> 3):
            self._merge()
        return None

    def discard(self, key: str) -> None:
        """Forget a key added by :meth:`add` whose write then failed."""
        d = digest(key)
        if d in self._recent:
            self._recent.discard(d)
            return
        arr = self._sorted
        i = int(arr.searchsorted(np.bytes_(d))) if len(arr) else 0
        if i < len(arr) and arr[i] == d.rstrip(b"\x00"):
            self._set_sorted(np.delete(arr, i))

    def update(self, keys: Iterable[str | bytes]) -> None:
        """Add many keys at once (str, or their UTF-8 bytes); repeats are fine.

        Opening an Era B log repeats ids, and that is not an error: the set just
        holds each once.
        """
        batch = DigestBatch()
        for k in keys:
            batch.add(k if isinstance(k, bytes) else k.encode())
        self.merge(batch)

    def load_sorted(self, digests: np.ndarray) -> None:
        """Start from already sorted, unique digests (a valid cache)."""
        self._set_sorted(digests)
        self._recent.clear()

    def merge(self, batch: DigestBatch) -> None:
        """Add every digest gathered in ``batch`` (one sort for the lot)."""
        parts = batch.arrays()
        if parts:
            self._set_sorted(_sorted_unique(np.concatenate([self._sorted, *parts])))

    def _merge(self) -> None:
        # The recent digests are absent from the sorted ones (add checked): sort the few, insert them.
        recent = _sorted_unique(np.fromiter(self._recent, dtype=_DTYPE, count=len(self._recent)))
        self._set_sorted(np.insert(self._sorted, self._sorted.searchsorted(recent), recent))
        self._recent.clear()

    def _set_sorted(self, arr: np.ndarray) -> None:
        """Make ``arr`` the sorted digests and rebuild their Bloom filter (same probes as :meth:`_has`)."""
        self._sorted = arr
        nbits = 8
        while nbits < 16 * len(arr):
            nbits <<= 1
        bits = np.zeros(nbits >> 3, dtype=np.uint8)
        if len(arr):
            x = np.frombuffer(arr.tobytes(), dtype="<u8")[::2]  # each digest's first 8 bytes, little-endian
            for p in (x & np.uint64(nbits - 1), (x >> np.uint64(32)) & np.uint64(nbits - 1)):
                np.bitwise_or.at(bits, p >> np.uint64(3), np.left_shift(1, p & np.uint64(7)).astype(np.uint8))
        self._bloom = bytearray(bits.tobytes())
        self._mask = nbits - 1

    def sorted_digests(self) -> np.ndarray:
        """Every digest, sorted (the cache's form)."""
        if self._recent:
            self._merge()
        return self._sorted

    def nbytes(self) -> int:
        """Approximate memory held: the sorted array, its Bloom filter, the recent set's digests and slots."""
        recent = len(self._recent) * (DIGEST_SIZE + 33 + 16)  # bytes object header + set slot
        return int(self._sorted.nbytes) + len(self._bloom) + recent


class NativeDedupIndex(DedupIndex):
    """:class:`DedupIndex` in the native encoder's digest table (one C call per lookup)."""

    __slots__ = ("_set", "add_digest")

    def __init__(self, keys: Iterable[str] = (), *, merge_at: int = 65_536) -> None:  # noqa: ARG002
        self._set = _encoder.DigestSet()
        self.add_digest = self._set.add_digest  # type: ignore[method-assign]  # no Python frame
        self.update(keys)

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._set.has_digest(digest(key))

    def add(self, key: str) -> bool:
        return self.add_digest(_blake2b(key.encode(), digest_size=DIGEST_SIZE).digest())

    def _has(self, d: bytes) -> bool:
        return self._set.has_digest(d)

    def add_all(self, keys: list[str]) -> str | None:
        digests = [digest(k) for k in keys]
        seen: set[bytes] = set()
        for k, d in zip(keys, digests, strict=True):
            if d in seen or self._set.has_digest(d):
                return k
            seen.add(d)
        for d in digests:
            self._set.add_digest(d)
        return None

    def discard(self, key: str) -> None:
        self._set.discard_digest(digest(key))

    def load_sorted(self, digests: np.ndarray) -> None:
        self._set = _encoder.DigestSet()
        self.add_digest = self._set.add_digest  # type: ignore[method-assign]
        self._set.update(np.ascontiguousarray(digests))

    def merge(self, batch: DigestBatch) -> None:
        for part in batch.arrays():
            self._set.update(np.ascontiguousarray(part))

    def sorted_digests(self) -> np.ndarray:
        return _sorted_unique(np.frombuffer(self._set.digests(), dtype=_DTYPE))

    def nbytes(self) -> int:
        return int(self._set.nbytes())


def _sorted_unique(arr: np.ndarray) -> np.ndarray:
    """Sorted unique ``S16`` digests (what ``np.unique`` gives, ten times faster: it sorts
    two big-endian integers per digest instead of comparing byte strings)."""
    if len(arr) < 2:
        return arr
    halves = np.ascontiguousarray(arr).view(">u8").reshape(-1, 2)
    order = np.lexsort((halves[:, 1], halves[:, 0]))
    arr, halves = arr[order], halves[order]
    keep = np.empty(len(arr), dtype=bool)
    keep[0] = True
    np.not_equal(halves[1:, 0], halves[:-1, 0], out=keep[1:])
    keep[1:] |= halves[1:, 1] != halves[:-1, 1]
    return arr[keep]


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


# ----------------------------------------------------------------------------- cache
# A derived, disposable copy of the sorted digests, so that opening a store with
# millions of ids does not hash every line of `dedup.raftids` again. It is
# trusted only if both its digests and the prefix of `dedup.raftids` it covers
# still hash to what it recorded; otherwise it is ignored (never an error).

CACHE_NAME = ".lithair_lab.dedup"
_MAGIC = b"LLDEDUP1"
_HEADER = struct.Struct("<8sQQ32s32s")  # magic, bytes of dedup.raftids covered, count, sha256 x2


def save_cache(index: DedupIndex, ids_path: Path) -> None:
    """Write the index's digests beside ``ids_path`` (call after a barrier: the file holds every id)."""
    arr = index.sorted_digests()
    covered, prefix = _prefix_sha256(ids_path, None)
    header = _HEADER.pack(_MAGIC, covered, len(arr), prefix, hashlib.sha256(arr.tobytes()).digest())
    target = ids_path.with_name(CACHE_NAME)
    tmp = target.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        arr.tofile(f)
    os.replace(tmp, target)


def load_cache(ids_path: Path) -> tuple[np.ndarray, int] | None:
    """The cached sorted digests and how many bytes of ``ids_path`` they cover, if still valid."""
    target = ids_path.with_name(CACHE_NAME)
    try:
        with open(target, "rb") as f:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return None
            magic, covered, count, prefix, digests = _HEADER.unpack(head)
            if magic != _MAGIC:
                return None
            arr = np.fromfile(f, dtype=_DTYPE, count=count)
    except OSError:
        return None
    if len(arr) != count or hashlib.sha256(arr.tobytes()).digest() != digests:
        return None
    try:
        if _prefix_sha256(ids_path, covered) != (covered, prefix):
            return None
    except OSError:
        return None
    return arr, covered


def _prefix_sha256(path: Path, size: int | None) -> tuple[int, bytes]:
    """(bytes hashed, sha256) of the first ``size`` bytes of ``path`` (all of it when None)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while size is None or n < size:
            chunk = f.read(1 << 20 if size is None else min(1 << 20, size - n))
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return n, h.digest()

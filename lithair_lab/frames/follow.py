"""``follow``: an incremental reader for live notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from lithair_lab.formats import batch, layout
from lithair_lab.formats.schema import DAMAGE_SCHEMA, EVENT_COLUMNS, EVENT_SCHEMA

from .stores import Store, find_stores, plan
from .walk import OnDamage, check_on_damage, raise_first


class Follower:
    """Returns, at each :meth:`poll`, only the records appended since the previous call.

    Positions are kept per file identity (device and inode), so a journal
    renamed by rotation (``events.raftlog`` -> ``events.raftlog.N``) is read on
    from where it was left, and the new active file from its start. A record
    still being written (no newline yet, or a frame shorter than its length)
    is never returned: it waits for the next call.

    Use :func:`follow` to make one.
    """

    def __init__(self, stores: list[Store], on_damage: OnDamage) -> None:
        self._stores = stores
        self._on_damage = on_damage
        self._positions: dict[tuple[int, int], tuple[int, int]] = {}  # (dev, ino) -> (offset, line)
        self._seq: dict[str, int] = {}
        self._plans: dict[str, tuple[object, list[Path]]] = {}
        self.damage = pl.DataFrame(schema=DAMAGE_SCHEMA)
        """Damage met so far (with ``on_damage="report"``)."""

    def poll(self) -> pl.DataFrame:
        """The records appended since the last call (all records at the first call).

        Returns
        -------
        polars.DataFrame
            Columns of ``EVENT_SCHEMA``; ``seq`` continues across calls.
        """
        frames = []
        for store in self._stores:
            for journal in self._journals(store):
                frames.extend(self._read(store, journal))
        return pl.concat(frames) if frames else pl.DataFrame(schema=EVENT_SCHEMA)

    __call__ = poll

    def _journals(self, store: Store) -> list[Path]:
        """The store's journals; re-planned (checkpoint re-verified) only when its files change."""
        d = store.directory
        names = tuple(sorted(p.name for p in d.iterdir() if layout.LITHAIR_FILE.fullmatch(p.name)))
        snap = d / layout.SNAPSHOT
        key = (names, snap.stat().st_mtime_ns if snap.exists() else 0)
        cached = self._plans.get(store.name)
        if cached is None or cached[0] != key:
            cached = (key, plan(store, strict=self._on_damage == "raise").journals)
            self._plans[store.name] = cached
        return cached[1]

    def _read(self, store: Store, journal: Path) -> list[pl.DataFrame]:
        try:
            st = os.stat(journal)
        except FileNotFoundError:
            return []
        key = (st.st_dev, st.st_ino)
        offset, line = self._positions.get(key, (0, 1))
        if st.st_size <= offset:
            return []
        out = []
        rel = journal.relative_to(store.directory).as_posix()
        for b in batch.read_journal(journal, name=rel, start=offset, line=line, final=False):
            damage = b.damage.with_columns(pl.lit(store.name, pl.String).alias("store")).select(list(DAMAGE_SCHEMA))
            if damage.height:
                if self._on_damage == "raise":
                    raise_first(damage, store.directory)
                self.damage = pl.concat([self.damage, damage])
            seq = self._seq.get(store.name, 0)
            n = b.records.height
            out.append(
                b.records.with_columns(
                    (pl.int_range(n, dtype=pl.UInt64) + seq).alias("seq"),
                    pl.lit(store.name, pl.String).alias("store"),
                ).select(EVENT_COLUMNS)
            )
            self._seq[store.name] = seq + n
            self._positions[key] = (b.end_offset, b.end_line)
        return out


def follow(source: str | Path, *, on_damage: OnDamage = "raise") -> Follower:
    """Follow a live data directory: each ``poll()`` returns only the new records.

    Parameters
    ----------
    source
        A data directory or a directory of stores.
    on_damage
        As for :func:`scan`; with ``"report"`` the damage met so far is in
        :attr:`Follower.damage`.

    Returns
    -------
    Follower
        Call ``poll()`` (or the follower itself) for the next records.

    Examples
    --------
    >>> f = ll.follow("data/products")  # doctest: +SKIP
    >>> new = f.poll()  # everything so far  # doctest: +SKIP
    >>> new = f.poll()  # only what was appended since  # doctest: +SKIP
    """
    check_on_damage(on_damage)
    return Follower(find_stores(source), on_damage)

"""What a data directory holds: files, segments, sizes, records, types, time range, damage, chain.

:func:`inspect_store` is the one library call behind ``lithair-lab inspect``,
``lithair-lab verify`` and the store inspector widget. It imports no widget
library, so the command line stays light.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..engine.dedup import CACHE_NAME
from ..engine.lock import LOCK_NAME
from ..formats import layout

ROLES: tuple[tuple[str, str], ...] = (
    ("journal", "the active journal"),
    ("segment", "a rotated segment"),
    ("native journal", "an Era C journal generation"),
    ("snapshot", "snapshot or checkpoint manifest"),
    ("meta", "write-once metadata"),
    ("dedup", "idempotence index"),
    ("dedup cache", "digests of the idempotence index, saved with each checkpoint"),
    ("index", "derived offset index"),
    ("lock", "the writer's advisory lock"),
    ("leftover", "leftover of an interrupted checkpoint"),
    ("schema", "model schema"),
    ("other", "not a Lithair file"),
)


def role(name: str) -> str:
    """The role of a file in a data directory, from its name (FORMATS.md section 1)."""
    if name == layout.ACTIVE:
        return "journal"
    if layout.SEGMENT.fullmatch(name):
        return "segment"
    if layout.NATIVE_JOURNAL.fullmatch(name):
        return "native journal"
    if name in (layout.SNAPSHOT, "snapshot.raftsnap"):
        return "snapshot"
    return {
        layout.META: "meta",
        layout.DEDUP: "dedup",
        layout.INDEX: "index",
        LOCK_NAME: "lock",
        CACHE_NAME: "dedup cache",
    }.get(name, "leftover" if name.startswith("native-snapshot-") else "other")


FILES_SCHEMA: dict[str, pl.DataType] = {
    "store": pl.String(),
    "file": pl.String(),
    "role": pl.String(),
    "bytes": pl.Int64(),
    "records": pl.Int64(),  # records read from it (null: not part of the history)
    "in_history": pl.Boolean(),
}


@dataclass(frozen=True, repr=False)
class StoreReport:
    """The summary of a data directory (see :func:`inspect_store`).

    Attributes
    ----------
    source
        The path inspected.
    files
        One row per file (:data:`FILES_SCHEMA`), journals in replay order first.
    types
        Records per event type (``type``: the short type; raw records as ``(raw record)``).
    records
        Records in the history (damaged ones excluded).
    first, last
        Time range of the records (UTC), None when there are none.
    damage
        Damaged records and directory problems (``DAMAGE_SCHEMA``).
    chain
        Hash-chain problems (``ll.verify_chain``); empty when the chain holds.
    chained
        Records carrying a hash (a log written without the chain has none to check).
    """

    source: Path
    files: pl.DataFrame
    types: pl.DataFrame
    records: int
    first: dt.datetime | None
    last: dt.datetime | None
    damage: pl.DataFrame
    chain: pl.DataFrame
    chained: int

    @property
    def ok(self) -> bool:
        """True when no record is damaged and the hash chain holds."""
        return self.damage.is_empty() and self.chain.is_empty()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "source": str(self.source),
            "ok": self.ok,
            "records": self.records,
            "first": self.first,
            "last": self.last,
            "bytes": int(self.files["bytes"].sum()),
            "files": self.files.to_dicts(),
            "types": self.types.to_dicts(),
            "damage": self.damage.to_dicts(),
            "chain": {"chained_records": self.chained, "problems": self.chain.to_dicts()},
        }

    def summary_lines(self) -> list[str]:
        """A few lines for people: what, how much, since when, and whether it is sound."""
        journals = self.files.filter(pl.col("in_history"))
        when = f"{self.first:%Y-%m-%d %H:%M:%S} → {self.last:%Y-%m-%d %H:%M:%S} UTC" if self.first and self.last else "no records"
        lines = [
            f"{self.source}: {self.records:,} records in {len(journals)} journal file(s), "
            f"{int(self.files['bytes'].sum()):,} bytes in {len(self.files)} file(s)",
            f"time range: {when}",
            f"event types: {len(self.types)}",
        ]
        if self.damage.is_empty():
            lines.append("damage: none")
        else:
            lines.append(f"damage: {len(self.damage)} problem(s)")
            for r in self.damage.head(10).iter_rows(named=True):
                where = f"line {r['line']}, byte offset {r['offset']}" if r["line"] is not None else f"byte offset {r['offset']}"
                lines.append(f"  {r['store']}/{r['file']}: {where}: {r['kind']} ({r['detail']})")
        if self.chained == 0:
            lines.append("hash chain: none (no record carries a hash)")
        elif self.chain.is_empty():
            lines.append(f"hash chain: intact over {self.chained:,} records")
        else:
            lines.append(f"hash chain: {len(self.chain)} problem(s)")
        return lines

    def __repr__(self) -> str:
        return "\n".join(self.summary_lines())

    def _repr_html_(self) -> str:
        from .base import escape, frame_html

        items = "".join(f"<li>{escape(line)}</li>" for line in self.summary_lines())
        parts = [f'<div class="ll-store-report"><ul>{items}</ul>', "<b>Files</b>", frame_html(self.files, css_class="ll-files", rows=50)]
        if not self.damage.is_empty():
            parts += ["<b>Damage</b>", frame_html(self.damage, css_class="ll-damage", rows=20)]
        if not self.chain.is_empty():
            parts += ["<b>Hash chain</b>", frame_html(self.chain, css_class="ll-chain", rows=20)]
        return "".join(parts) + "</div>"


def inspect_store(source: str | Path) -> StoreReport:
    """Summarize a data directory: files and sizes, records, types, time range, damage and chain.

    Damaged records never stop the inspection: they are listed in ``damage``
    (the records around them are still counted).

    Parameters
    ----------
    source
        A data directory, or a directory of several stores.

    Returns
    -------
    StoreReport

    Examples
    --------
    >>> print("\\n".join(ll.inspect_store(ll.datasets.path("damaged")).summary_lines()))  # doctest: +SKIP
    """
    from ..frames import read_damage, scan, verify_chain
    from ..frames.stores import find_stores, plan

    source = Path(source)
    events = scan(source, on_damage="report").collect()
    damage = read_damage(source)
    chain = verify_chain(events)
    counts = events.group_by("store", "file").agg(pl.len().cast(pl.Int64).alias("records"))
    rows = []
    for store in find_stores(source):
        history = [p.name for p in plan(store, strict=False).journals]
        on_disk = sorted(p for p in store.directory.iterdir() if p.is_file())
        ordered = [p for name in history for p in on_disk if p.name == name]
        ordered += [p for p in on_disk if p.name not in history]
        for p in ordered:
            rows.append(
                {"store": store.name, "file": p.name, "role": role(p.name), "bytes": p.stat().st_size,
                 "in_history": p.name in history}
            )  # fmt: skip
        schema_dir = store.directory / layout.SCHEMA_DIR
        if schema_dir.is_dir():
            for p in sorted(schema_dir.glob("*.json")):
                rows.append({"store": store.name, "file": f"{layout.SCHEMA_DIR}/{p.name}", "role": "schema",
                             "bytes": p.stat().st_size, "in_history": False})  # fmt: skip
    files = (
        pl.DataFrame(rows, schema={k: v for k, v in FILES_SCHEMA.items() if k != "records"})
        .join(counts, on=["store", "file"], how="left", maintain_order="left")
        .with_columns(pl.when(pl.col("in_history")).then(pl.col("records").fill_null(0)))
        .select(list(FILES_SCHEMA))
    )
    types = (
        events.group_by(pl.col("short_type").fill_null("(raw record)").alias("type"))
        .agg(pl.len().cast(pl.Int64).alias("events"))
        .sort(["events", "type"], descending=[True, False])
    )
    ts = events["timestamp"].drop_nulls()
    return StoreReport(
        source=source,
        files=files,
        types=types,
        records=len(events),
        first=ts.min() if len(ts) else None,  # type: ignore[arg-type]
        last=ts.max() if len(ts) else None,  # type: ignore[arg-type]
        damage=damage,
        chain=chain,
        chained=int(events["event_hash"].is_not_null().sum()),
    )

"""``state.raftsnap``, ``meta.raftmeta`` and ``dedup.raftids`` as frames and dicts."""

from __future__ import annotations

import datetime as dt
import warnings
import zlib
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lithair_lab.errors import CheckpointError, FormatError, LithairLabWarning
from lithair_lab.formats import checkpoint, jsonlines, layout
from lithair_lab.formats.schema import TIMESTAMP

from .stores import Store, find_stores, plan

#: One row per entity held by a snapshot.
SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "store": pl.String(),
    "file": pl.String(),  # state.raftsnap, or snapshot.raftsnap in multi-file mode
    "kind": pl.String(),  # "checkpoint" | "legacy"
    "model": pl.String(),  # the model, when the snapshot's shape names one
    "key": pl.String(),  # entity key
    "version": pl.Int64(),  # legacy engine snapshots: the entry's version
    "last_updated": TIMESTAMP,  # legacy engine snapshots: Unix seconds as UTC datetime
    "data": pl.String(),  # the entity as compact JSON (decode with `decode_payloads(..., column="data")`)
    "covered_events": pl.Int64(),  # records of the history the snapshot stands for (0 for legacy)
}
DEDUP_SCHEMA: dict[str, pl.DataType] = {"store": pl.String(), "line": pl.UInt64(), "event_id": pl.String()}
MULTI_FILE_SNAPSHOT = "snapshot.raftsnap"


def read_snapshot(source: str | Path) -> pl.DataFrame:
    """The state held in each store's snapshot, one row per entity.

    Reads an Era C checkpoint (verified first: a manifest that must not be
    trusted raises :class:`~lithair_lab.errors.CheckpointError`), a legacy raw
    snapshot (``{"<pk>": obj}`` or ``{"<key>": {"version", "last_updated",
    "data"}}``), lithair_lab's own checkpoint state
    (``{"format": "lithair_lab.state/1", "models": {M: {key: obj}}}``), and the
    ``<crc32 hex>:<pretty JSON>`` snapshots of multi-file mode.

    Returns
    -------
    polars.DataFrame
        Columns of :data:`SNAPSHOT_SCHEMA`; stores without a snapshot add no rows.
    """
    rows: list[dict[str, Any]] = []
    for store in find_stores(source):
        rows.extend(_snapshot_rows(store))
    return pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=SNAPSHOT_SCHEMA)


def _snapshot_rows(store: Store) -> list[dict[str, Any]]:
    d = store.directory
    if (d / layout.SNAPSHOT).is_file():
        data = (d / layout.SNAPSHOT).read_bytes()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise FormatError(d / layout.SNAPSHOT, f"is not JSON ({e})") from e
        if checkpoint.is_manifest(obj):
            p = plan(store, strict=True)  # verifies the manifest against its journal
            cp = p.checkpoint
            if cp is None:  # pragma: no cover - plan(strict=True) raises instead
                raise CheckpointError(d / layout.SNAPSHOT, "checkpoint could not be verified")
            return _entities(store.name, layout.SNAPSHOT, "checkpoint", orjson.loads(cp.state), cp.covered_events)
        return _entities(store.name, layout.SNAPSHOT, "legacy", obj, 0)
    if (d / MULTI_FILE_SNAPSHOT).is_file():
        path = d / MULTI_FILE_SNAPSHOT
        raw = path.read_bytes()
        if not jsonlines.has_crc_prefix(raw):
            raise FormatError(path, "does not start with `<crc32 hex>:`; expected a multi-file mode snapshot")
        body = raw[9:]
        if int(raw[:8], 16) != zlib.crc32(body) & 0xFFFFFFFF:
            raise FormatError(path, f"CRC {raw[:8].decode()} does not match its content: the snapshot is damaged")
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise FormatError(path, f"is not JSON after its CRC ({e})") from e
        return _entities(store.name, MULTI_FILE_SNAPSHOT, "legacy", obj, 0)
    return []


def _entities(store: str, file: str, kind: str, state: Any, covered: int) -> list[dict[str, Any]]:
    base = {"store": store, "file": file, "kind": kind, "covered_events": covered}
    if isinstance(state, dict) and isinstance(state.get("models"), dict) and "format" in state:
        return [
            {**base, "model": model, "key": key, "data": orjson.dumps(obj).decode()}
            for model, entities in state["models"].items()
            if isinstance(entities, dict)
            for key, obj in entities.items()
        ]
    if not isinstance(state, dict):
        return [{**base, "data": orjson.dumps(state).decode()}]
    rows = []
    for key, value in state.items():
        row = {**base, "key": key, "data": orjson.dumps(value).decode()}
        if isinstance(value, dict) and {"version", "last_updated", "data"} <= value.keys():
            row["version"] = value["version"] if isinstance(value["version"], int) else None
            ts = value["last_updated"]
            ok = isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts < 253402300800
            row["last_updated"] = dt.datetime.fromtimestamp(ts, dt.UTC) if ok else None
            row["data"] = orjson.dumps(value["data"]).decode()
        rows.append(row)
    return rows


def read_meta(source: str | Path) -> dict[str, Any]:
    """``meta.raftmeta`` of a data directory as a dict.

    For a directory of several stores: ``{store: meta}`` for the stores that
    have one. Any JSON object is accepted (upstream wrote several variants).

    Raises
    ------
    FormatError
        When the single store has no ``meta.raftmeta`` or it is not a JSON object.
    """
    stores = find_stores(source)
    metas = {s.name: _meta(s.directory / layout.META) for s in stores if (s.directory / layout.META).is_file()}
    if len(stores) == 1:
        if not metas:
            raise FormatError(stores[0].directory, f"has no `{layout.META}`")
        return next(iter(metas.values()))
    return metas


def _meta(path: Path) -> dict[str, Any]:
    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise FormatError(path, f"is not JSON ({e})") from e
    if not isinstance(obj, dict):
        raise FormatError(path, "is JSON but not an object")
    return obj


def read_dedup(source: str | Path) -> pl.DataFrame:
    """``dedup.raftids`` (the durable idempotence index) as a frame, one row per id.

    An unterminated last line (a write cut by a crash) is left out with a
    :class:`~lithair_lab.errors.LithairLabWarning`, since the id it starts may
    be incomplete.

    Returns
    -------
    polars.DataFrame
        ``store``, ``line`` (1-based) and ``event_id``.
    """
    frames = []
    for store in find_stores(source):
        path = store.directory / layout.DEDUP
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            warnings.warn(
                f"{path}: the last {len(data) - cut} bytes have no newline (a torn write); that id is left out",
                LithairLabWarning,
                stacklevel=2,
            )
            data = data[:cut]
        try:
            ids = pl.Series("event_id", data.decode().split("\n")[:-1], dtype=pl.String)
        except UnicodeDecodeError as e:
            raise FormatError(path, f"is not UTF-8 at byte {e.start}") from e
        frames.append(
            pl.DataFrame({"event_id": ids}).select(
                pl.lit(store.name, pl.String).alias("store"),
                (pl.int_range(pl.len(), dtype=pl.UInt64) + 1).alias("line"),
                "event_id",
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=DEDUP_SCHEMA)

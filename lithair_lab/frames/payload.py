"""Payload strings into typed columns: ``decode_payloads`` and ``payload_schema``.

The schema comes from every selected row (never a sample: a field that first
appears late is never dropped), from the caller, or from the model's
``.schema/<Model>.json``. Nested objects stay structs. A field whose JSON type
differs across rows (a string here, a number there) raises
:class:`~lithair_lab.errors.SchemaConflictError`; integers mixed with floats
widen to ``Float64``, which loses nothing a reader of JSON would keep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lithair_lab.errors import FormatError, SchemaConflictError
from lithair_lab.formats import layout

from .scan import Source, scan

PayloadSchema = Mapping[str, pl.DataType | type[pl.DataType]] | pl.Schema
COLLISION_PREFIX = "payload."
_HINT = "pass `schema={...}` to choose the type (values that do not fit become an error, not a guess)"


def _select(frame: pl.LazyFrame, event_type: str | None, model: str | None) -> pl.LazyFrame:
    """Envelopes of one type or model (frames without envelope columns are kept whole)."""
    if "record_kind" not in frame.collect_schema().names():
        return frame
    frame = frame.filter(pl.col("record_kind") == "envelope")
    if event_type is not None:
        col = "event_type" if "::" in event_type else "short_type"
        frame = frame.filter(pl.col(col) == event_type)
    if model is not None:
        frame = frame.filter(pl.col("model") == model)
    return frame


def payload_schema(
    source: Source,
    *,
    event_type: str | None = None,
    model: str | None = None,
    column: str = "payload",
) -> pl.Schema:
    """The schema of the payloads of one event type, one model, or all envelopes.

    Inferred from **all** selected rows. Fields are ordered by first
    appearance; a field that is null in every row has dtype ``Null``.

    Parameters
    ----------
    source
        A data directory or an event frame (see :func:`scan`).
    event_type
        Keep one event type: a short type (``ProductCreated``) or a full Era B
        path (``my_app::models::ProductCreated``).
    model
        Keep the events of one CRUD model (``Product``).
    column
        The column holding JSON strings.

    Raises
    ------
    SchemaConflictError
        When a top-level field holds values of different JSON types.
    """
    rows = _select(scan(source), event_type, model).collect()
    if "seq" not in rows.columns:
        rows = rows.with_row_index("seq")
    return _infer(rows.select("seq", column), column)


def _infer(payloads: pl.DataFrame, column: str) -> pl.Schema:
    return _infer_decoded(payloads, column)[0]


def _infer_decoded(payloads: pl.DataFrame, column: str) -> tuple[pl.Schema, pl.Series | None]:
    """The schema of all rows, and the rows decoded with it (one pass serves both)."""
    values = payloads.get_column(column)
    if values.is_empty():
        return pl.Schema(), None
    try:
        decoded = _decode_as_ndjson(values)
        if decoded is None:
            decoded = values.str.json_decode(infer_schema_length=None)
        dtype = decoded.dtype
    except pl.exceptions.ComputeError:
        _raise_conflict(payloads, column, None)
        raise  # no conflict found at the top level: Polars' own message says where
    if not isinstance(dtype, pl.Struct):
        msg = f"payloads are JSON {dtype} values, not objects; they cannot become columns"
        raise FormatError("payload", msg)
    for f in dtype.fields:
        if _may_hide_conflict(f.dtype):
            _check_sniffed(payloads, column, f.name)
    return pl.Schema({f.name: f.dtype for f in dtype.fields}), decoded


def _decode_as_ndjson(values: pl.Series) -> pl.Series | None:
    """All rows parsed as one NDJSON buffer (Polars' NDJSON reader is several times faster
    than ``str.json_decode``), or None when the rows are not one JSON object per line."""
    if values.null_count() or values.str.contains("\n", literal=True).any():
        return None
    try:
        frame = pl.read_ndjson(values.str.join("\n").cast(pl.Binary).item(), infer_schema_length=None)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    return frame.to_struct(values.name) if frame.height == len(values) else None


def _may_hide_conflict(dtype: pl.DataType) -> bool:
    """Polars infers String as the supertype of a string and a number: check such fields."""
    return dtype == pl.String or (isinstance(dtype, pl.List) and _may_hide_conflict(dtype.inner))


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _check_sniffed(payloads: pl.DataFrame, column: str, field: str) -> None:
    """Cheap vectorized look at the first byte of each value; orjson confirms suspects."""
    first = pl.col(column).str.extract(r'"' + re.escape(field) + r'"\s*:\s*(.)', 1)
    suspects = payloads.filter(first.is_not_null() & ~first.is_in(['"', "n", "["]))
    if not suspects.is_empty():
        _raise_conflict(payloads, column, field)


def _raise_conflict(payloads: pl.DataFrame, column: str, only: str | None) -> None:
    """Find the top-level field whose JSON types differ, with example seqs, and raise."""
    seen: dict[str, dict[str, list[int]]] = {}
    for seq, text in payloads.select("seq", column).iter_rows():
        obj = orjson.loads(text)
        if not isinstance(obj, dict):
            seen.setdefault("<payload>", {}).setdefault(_json_type(obj), []).append(seq)
            continue
        for k, v in obj.items():
            if only is None or k == only:
                kinds = seen.setdefault(k, {})
                kinds.setdefault(_json_type(v), [])
                if len(kinds[_json_type(v)]) < 3:
                    kinds[_json_type(v)].append(seq)
    for name, kinds in seen.items():
        real = {k: v for k, v in kinds.items() if k != "null"}
        if len(real) > 1:
            raise SchemaConflictError(name, real, _HINT)


def model_schema_fields(path: Path) -> list[str]:
    """Field names of an upstream ``.schema/<Model>.json`` (it names fields, not types)."""
    try:
        spec = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise FormatError(path, f"is not a readable model schema ({e})") from e
    fields = spec.get("fields") if isinstance(spec, dict) else None
    if not isinstance(fields, dict):
        raise FormatError(path, "has no `fields` object; expected an upstream model schema")
    return list(fields)


def decode_payloads(
    source: Source,
    *,
    event_type: str | None = None,
    model: str | None = None,
    schema: PayloadSchema | None = None,
    column: str = "payload",
) -> pl.DataFrame:
    """The selected events with their payload fields as typed columns.

    Parameters
    ----------
    source
        A data directory or an event frame (see :func:`scan`). A directory's
        ``.schema/<Model>.json`` (when ``model`` is given and the file exists)
        fixes the field set and order; types still come from the rows.
    event_type, model
        Which events (see :func:`payload_schema`); neither: the union of all
        envelopes' fields.
    schema
        Field name -> dtype. Used as given: no inference, values that do not
        fit raise instead of being guessed.
    column
        The column holding JSON strings (``"payload"``; ``"data"`` for
        :func:`read_snapshot`).

    Returns
    -------
    polars.DataFrame
        The envelope columns, then one column per payload field. A field whose
        name is already a column (``timestamp``, ``event_id``, …) is named
        ``payload.<field>``; nested objects are struct columns.

    Raises
    ------
    SchemaConflictError
        When the schema is inferred and a field's JSON type differs across rows.

    See Also
    --------
    payload_schema : The inferred schema alone.
    """
    rows = _select(scan(source), event_type, model).collect()
    if "seq" not in rows.columns:
        rows = rows.with_row_index("seq")
    fields: list[str] | None = None
    if model is not None and isinstance(source, str | Path):
        spec = _model_schema_file(Path(source), model)
        if spec is not None:
            fields = model_schema_fields(spec)
    structs: pl.Series | None = None
    if schema is None:
        inferred, structs = _infer_decoded(rows.select("seq", column), column)
    else:
        inferred = pl.Schema({k: (v() if isinstance(v, type) else v) for k, v in schema.items()})
    if fields is not None:
        ordered = {k: inferred.get(k, pl.Null()) for k in fields}
        ordered.update({k: v for k, v in inferred.items() if k not in ordered})
        inferred = pl.Schema(ordered)
    if not inferred:
        return rows
    if structs is None or fields is not None:
        structs = rows.get_column(column).str.json_decode(pl.Struct(inferred))
    decoded = structs.struct.unnest()
    taken = set(rows.columns)
    decoded = decoded.rename({c: COLLISION_PREFIX + c for c in decoded.columns if c in taken})
    return pl.concat([rows, decoded], how="horizontal")


def _model_schema_file(directory: Path, model: str) -> Path | None:
    for d in (directory, *(p for p in directory.iterdir() if p.is_dir())) if directory.is_dir() else ():
        candidate = d / layout.SCHEMA_DIR / f"{model}.json"
        if candidate.is_file():
            return candidate
    return None


"""Payload strings into typed columns: ``decode_payloads``, ``payload_schema``, ``decode_objects``.

The schema comes from every selected row (never a sample: a field that first
appears late is never dropped), from the caller, or from the model's
``.schema/<Model>.json``. Nested objects stay structs. A field whose JSON type
differs across rows (a string here, a number there) raises
:class:`~lithair_lab.errors.SchemaConflictError`; integers mixed with floats
widen to ``Float64``, which loses nothing a reader of JSON would keep.

How: rows are grouped by *shape* (their keys, nested ones included, and the
JSON type of each value; ``_shapes.c``, or a coarser shape from one regex
pass without the C extension). One row per shape is enough to infer the types, find conflicts and
tell which keys each row holds, so the inference looks at a handful of rows and
the decoder parses every row once, with the schema given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import polars as pl

from lithair_lab.errors import FormatError, SchemaConflictError
from lithair_lab.formats import layout
from lithair_lab.formats.native import PURE_PYTHON_ENV

from .scan import Source, scan

try:
    from . import _shapes as _native_shapes
except ImportError:  # no C compiler at install time: shapes come from a regex pass
    _native_shapes = None

PayloadSchema = Mapping[str, pl.DataType | type[pl.DataType]] | pl.Schema
COLLISION_PREFIX = "payload."
_HINT = "pass `schema={...}` to choose the type (values that do not fit become an error, not a guess)"


class InvalidPayloadError(FormatError):
    """A payload is not a JSON object (or does not fit the schema given); ``row`` is its position among the decoded strings."""

    def __init__(self, row: int, detail: str, *, where: str | None = None, path: Path | str = "payload") -> None:
        self.row = row
        self.detail = detail
        super().__init__(path, f"{where or f'row {row}'}: {detail}")


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
        When a field holds values of different JSON types (a nested field is
        named ``a.b``, the items of a list ``a[]``).
    InvalidPayloadError
        When a payload is not a JSON object; the message names its ``seq``.
    """
    rows = _rows(source, event_type, model)
    try:
        return _Shapes.of(rows.get_column(column), rows.get_column("seq")).schema(strict=True)[0]
    except InvalidPayloadError as e:
        raise _located(e, rows) from None


# --- one row per shape ------------------------------------------------------------


def _native() -> Any:
    """The compiled ``_shapes`` module, or None (not built, or the pure-Python path forced)."""
    return _native_shapes if os.environ.get(PURE_PYTHON_ENV, "") in ("", "0") else None


def _shape_ids(text: bytes, values: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row its shape number (in order of first appearance), each shape's first row, and per row a flag: surely JSON.

    The flag is :func:`surely_json`'s (all False without the C extension).

    ``text`` is ``values`` joined by newlines; when a value holds a newline
    itself, the number of ids differs from the number of values.
    """
    if not len(values):
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32), np.zeros(0, np.bool_)
    module = _native()
    if module is not None:  # (more ids than values: some value holds a newline)
        ids, firsts, valid = module.shapes(text)
        return np.frombuffer(ids, np.uint32), np.frombuffer(firsts, np.uint32), np.frombuffer(valid, np.bool_)
    if values.str.contains("\n", literal=True).any():
        none = np.zeros(0, np.uint32)
        return none, none, np.zeros(0, np.bool_)  # the caller takes the newlines out first
    # Without the C extension, a coarser shape from one regex pass: keys kept,
    # string values `"`, numbers by their `.`/`e` (integers of 19 digits or
    # more as written), each token then `_`; the rest as written. Same
    # results, fewer rows share a shape.
    shapes = values.str.replace_all(_SHAPE, "${1}${2}${3}${4}${5}_")
    groups = (
        shapes.to_frame("shape")
        .with_row_index("row")
        .with_columns(pl.col("row").first().over("shape").alias("first"))
        .with_columns(pl.col("first").rank("dense").cast(pl.UInt32).alias("id") - 1)
    )
    firsts = groups.filter(pl.col("row") == pl.col("first"))["row"]
    # Nothing is sure without the C pass: every row is left to orjson.
    return groups["id"].to_numpy(), firsts.to_numpy(), np.zeros(len(values), np.bool_)


def surely_json(values: pl.Series) -> np.ndarray:
    """Per string, True when ``orjson.loads`` surely accepts it; False when not sure (ask orjson).

    One strict grammar check per row in the C shapes pass, so a caller parses
    only the False rows. False, besides invalid JSON: null strings, strings
    holding a raw newline, integer parts over 18 digits, exponents over 2
    digits, ``\\u`` escapes of surrogates, nesting deeper than 64; and every
    row without the C extension.
    """
    return row_shapes(values)[1]


def row_shapes(values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per string its shape number and :func:`surely_json`'s flag, from one pass.

    Strings of one shape hold the same keys, at every depth, with values of
    the same JSON types (numbered in order of first appearance).
    """
    if not len(values):
        return np.zeros(0, np.uint32), np.zeros(0, np.bool_)
    newline = values.str.contains("\n", literal=True).fill_null(True).to_numpy()
    rows = values.fill_null("")
    if newline.any():  # one row per value (its flag is dropped below)
        rows = rows.str.replace_all("\n", " ", literal=True)
    text = rows.str.join("\n").cast(pl.Binary).item()
    ids, _firsts, sure = _shape_ids(text, rows)
    return ids, sure & ~newline


_STRING = r'"(?:[^"\\]|\\.)*"'
_SHAPE = rf"({_STRING}\s*:)|(\")(?:[^\"\\]|\\.)*\"|(-?\d{{19,}})|-?\d+(?:(\.)\d*)?(?:([eE])[+-]?\d+)?"


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


Path_ = tuple[str | None, ...]  # a field's path: its name, then nested keys, ITEMS for a list's items
ITEMS = None  # (any string is a possible key, "" included)


def _types(value: Any, path: Path_, out: dict[Path_, set[str]]) -> int:
    """Add the JSON type of every value under ``path`` to ``out``; count the keys."""
    kind = _json_type(value)
    out.setdefault(path, set()).add(kind)
    keys = 0
    if kind == "object":
        for k, v in value.items():
            keys += 1 + _types(v, (*path, k), out)
    elif kind == "array":
        for v in value:
            keys += _types(v, (*path, ITEMS), out)
    return keys


def _shown(path: Path_) -> str:
    """``a.b`` for a nested field, ``a[]`` for a list's items."""
    out = str(path[0])
    for k in path[1:]:
        out += "[]" if k is ITEMS else f".{k}"
    return out


@dataclass
class _Shapes:
    """JSON object strings grouped by shape, one parsed representative per shape."""

    values: pl.Series  # the strings, nulls as "{}", on one line each
    nulls: pl.Series | None  # rows that were null strings
    labels: pl.Series | None  # what errors call a row (seq), else its number
    text: bytes  # the rows as NDJSON
    ids: np.ndarray  # row -> shape
    firsts: np.ndarray  # shape -> its first row
    objects: list[dict[str, Any]]  # shape -> its first row, parsed
    types: list[dict[Path_, set[str]]]  # shape -> JSON types of the values at each path

    @classmethod
    def of(cls, values: pl.Series, labels: pl.Series | None = None) -> _Shapes:
        nulls = values.is_null() if values.null_count() else None
        values = values.fill_null("{}") if nulls is not None else values
        text = values.str.join("\n").cast(pl.Binary).item() if len(values) else b""
        ids, firsts, _ = _shape_ids(text, values)
        if len(ids) != len(values):
            # A raw newline is only ever whitespace between JSON tokens (JSON
            # strings cannot hold one): once the rows are known to be JSON,
            # it becomes a space so that each row stays on one line.
            for row in values.str.contains("\n", literal=True).arg_true().to_list():
                _parse(values[row], row, labels)
            values = values.str.replace_all("\n", " ", literal=True)
            text = values.str.join("\n").cast(pl.Binary).item()
            ids, firsts, _ = _shape_ids(text, values)
        reps = values.gather(pl.Series(firsts, dtype=pl.UInt32))
        # Key tokens (a quote, then a colon) are at least the keys a reader
        # keeps; more means a repeated key or a `":` inside a string: look closer.
        tokens = reps.str.count_matches(r'"\s*:').to_list()
        objects: list[dict[str, Any]] = []
        types: list[dict[Path_, set[str]]] = []
        repeated: list[int] = []
        for k, (row, text_k) in enumerate(zip(firsts.tolist(), reps, strict=True)):
            obj = _parse(text_k, row, labels)
            if not isinstance(obj, dict):
                raise InvalidPayloadError(row, f"the payload is a JSON {_json_type(obj)}, not an object", where=_where(row, labels))
            found: dict[Path_, set[str]] = {}
            keys = sum(1 + _types(v, (name,), found) for name, v in obj.items())
            if keys != tokens[k] and _repeats(text_k):
                repeated.append(k)
            objects.append(obj)
            types.append(found)
        shapes = cls(values, nulls, labels, text, ids, firsts, objects, types)
        if repeated:
            # A repeated key keeps its last value, as the engine's reader
            # (orjson) does; Polars would keep the first. Those rows are
            # rewritten once, without repeats, and grouped again.
            rows = shapes.rows_of(repeated)
            fixed = [orjson.dumps(orjson.loads(t)).decode() for t in values.gather(rows)]
            values = values.scatter(rows, fixed)
            return cls.of(values if nulls is None else pl.when(nulls).then(None).otherwise(values), labels)
        return shapes

    def rows_of(self, shapes: list[int]) -> pl.Series:
        """Row numbers of the rows of these shapes, in row order."""
        mask = np.zeros(len(self.firsts), np.bool_)
        mask[shapes] = True
        return pl.Series(np.flatnonzero(mask[self.ids]), dtype=pl.UInt32)

    def mixed(self) -> dict[Path_, dict[str, list[int]]]:
        """The paths whose values have two JSON types or more (null aside): type -> shapes."""
        seen: dict[Path_, dict[str, list[int]]] = {}
        for k, types in enumerate(self.types):
            for path, kinds in types.items():
                for kind in kinds - {"null"}:
                    seen.setdefault(path, {}).setdefault(kind, []).append(k)
        return {path: kinds for path, kinds in seen.items() if len(kinds) > 1}

    def schema(self, *, strict: bool) -> tuple[pl.Schema, set[str]]:
        """The schema of all rows, from Polars' inference over one row per shape, and the text fields.

        A field whose values (at any depth) have two JSON types raises
        :class:`SchemaConflictError` when ``strict``; otherwise it is a text
        field: typed ``String``, each value its JSON text.
        """
        mixed = self.mixed()
        if strict and mixed:
            path, kinds = next(iter(mixed.items()))
            examples = {kind: self.example_labels(shapes) for kind, shapes in kinds.items()}
            raise SchemaConflictError(_shown(path), examples, _HINT)
        text = {str(path[0]) for path in mixed}
        if not self.objects:
            return pl.Schema(), text
        if text:  # the others' types, from representatives without the text fields
            kept = [{k: v for k, v in json.loads(self.values[r]).items() if k not in text} for r in self.firsts.tolist()]
            reps = "\n".join(json.dumps(o) for o in kept).encode()
        else:
            reps = self.values.gather(pl.Series(self.firsts, dtype=pl.UInt32)).str.join("\n").cast(pl.Binary).item()
        inferred = dict(pl.read_ndjson(reps, infer_schema_length=None).schema)
        order: dict[str, None] = {}  # Polars may put a field that is always null elsewhere
        for obj in self.objects:
            order.update(dict.fromkeys(obj))
        return pl.Schema({k: pl.String() if k in text else inferred[k] for k in order}), text

    def example_labels(self, shapes: list[int]) -> list[int]:
        """The labels of the first three rows of these shapes."""
        rows = self.rows_of(shapes).head(3).to_list()
        return [int(r if self.labels is None else self.labels[r]) for r in rows]

    def decode(self, schema: pl.Schema, name: str, text: set[str] = frozenset()) -> pl.Series:  # type: ignore[assignment]
        """Every row parsed once with ``schema``; a value that does not fit raises, naming its row.

        ``text`` fields hold each value's JSON text (they are read in Python,
        on the rows whose shape holds them).
        """
        typed = pl.Schema({k: v for k, v in schema.items() if k not in text})
        if not typed:
            frame = pl.DataFrame(height=len(self.values))
        else:
            try:
                frame = pl.read_ndjson(self.text, schema=typed)
            except pl.exceptions.PolarsError as e:
                raise self._why(typed, e) from None
        if text:
            frame = frame.with_columns(self._json_text(sorted(text))).select(list(schema))
        struct = frame.to_struct(name) if frame.width else pl.Series(name, [{}] * frame.height, pl.Struct({}))
        return struct if self.nulls is None else pl.select(pl.when(~self.nulls).then(struct)).to_series().alias(name)

    def _json_text(self, fields: list[str]) -> list[pl.Series]:
        """Per field, each row's value as compact JSON text (null when absent or null)."""
        rows = self.rows_of([k for k, o in enumerate(self.objects) if not o.keys().isdisjoint(fields)])
        objs = [orjson.loads(v) for v in self.values.gather(rows)]
        out = []
        for f in fields:
            values = [None if o.get(f) is None else orjson.dumps(o[f]).decode() for o in objs]
            column = pl.Series(f, [None] * len(self.values), pl.String)
            out.append(column.scatter(rows, pl.Series(values, dtype=pl.String)) if len(rows) else column)
        return out

    def _why(self, schema: pl.Schema, error: Exception) -> Exception:
        """The first row that Polars cannot read with ``schema``, as a clear error."""
        for k, row in enumerate(self.firsts.tolist()):
            try:
                pl.read_ndjson(self.values[row].encode(), schema=schema)
            except pl.exceptions.PolarsError as e:
                return InvalidPayloadError(row, f"does not fit the schema {dict(schema)} ({e})", where=_where(row, self.labels))
            del k
        # Rows grouped with a valid one although they are not JSON: find one.
        for row, v in enumerate(self.values):
            try:
                orjson.loads(v)
            except orjson.JSONDecodeError as e:
                return InvalidPayloadError(row, f"the payload is not valid JSON ({e})", where=_where(row, self.labels))
        return FormatError("payload", f"Polars cannot decode the payloads: {error}")

    def presence(self, fields: list[str]) -> pl.DataFrame:
        """Per field, True where the row's object holds the key (even as null)."""
        out = {}
        for f in fields:
            held = np.fromiter((f in o for o in self.objects), np.bool_, len(self.objects))
            column = pl.Series(f, held[self.ids])
            out[f] = column if self.nulls is None else column & ~self.nulls
        return pl.DataFrame(out) if out else pl.DataFrame(height=len(self.values))


def _parse(text: str, row: int, labels: pl.Series | None) -> Any:
    """One payload, parsed (orjson; Python's reader for what orjson refuses, e.g. a lone surrogate)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except ValueError as e:  # JSONDecodeError, or a number Python will not convert
        raise InvalidPayloadError(row, f"the payload is not valid JSON ({e})", where=_where(row, labels)) from None


def _where(row: int, labels: pl.Series | None) -> str:
    return f"row {row}" if labels is None else f"seq {labels[row]}"


def _located(error: InvalidPayloadError, rows: pl.DataFrame) -> InvalidPayloadError:
    """``error`` naming the record's file, line and byte offset when the frame has them."""
    record = rows.row(error.row, named=True)
    place = [f"seq {record['seq']}"]
    place += [f"{k} {record[k]}" for k in ("line", "offset") if record.get(k) is not None]
    path = Path(record["store"] or "", record["file"]) if record.get("file") else "payload"
    return InvalidPayloadError(error.row, error.detail, where=", ".join(place), path=path)


def _repeats(text: str) -> bool:
    """Does an object of this (valid) JSON text repeat a key?"""
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        obj = dict(items)
        found = found or len(obj) != len(items)
        return obj

    json.loads(text, object_pairs_hook=pairs)
    return found


class Decoded(NamedTuple):
    """What :func:`decode_objects` returns."""

    struct: pl.Series
    """The objects as a struct Series (named like the strings), fields in order of first appearance."""
    presence: pl.DataFrame | None
    """One Boolean column per struct field: True where the row's object holds the key, even as null."""
    text: frozenset[str]
    """Fields kept as JSON text because their values mix JSON types (``strict=False`` only)."""


def decode_objects(
    values: pl.Series,
    *,
    strict: bool = True,
    presence: bool = False,
    schema: PayloadSchema | None = None,
    labels: pl.Series | None = None,
) -> Decoded:
    """JSON object strings -> a struct Series and, when asked, which keys each row holds.

    The one decoder of payloads: :func:`decode_payloads` and the state fold
    both use it. The schema is inferred from **every** row (through one row
    per shape, see the module's docstring). A null string gives a null struct
    (holding no key).

    Parameters
    ----------
    values
        JSON texts, each an object.
    strict
        ``True``: a field whose values have two JSON types at any depth (null
        aside; integers and floats are both "number") raises
        :class:`SchemaConflictError`. ``False``: such a field is kept as JSON
        text (a ``String`` column of each value's compact JSON, named in
        ``Decoded.text``), since no Polars type holds both faithfully.
    presence
        Also compute ``Decoded.presence``: an explicit ``null`` and an absent
        key decode alike in the struct, and only this frame tells them apart.
        ``False``: ``None`` in its place.
    schema
        Field name -> dtype, used as given (no inference; a value that does
        not fit raises).
    labels
        What error messages call each row (its ``seq``); default its number.

    Returns
    -------
    Decoded
        ``(struct, presence, text)``.

    Raises
    ------
    InvalidPayloadError
        A row that is not JSON, not an object, or with a value that does not
        fit ``schema`` (``.row`` says which).
    SchemaConflictError
        With ``strict``, a field of two JSON types.

    Examples
    --------
    >>> d = decode_objects(pl.Series(['{"a":1,"b":null}', '{"a":2}']), presence=True)
    >>> d.struct.to_list()
    [{'a': 1, 'b': None}, {'a': 2, 'b': None}]
    >>> d.presence["b"].to_list()
    [True, False]
    """
    shapes = _Shapes.of(values, labels)
    text: set[str] = set()
    if schema is not None:
        struct = shapes.decode(_as_schema(schema), values.name)
    else:
        inferred, text = shapes.schema(strict=strict)
        struct = shapes.decode(inferred, values.name, text)
    fields = [f.name for f in struct.dtype.fields]  # type: ignore[attr-defined]
    return Decoded(struct, shapes.presence(fields) if presence else None, frozenset(text))


def _as_schema(schema: PayloadSchema) -> pl.Schema:
    return pl.Schema({k: (v() if isinstance(v, type) else v) for k, v in schema.items()})


def _rows(source: Source, event_type: str | None, model: str | None) -> pl.DataFrame:
    rows = _select(scan(source), event_type, model).collect()
    return rows if "seq" in rows.columns else rows.with_row_index("seq")


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
    InvalidPayloadError
        When a payload is not a JSON object, or a value does not fit a given
        ``schema``; the message names its ``seq``.

    See Also
    --------
    payload_schema : The inferred schema alone.
    decode_objects : The decoder itself, on a Series of JSON strings.
    """
    rows = _rows(source, event_type, model)
    fields: list[str] | None = None
    if model is not None and isinstance(source, str | Path):
        spec = _model_schema_file(Path(source), model)
        if spec is not None:
            fields = model_schema_fields(spec)
    try:
        structs = decode_objects(rows.get_column(column), schema=schema, labels=rows.get_column("seq")).struct
    except InvalidPayloadError as e:
        raise _located(e, rows) from None
    decoded = structs.struct.unnest()
    if fields is not None:
        named = [pl.lit(None).alias(f) if f not in decoded.columns else pl.col(f) for f in fields]
        decoded = decoded.select(*named, *(c for c in decoded.columns if c not in fields))
    if not decoded.width:
        return rows
    taken = set(rows.columns)
    decoded = decoded.rename({c: COLLISION_PREFIX + c for c in decoded.columns if c in taken})
    return pl.concat([rows, decoded], how="horizontal")


def _model_schema_file(directory: Path, model: str) -> Path | None:
    for d in (directory, *(p for p in directory.iterdir() if p.is_dir())) if directory.is_dir() else ():
        candidate = d / layout.SCHEMA_DIR / f"{model}.json"
        if candidate.is_file():
            return candidate
    return None


"""Model declarations: fields, keys, relations, and the validation of one object.

A :class:`Model` is declared in Python or loaded from an upstream
``.schema/<Model>.json`` file (:func:`model_from_schema`). It knows how to
check an object on its own (types, nulls, unknown fields, defaults, immutable
fields); constraints that need the other entities (unique, foreign keys,
protected deletes) are checked by :class:`~lithair_lab.engine.models.db.ModelStore`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from ...errors import FormatError, ValidationError

FieldType = Literal["string", "integer", "number", "boolean", "object", "array"]
ForceDelete = Literal["cascade", "set_null"]
FIELD_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "object", "array")
_PY_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING: Any = object()


def _type_name(t: FieldType | type | None) -> FieldType | None:
    if t is None or isinstance(t, str):
        if t is not None and t not in FIELD_TYPES:
            msg = f"unknown field type `{t}`\n\nUse one of {', '.join(FIELD_TYPES)} (or a Python type)."
            raise ValueError(msg)
        return t
    if t in _PY_TYPES:
        return _PY_TYPES[t]  # type: ignore[return-value]
    msg = f"unsupported field type `{t!r}`\n\nUse str, int, float, bool, dict or list."
    raise ValueError(msg)


def json_type_of(value: Any) -> str:
    """The JSON type name of a decoded value (``integer`` for ints, ``number`` for floats)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def matches_type(value: Any, t: str | None) -> bool:
    """True when ``value`` fits field type ``t`` (an integer is also a number)."""
    if t is None:
        return True
    actual = json_type_of(value)
    return actual == t or (t == "number" and actual == "integer")


@dataclass(frozen=True)
class Field:
    """One field of a model.

    Parameters
    ----------
    name
        The key in the JSON object.
    type
        ``"string"``, ``"integer"``, ``"number"``, ``"boolean"``, ``"object"``,
        ``"array"`` or the Python type (``str``, ``int``...); ``None`` accepts any
        JSON value. An integer is accepted where a number is expected.
    primary_key
        The entity key (exactly one field per model); it becomes the events'
        ``aggregate_id`` and can never change.
    unique
        No two entities may hold the same non-null value (checked before the
        write, atomically with it). Implies an index.
    indexed
        Maintain a secondary index: lookups by this field need no scan.
    foreign_key
        Name of the referenced model (its primary key); ``"Model.field"`` is
        accepted when ``field`` is that model's primary key. A write whose value
        names a missing entity is refused; deleting a referenced entity is
        refused unless forced.
    on_force_delete
        What a *forced* delete of the referenced entity does to referrers:
        ``"cascade"`` deletes them (recursively), ``"set_null"`` clears this
        field. Default: ``"set_null"`` when the field is nullable, else
        ``"cascade"``.
    nullable
        ``None`` is an accepted value. A nullable field without a default may be
        omitted on create (it is stored as ``null``).
    immutable
        The value set at creation may never change.
    default
        Value used when the field is omitted on create.
    """

    name: str
    type: FieldType | type | None = None
    primary_key: bool = False
    unique: bool = False
    indexed: bool = False
    foreign_key: str | None = None
    on_force_delete: ForceDelete | None = None
    nullable: bool = False
    immutable: bool = False
    default: Any = _MISSING

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", _type_name(self.type))
        if self.has_default and not (self.default is None and self.nullable) and not matches_type(self.default, self.json_type):
            msg = f"field `{self.name}`: default `{_short(self.default)}` is {json_type_of(self.default)}, not {self.json_type}"
            raise ValueError(msg)
        if self.foreign_key is not None:
            target = self.foreign_key.split(".", 1)[0]
            object.__setattr__(self, "foreign_key", target)
            force = self.on_force_delete or ("set_null" if self.nullable else "cascade")
            if force not in ("cascade", "set_null"):
                msg = f"field `{self.name}`: `on_force_delete` must be `cascade` or `set_null`, got `{force}`"
                raise ValueError(msg)
            if force == "set_null" and not self.nullable:
                msg = (
                    f"field `{self.name}`: `on_force_delete='set_null'` needs a nullable field"
                    "\n\nDeclare it with `nullable=True`, or use `on_force_delete='cascade'`."
                )
                raise ValueError(msg)
            object.__setattr__(self, "on_force_delete", force)
        elif self.on_force_delete is not None:
            msg = f"field `{self.name}`: `on_force_delete` only applies to a `foreign_key` field"
            raise ValueError(msg)

    @property
    def json_type(self) -> str | None:
        """The JSON type name (``type`` as given is normalized to it on construction)."""
        return self.type if isinstance(self.type, str) else _type_name(self.type)

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    @property
    def is_indexed(self) -> bool:
        """Whether a secondary index is kept for this field."""
        return self.indexed or self.unique or self.foreign_key is not None


@dataclass(frozen=True)
class Index:
    """A secondary index over one or more fields; ``unique`` makes it a constraint."""

    name: str
    fields: tuple[str, ...]
    unique: bool = False


def default_route(name: str) -> str:
    """The URL segment of a model: lowercase plural (``Product`` -> ``products``)."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    if s.endswith("y") and len(s) > 1 and s[-2] not in "aeiou":
        return s[:-1] + "ies"
    if s.endswith(("s", "x", "z", "ch", "sh")):
        return s + "es"
    return s + "s"


@dataclass(frozen=True)
class Model:
    """A CRUD model: a name, fields (one primary key), indexes.

    Parameters
    ----------
    name
        The model name; events are ``<name>Created/Updated/Deleted``.
    fields
        The fields, in the order objects are written.
    indexes
        Extra (possibly composite, possibly unique) indexes beyond the
        per-field ``unique``/``indexed`` flags.
    route
        URL segment for the HTTP API; default the lowercase plural of ``name``.
    strict
        Refuse fields that are not declared (default). With ``False`` unknown
        fields are stored as given.
    version
        Schema version written to ``.schema/<name>.json``.

    Examples
    --------
    >>> Product = Model("Product", [
    ...     Field("id", str, primary_key=True),
    ...     Field("name", str, indexed=True),
    ...     Field("price", float),
    ... ])
    >>> Product.primary_key, Product.route
    ('id', 'products')
    """

    name: str
    fields: Sequence[Field]
    indexes: Sequence[Index] = ()
    route: str = ""
    strict: bool = True
    version: int = 1
    by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            msg = f"model name `{self.name}` is not an identifier\n\nEvent types are `<Model>Created`; use letters, digits and `_`."
            raise ValueError(msg)
        fields = tuple(self.fields)
        object.__setattr__(self, "fields", fields)
        by_name = {f.name: f for f in fields}
        if len(by_name) != len(fields):
            msg = f"model `{self.name}` declares a field twice"
            raise ValueError(msg)
        object.__setattr__(self, "by_name", by_name)
        pks = [f.name for f in fields if f.primary_key]
        if len(pks) != 1:
            msg = f"model `{self.name}` needs exactly one primary key, found {len(pks)}\n\nMark one field with `primary_key=True`."
            raise ValueError(msg)
        indexes = tuple(self.indexes)
        for ix in indexes:
            unknown = [n for n in ix.fields if n not in by_name]
            if unknown:
                msg = f"model `{self.name}`: index `{ix.name}` names unknown field `{unknown[0]}`"
                raise ValueError(msg)
        object.__setattr__(self, "indexes", indexes)
        if not self.route:
            object.__setattr__(self, "route", default_route(self.name))

    @property
    def primary_key(self) -> str:
        return next(f.name for f in self.fields if f.primary_key)

    @property
    def pk_field(self) -> Field:
        return self.by_name[self.primary_key]

    def all_indexes(self) -> list[Index]:
        """Every index: one per indexed/unique/foreign-key field, then the declared ones."""
        out = [Index(f"{self.name}.{f.name}", (f.name,), f.unique) for f in self.fields if f.is_indexed and not f.primary_key]
        seen = {(ix.fields, ix.unique) for ix in out}
        out += [ix for ix in self.indexes if (ix.fields, ix.unique) not in seen]
        return out

    def relations(self) -> list[Field]:
        """The foreign-key fields."""
        return [f for f in self.fields if f.foreign_key is not None]

    # -- validation of one object ------------------------------------------------

    def key_of(self, value: Any) -> str:
        """The entity key (``aggregate_id``) of a primary-key value."""
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    def parse_key(self, key: str) -> Any:
        """The primary-key value named by a URL/entity key (integers are parsed)."""
        t = self.pk_field.json_type
        if t in ("integer", "number"):
            try:
                v = orjson.loads(key)
            except orjson.JSONDecodeError:
                v = key
            if matches_type(v, t):
                return v
            msg = f"`{self.name}` key `{key}` is not a valid `{self.primary_key}` ({t})"
            raise ValidationError(msg, model=self.name, field=self.primary_key)
        return key

    def _check_value(self, f: Field, value: Any) -> None:
        if value is None:
            if not f.nullable:
                msg = f"`{self.name}.{f.name}` may not be null\n\nGive a value, or declare the field with `nullable=True`."
                raise ValidationError(msg, model=self.name, field=f.name)
            return
        if not matches_type(value, f.json_type):
            msg = f"`{self.name}.{f.name}` must be {f.json_type}, got {json_type_of(value)} `{_short(value)}`"
            raise ValidationError(msg, model=self.name, field=f.name)

    def _check_object(self, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            msg = f"a `{self.name}` must be a JSON object, got {json_type_of(obj)}"
            raise ValidationError(msg, model=self.name)
        if self.strict:
            unknown = [k for k in obj if k not in self.by_name]
            if unknown:
                msg = (
                    f"`{self.name}` has no field `{unknown[0]}`"
                    f"\n\nKnown fields: {', '.join(f.name for f in self.fields)}."
                )
                raise ValidationError(msg, model=self.name, field=unknown[0])
        return obj

    def new_object(self, obj: Any) -> dict[str, Any]:
        """Validate a new entity and fill defaults; returns the object to store.

        Raises
        ------
        ValidationError
            A required field is missing, a value has the wrong type or is null
            where it may not be, or a field is unknown (strict models).
        """
        obj = self._check_object(obj)
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name in obj:
                value = obj[f.name]
            elif f.has_default:
                value = copy.deepcopy(f.default) if isinstance(f.default, (list, dict)) else f.default
            elif f.nullable:
                value = None
            else:
                msg = f"`{self.name}.{f.name}` is required"
                raise ValidationError(msg, model=self.name, field=f.name)
            self._check_value(f, value)
            out[f.name] = value
        if out[self.primary_key] is None:
            msg = f"`{self.name}.{self.primary_key}` is the primary key and may not be null"
            raise ValidationError(msg, model=self.name, field=self.primary_key)
        out.update((k, v) for k, v in obj.items() if k not in out)  # non-strict extras
        return out

    def changed_object(self, current: dict[str, Any], changes: Any) -> dict[str, Any]:
        """Validate ``changes`` merged over ``current``; returns the whole new object.

        Raises
        ------
        ValidationError
            A value has the wrong type, an immutable field or the primary key
            would change, or a field is unknown (strict models).
        """
        changes = self._check_object(changes)
        for name, value in changes.items():
            f = self.by_name.get(name)
            if f is None:
                continue
            if (f.immutable or f.primary_key) and name in current and current[name] != value:
                what = "the primary key" if f.primary_key else "immutable"
                msg = f"`{self.name}.{name}` is {what} and cannot change (`{_short(current[name])}` -> `{_short(value)}`)"
                raise ValidationError(msg, model=self.name, field=name)
            self._check_value(f, value)
        return {**current, **changes}

    # -- upstream .schema files ---------------------------------------------------

    def to_schema(self) -> dict[str, Any]:
        """The model as an upstream ``.schema/<Model>.json`` object.

        Field types, ``on_force_delete`` and ``strict`` have no upstream key; they
        are kept under ``lithair_lab`` keys, which upstream readers ignore.
        """
        fields: dict[str, Any] = {}
        for f in self.fields:
            fields[f.name] = {
                "primary_key": f.primary_key,
                "unique": f.unique,
                "indexed": f.indexed,
                "foreign_key": f.foreign_key,
                "nullable": f.nullable,
                "immutable": f.immutable,
                "audited": False,
                "versioned": 0,
                "retention": 2**64 - 1,
                "snapshot_only": False,
                "validation_rules": [],
                "permissions": {"read_permission": None, "write_permission": None, "owner_field": False},
                "default_value": _schema_default(f),
                "lithair_lab_type": f.json_type,
                "lithair_lab_on_force_delete": f.on_force_delete,
            }
        return {
            "model_name": self.name,
            "version": self.version,
            "fields": fields,
            "indexes": [{"name": ix.name, "fields": list(ix.fields), "unique": ix.unique} for ix in self.all_indexes()],
            "foreign_keys": [],
            "lithair_lab_route": self.route,
            "lithair_lab_strict": self.strict,
        }


def _short(value: Any, limit: int = 40) -> str:
    s = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _schema_default(f: Field) -> str | None:
    """Upstream's spelling of a default: the value as a string (strings as they are)."""
    if not f.has_default:
        return None
    return f.default if isinstance(f.default, str) else orjson.dumps(f.default).decode()


def _parse_default(raw: Any, ftype: str | None) -> Any:
    """Upstream stores ``default_value`` as a string of the value (``"0"``, ``"false"``).

    A string that parses as JSON of the field's type (or, untyped, as a JSON
    number, boolean or null) is that value; any other string is the string.
    """
    if not isinstance(raw, str) or ftype == "string":
        return raw
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if ftype is None:
        return v if isinstance(v, (int, float, bool)) or v is None else raw
    return v if matches_type(v, ftype) else raw


def model_from_schema(schema: Mapping[str, Any] | str | Path) -> Model:
    """Load a model from an upstream ``.schema/<Model>.json`` (path or decoded object).

    Honours ``primary_key``, ``unique``, ``indexed``, ``foreign_key``,
    ``nullable``, ``immutable``, ``default_value`` and the ``indexes`` list.
    Upstream schemas carry no field types, so fields accept any JSON value
    unless the file holds ``lithair_lab_type`` (written by lithair_lab).

    Raises
    ------
    FormatError
        The file is not JSON or not a model schema, or it uses a feature that
        would be unsafe to ignore (validation rules, a non-empty
        ``foreign_keys`` list).
    """
    source = "<schema>"
    if isinstance(schema, (str, Path)):
        source = str(schema)
        try:
            schema = orjson.loads(Path(schema).read_bytes())
        except orjson.JSONDecodeError as e:
            raise FormatError(source, f"not a JSON model schema ({e})") from e
    if not isinstance(schema, Mapping) or not isinstance(schema.get("model_name"), str) or not isinstance(schema.get("fields"), Mapping):
        raise FormatError(source, "not a model schema: needs `model_name` (string) and `fields` (object)")
    if schema.get("foreign_keys"):
        raise FormatError(
            source,
            "the `foreign_keys` list is not supported\n\nDeclare each relation on its field with `\"foreign_key\": \"<Model>\"`.",
        )
    fields = []
    for name, spec in schema["fields"].items():
        if not isinstance(spec, Mapping):
            raise FormatError(source, f"field `{name}` is not an object")
        if spec.get("validation_rules"):
            raise FormatError(
                source,
                f"field `{name}` has `validation_rules`, which lithair_lab cannot enforce yet"
                "\n\nRemove them or declare the model in Python; refusing rather than accepting writes they would reject.",
            )
        ftype = spec.get("lithair_lab_type")
        fk = spec.get("foreign_key")
        try:
            fields.append(
                Field(
                    name,
                    ftype,
                    primary_key=bool(spec.get("primary_key")),
                    unique=bool(spec.get("unique")),
                    indexed=bool(spec.get("indexed")),
                    foreign_key=fk if isinstance(fk, str) and fk else None,
                    on_force_delete=spec.get("lithair_lab_on_force_delete") if fk else None,
                    nullable=bool(spec.get("nullable")),
                    immutable=bool(spec.get("immutable")),
                    default=_MISSING if spec.get("default_value") is None else _parse_default(spec["default_value"], ftype),
                )
            )
        except ValueError as e:
            raise FormatError(source, str(e)) from e
    indexes = []
    for ix in schema.get("indexes") or []:
        if not isinstance(ix, Mapping) or not isinstance(ix.get("fields"), list) or not ix["fields"]:
            raise FormatError(source, f"index `{ix!r}` needs a non-empty `fields` list")
        indexes.append(Index(str(ix.get("name") or "_".join(ix["fields"])), tuple(ix["fields"]), bool(ix.get("unique"))))
    try:
        return Model(
            schema["model_name"],
            fields,
            indexes,
            route=schema.get("lithair_lab_route") or "",
            strict=bool(schema.get("lithair_lab_strict", True)),
            version=int(schema.get("version") or 1),
        )
    except ValueError as e:
        raise FormatError(source, str(e)) from e


def load_schema_dir(directory: Path) -> list[Model]:
    """Every ``*.json`` model in ``directory`` (a data directory's ``.schema/``), by name."""
    if not directory.is_dir():
        return []
    return [model_from_schema(p) for p in sorted(directory.glob("*.json"))]


def check_relations(models: Iterable[Model]) -> None:
    """Every foreign key names a known model (raise ``ValueError`` otherwise)."""
    names = {m.name for m in models}
    for m in models:
        for f in m.relations():
            if f.foreign_key not in names:
                msg = f"`{m.name}.{f.name}` references unknown model `{f.foreign_key}`\n\nDeclare `{f.foreign_key}` too."
                raise ValueError(msg)

"""decode_objects: the one payload decoder, checked against a JSON reader on random objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from builders import T0, json_lines
from lithair_lab.formats import layout
from lithair_lab.formats.envelope import Envelope
from lithair_lab.frames import payload
from lithair_lab.frames.payload import InvalidPayloadError, decode_objects

# --- reference: what a JSON reader says the rows hold ---------------------------


def expected(value: Any, dtype: pl.DataType) -> Any:
    """``value`` as Polars gives it in a column of ``dtype`` (absent nested keys are null)."""
    if value is None:
        return None
    if isinstance(dtype, pl.Struct):
        return {f.name: expected(value.get(f.name), f.dtype) for f in dtype.fields}
    if isinstance(dtype, pl.List):
        return [expected(v, dtype.inner) for v in value]
    if dtype == pl.Float64 and isinstance(value, int):
        return float(value)
    return value


def check_against_json(texts: list[str], struct: pl.Series, present: pl.DataFrame | None) -> None:
    objs = [json.loads(t) for t in texts]
    order: dict[str, None] = {}
    for o in objs:
        order.update(dict.fromkeys(o))
    assert [f.name for f in struct.dtype.fields] == list(order)  # type: ignore[attr-defined]
    assert struct.to_list() == [expected(o, struct.dtype) for o in objs]
    if present is not None:
        assert present.columns == list(order)
        assert present.rows() == [tuple(k in o for k in order) for o in objs]


# --- random objects: one JSON type per field, nulls, absent keys, nesting ---------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6)
scalars = {
    "string": st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    "int": st.integers(-(2**63), 2**63 - 1) | st.integers(-1000, 1000),
    "wide int": st.integers(-(2**127), 2**127 - 1) | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    "number": st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False, width=64),
    "boolean": st.booleans(),
}
kinds = st.recursive(
    st.sampled_from(sorted(scalars)),
    lambda inner: st.dictionaries(names, inner, min_size=1, max_size=3).map(lambda d: ("object", d))
    # (Polars types a list of 64- and 128-bit integers as strings, so lists hold narrower kinds.)
    | inner.filter(lambda k: isinstance(k, str) and k != "wide int").map(lambda k: ("list", k)),
    max_leaves=6,
)


def value_of(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, str):
        return scalars[kind]
    tag, spec = kind
    if tag == "list":
        return st.lists(scalars[spec], max_size=3)
    return objects_of(spec)


def objects_of(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of ``spec``: each key absent, null, or a value of its kind."""
    parts = {k: st.sampled_from(["absent", "null", "value"]).flatmap(
        lambda how, k=k: st.just(how) if how != "value" else value_of(spec[k]).map(lambda v: ("value", v))
    ) for k in spec}  # fmt: skip
    return st.fixed_dictionaries(parts).map(
        lambda d: {k: (None if how == "null" else how[1]) for k, how in d.items() if how != "absent"}
    )


def texts_of(rows: list[dict[str, Any]], data: st.DataObject) -> list[str]:
    """Rows as JSON text, each compact or spaced, escaped or not."""
    out = []
    for r in rows:
        spaced = data.draw(st.booleans())
        out.append(json.dumps(r, ensure_ascii=data.draw(st.booleans()), separators=(", ", ": ") if spaced else (",", ":")))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.dictionaries(names, kinds, min_size=1, max_size=5), data=st.data())
def test_random_objects_decode_as_a_json_reader_reads_them(spec: dict[str, Any], data: st.DataObject) -> None:
    rows = data.draw(st.lists(objects_of(spec), min_size=1, max_size=12))
    texts = texts_of(rows, data)
    struct, present, _ = decode_objects(pl.Series("payload", texts), presence=True)
    check_against_json(texts, struct, present)
    # The types are those Polars infers from every row, not only from one row per shape.
    everything = pl.read_ndjson("\n".join(texts).encode(), infer_schema_length=None).schema
    assert dict(struct.dtype.to_schema()) == dict(everything)  # type: ignore[attr-defined]
    # Without the C extension rows are grouped by identical text: same result.
    with pytest.MonkeyPatch.context() as m:
        m.setattr(payload, "_native_shapes", None)
        again, present_again, _ = decode_objects(pl.Series("payload", texts), presence=True)
    assert again.equals(struct)
    assert present_again is not None and present is not None
    assert present_again.equals(present)


@settings(max_examples=60, deadline=None)
@given(
    field=names,
    pair=st.sampled_from(["string", "number", "boolean", "object", "array"]).flatmap(
        lambda a: st.tuples(st.just(a), st.sampled_from(["string", "number", "boolean", "object", "array"]).filter(lambda b: b != a))
    ),
    before=st.integers(0, 3),
    between=st.integers(0, 3),
)
def test_a_field_of_two_json_types_is_a_conflict_with_example_rows(
    field: str, pair: tuple[str, str], before: int, between: int
) -> None:
    sample = {"string": "x", "number": 1.5, "boolean": True, "object": {"a": 1}, "array": [1]}
    texts = (
        [json.dumps({"other": 1})] * before
        + [json.dumps({field: sample[pair[0]]})]
        + [json.dumps({field: None})] * between
        + [json.dumps({field: sample[pair[1]], "other": 2})]
    )
    with pytest.raises(ll.SchemaConflictError) as e:
        decode_objects(pl.Series(texts))
    assert e.value.field == field
    assert e.value.types == {pair[0]: [before], pair[1]: [before + 1 + between]}


# --- null versus absent ----------------------------------------------------------


def test_an_explicit_null_is_held_and_an_absent_key_is_not() -> None:
    texts = ['{"id":"a","stock":3,"note":"x"}', '{"id":"a","stock":null}', '{"id":"a"}', '{"note":null,"id":"a"}']
    struct, present, _ = decode_objects(pl.Series("p", texts), presence=True)
    assert struct.struct.field("stock").to_list() == [3, None, None, None]
    assert present is not None
    assert present.to_dict(as_series=False) == {
        "id": [True, True, True, True],
        "stock": [True, True, False, False],
        "note": [True, False, False, True],
    }


def test_a_key_spelled_with_escapes_or_inside_a_string_is_told_apart() -> None:
    texts = ['{"a":1}', '{"\\u0061":null}', '{"b":"\\"a\\": 1"}', '{"b":{"a":2}}']
    struct, present, _ = decode_objects(pl.Series(texts), presence=True, strict=False)
    assert present is not None
    assert present["a"].to_list() == [True, True, False, False]
    assert struct.struct.field("a").to_list() == [1, None, None, None]


def test_null_strings_give_null_rows_holding_nothing() -> None:
    struct, present, _ = decode_objects(pl.Series("p", ['{"a":1}', None, '{"a":null}']), presence=True)
    assert struct.to_list() == [{"a": 1}, None, {"a": None}]
    assert present is not None
    assert present["a"].to_list() == [True, False, True]


def test_no_rows_and_empty_objects() -> None:
    struct, present, _ = decode_objects(pl.Series("p", [], pl.String), presence=True)
    assert len(struct) == 0
    assert present is not None and present.shape == (0, 0)
    struct, present, _ = decode_objects(pl.Series("p", ["{}", "{ }"]), presence=True)
    assert struct.dtype == pl.Struct({})
    assert len(struct) == 2
    assert present is not None and present.shape == (2, 0)


# --- what Polars alone would get wrong or not say ----------------------------------


def test_a_repeated_key_keeps_its_last_value_as_the_engine_reader_does() -> None:
    struct, present, _ = decode_objects(pl.Series(['{"a":1,"a":2}', '{"a":3}', '{"b":{"c":1,"c":null}}']), presence=True)
    assert struct.to_list() == [{"a": 2, "b": None}, {"a": 3, "b": None}, {"a": None, "b": {"c": None}}]


def test_a_payload_spread_over_lines_is_one_row() -> None:
    texts = ['{\n  "a": 1,\n  "b": [1,\n 2]\n}', '{"a":2}']
    struct = decode_objects(pl.Series(texts)).struct
    assert struct.to_list() == [{"a": 1, "b": [1, 2]}, {"a": 2, "b": None}]


def test_integers_beyond_64_bits_stay_exact() -> None:
    struct = decode_objects(pl.Series(['{"n":1}', '{"n":123456789012345678901234567}', '{"n":-9223372036854775809}'])).struct
    assert struct.struct.field("n").dtype == pl.Int128
    assert struct.struct.field("n").to_list() == [1, 123456789012345678901234567, -9223372036854775809]


@pytest.mark.parametrize(
    ("texts", "row", "reason"),
    [
        (['{"a":"x"}', '{"a":s}'], 1, "not valid JSON"),  # same shape as the row before it
        (['{"a":1}', '{"a":1,}'], 1, "not valid JSON"),
        (['{"a":1}', ""], 1, "not valid JSON"),
        (['{"a":1}', "[1,2]"], 1, "a JSON array, not an object"),
        (['{"a":1}', '{"a":\n1', '{"a":2}'], 1, "not valid JSON"),
    ],
)
def test_a_row_that_is_not_a_json_object_is_named(texts: list[str], row: int, reason: str) -> None:
    with pytest.raises(InvalidPayloadError, match=reason) as e:
        decode_objects(pl.Series(texts), labels=pl.Series([10, 11, 12][: len(texts)]))
    assert e.value.row == row
    assert f"seq {10 + row}:" in str(e.value)


def test_decode_payloads_names_the_file_line_and_offset_of_a_bad_payload(tmp_path: Path) -> None:
    envs = [Envelope("ProductCreated", f"e{i}", T0 + i, p, f"k{i}") for i, p in enumerate(['{"a":1}', '{"a":1', "[2]"])]
    (tmp_path / layout.ACTIVE).write_bytes(json_lines(envs))
    first_line = len(json_lines(envs[:1]))
    with pytest.raises(InvalidPayloadError) as e:
        ll.decode_payloads(tmp_path)
    assert e.value.path == Path(tmp_path.name, layout.ACTIVE)  # store, then file
    assert f"{layout.ACTIVE}: seq 1, line 2, offset {first_line}: the payload is not valid JSON" in str(e.value)
    with pytest.raises(InvalidPayloadError, match="seq 2, line 3, .*: the payload is a JSON array, not an object"):
        ll.payload_schema(ll.read(tmp_path).filter(pl.col("seq") != 1))


def test_a_value_that_does_not_fit_the_given_schema_raises_naming_its_row() -> None:
    with pytest.raises(InvalidPayloadError, match="row 2: does not fit") as e:
        decode_objects(pl.Series(['{"a":1}', '{"a":2}', '{"a":2.5}']), schema={"a": pl.Int64})
    assert e.value.row == 2


def test_without_strict_a_field_of_mixed_types_is_kept_as_json_text() -> None:
    texts = ['{"a":1,"n":1}', '{"a":"x","n":2.5}', '{"n":3,"a":null}', '{"c":{"d":[1,"y"]}}', '{"a":{"b":1e400}}']
    decoded = decode_objects(pl.Series(texts[:4]), strict=False, presence=True)
    assert decoded.text == {"a", "c"}  # `c` mixes types inside: a number and a string in one list
    assert decoded.struct.dtype == pl.Struct({"a": pl.String, "n": pl.Float64, "c": pl.String})
    assert decoded.struct.to_list() == [
        {"a": "1", "n": 1.0, "c": None},
        {"a": '"x"', "n": 2.5, "c": None},
        {"a": None, "n": 3.0, "c": None},
        {"a": None, "n": None, "c": '{"d":[1,"y"]}'},
    ]
    assert decoded.presence is not None
    assert decoded.presence["a"].to_list() == [True, True, True, False]
    struct = decode_objects(pl.Series(['{"a":{"b":1}}', '{"a":[1]}', '{"c":null}']), strict=False).struct
    assert struct.struct.field("a").to_list() == ['{"b":1}', "[1]", None]


@pytest.mark.skipif(payload._native() is None, reason="the C extension is not built or not used")
def test_rows_differing_only_in_values_and_list_lengths_share_one_shape() -> None:
    texts = [
        json.dumps({"id": f"k{i}", "price": i + 0.5, "tags": ["t"] * (i % 4), "n": i * 10**15, "ok": i % 2 == 0})
        for i in range(1, 50)
    ]
    shapes = payload._Shapes.of(pl.Series(texts))
    assert len(shapes.firsts) == 2  # `tags` empty, and not
    struct = decode_objects(pl.Series(texts)).struct
    check_against_json(texts, struct, None)


def kinds_under(value: Any, path: tuple[str, ...], out: dict[tuple[str, ...], set[type]]) -> None:
    """JSON kinds at every path (the reference's own walk: bool apart from numbers, ints with floats)."""
    kind = {bool: bool, int: float, float: float, str: str, list: list, dict: dict}.get(type(value))
    if kind is not None:
        out.setdefault(path, set()).add(kind)
    if isinstance(value, dict):
        for k, v in value.items():
            kinds_under(v, (*path, "." + k), out)
    elif isinstance(value, list):
        for v in value:
            kinds_under(v, (*path, "[]"), out)


any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.dictionaries(st.sampled_from("abcd"), any_json, max_size=4), min_size=1, max_size=10))
def test_without_strict_fields_of_mixed_types_are_json_text_and_the_rest_typed(rows: list[dict[str, Any]]) -> None:
    texts = [json.dumps(r) for r in rows]
    kinds: dict[tuple[str, ...], set[type]] = {}
    for r in rows:
        for k, v in r.items():
            kinds_under(v, (k,), kinds)
    mixed = {path[0] for path, ks in kinds.items() if len(ks) > 1}
    decoded = decode_objects(pl.Series(texts), strict=False, presence=True)
    assert decoded.text == mixed
    typed = [f.name for f in decoded.struct.dtype.fields if f.name not in mixed]  # type: ignore[attr-defined]
    if typed:
        check_against_json([json.dumps({k: v for k, v in r.items() if k not in mixed}) for r in rows],
                           decoded.struct.struct.unnest().select(typed).to_struct(), None)  # fmt: skip
    for f in mixed:
        assert decoded.struct.struct.field(f).to_list() == [
            None if r.get(f) is None else orjson.dumps(r[f]).decode() for r in rows
        ]
    assert decoded.presence is not None
    assert decoded.presence.rows() == [tuple(f in r for f in decoded.presence.columns) for r in rows]


def test_an_empty_key_is_a_key_like_any_other() -> None:
    decoded = decode_objects(pl.Series(['{"a":{"":1}}', '{"a":{"":2},"":[true]}']), presence=True)
    assert decoded.struct.to_list() == [{"a": {"": 1}, "": None}, {"a": {"": 2}, "": [True]}]
    with pytest.raises(ll.SchemaConflictError) as e:
        decode_objects(pl.Series(['{"a":[1]}', '{"a":{"":"x"}}']))
    assert e.value.field == "a"

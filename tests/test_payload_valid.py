"""surely_json: a True flag means orjson reads the row, always; False (not sure) is rare for ordinary payloads."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lithair_lab.formats.native import PURE_PYTHON_ENV
from lithair_lab.frames import payload
from lithair_lab.frames.payload import surely_json

native = pytest.mark.skipif(payload._native() is None, reason="the C extension is not built or not used")


def flags(rows: list[bytes]) -> list[bool]:
    """The C pass's flag for rows of any bytes (a polars string column holds only valid UTF-8)."""
    assert not any(b"\n" in r for r in rows)
    return [bool(v) for v in payload._native().shapes(b"\n".join(rows))[2]]


# --- reference: the rows a strict reader still leaves to orjson -------------------

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|-?(\d+)(?:\.\d+)?(?:[eE][+-]?(\d+))?')
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)")


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def left_to_orjson(row: bytes, value: Any) -> bool:
    """For a row orjson reads as ``value``: whether it is one of the documented not-sure cases."""
    if depth(value) > 64:
        return True
    for m in _TOKEN.finditer(row):
        body, whole, exponent = m.groups()
        if body is not None:
            if any(0xD800 <= int(u, 16) <= 0xDFFF for u in (e.group(1) for e in _ESCAPE.finditer(body)) if u):
                return True
        elif len(whole) > 18 or (exponent is not None and len(exponent) > 2):
            return True
    return False


def expected_flag(row: bytes) -> bool:
    """The exact contract: orjson reads it, and it is not a not-sure case."""
    try:
        value = orjson.loads(row)
    except orjson.JSONDecodeError:
        return False
    return not left_to_orjson(row, value)


# --- random JSON, written by two writers with random whitespace ---------------------

any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)  # control chars included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
space = st.text(st.sampled_from(" \t\r"), max_size=3)


@st.composite
def written(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_values) -> bytes:
    value = draw(values)
    fits_orjson = all(-(2**63) <= int(m) < 2**64 for m in re.findall(r"-?\d{19,}", json.dumps(value)))
    if fits_orjson and draw(st.booleans()):
        text = orjson.dumps(value)
    else:
        item, key = draw(space), draw(space)
        text = json.dumps(
            value,
            ensure_ascii=draw(st.booleans()),
            separators=(item + "," + draw(space), key + ":" + draw(space)),
        ).encode()
    return draw(space).encode() + text + draw(space).encode()


@native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(written(), min_size=1, max_size=8))
def test_json_from_writers_is_sure_but_for_the_documented_cases(rows: list[bytes]) -> None:
    want = [not left_to_orjson(r, orjson.loads(r)) for r in rows]
    assert flags(rows) == want
    assert surely_json(pl.Series([r.decode() for r in rows])).tolist() == want


@native
def test_ordinary_payloads_are_all_sure() -> None:
    rows = [
        b'{"id":"k1","name":"n1","price":12,"stock":10,"tag":null}',
        b'{"price":7}',
        b'{"name":"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80","ok":true,"at":-1.5e-07,"tags":["a","b"],"n":{"x":[]}}',
        b'{"s":"tab\\tquote\\"slash\\/\\\\ \\u00e9\\u20AC\\b\\f\\n\\r"}',
    ]
    assert flags(rows) == [True] * len(rows)


# --- mutated and truncated rows: a True flag is never wrong --------------------------

odd_bytes = st.sampled_from(list(b'"\\{}[],:0123456789-+.eEtrufalsn \t\r\x00\x1f\x7f')) | st.integers(0, 255).filter(
    lambda b: b != ord("\n")
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    row = bytearray(draw(written()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(row)))
        if kind == "insert":
            row[at:at] = bytes(draw(st.lists(odd_bytes, min_size=1, max_size=3)))
        elif kind == "truncate":
            del row[at:]
        elif at < len(row):
            if kind == "replace":
                row[at] = draw(odd_bytes)
            else:
                del row[at : at + draw(st.integers(1, 3))]
    return bytes(row)


@native
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(mutated(), min_size=1, max_size=8))
def test_mutated_rows_are_sure_exactly_when_orjson_reads_them_and_not_a_documented_case(rows: list[bytes]) -> None:
    got = flags(rows)
    for row, flag in zip(rows, got, strict=True):
        if flag:
            orjson.loads(row)  # never a wrong True
    assert got == [expected_flag(r) for r in rows]  # and False only when it has to be


@native
@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.binary(max_size=12).filter(lambda b: b"\n" not in b), min_size=1, max_size=8))
def test_random_bytes_are_sure_only_when_json(rows: list[bytes]) -> None:
    assert flags(rows) == [expected_flag(r) for r in rows]


@native
def test_every_one_or_two_bytes_in_a_string_and_every_escape() -> None:
    """Exhaustive where it is cheap: one and two raw bytes in a string (control chars, quotes,
    UTF-8 lead and continuation bytes), and a backslash before each byte."""
    inside = [bytes([a]) for a in range(256)] + [bytes([a, b]) for a in range(256) for b in range(256)]
    inside += [b"\\" + bytes([a]) + tail for a in range(256) for tail in (b"", b"00e9", b"d800", b"0g00")]
    rows = [b'"' + x + b'"' for x in inside if b"\n" not in x]
    assert flags(rows) == [expected_flag(r) for r in rows]


@native
@settings(max_examples=500, deadline=None)
@given(
    body=st.lists(
        st.integers(0x80, 0xFF) | st.sampled_from(list(b"\\\"u0aDd8F\x1f\x20")) | st.integers(0, 255), max_size=10
    ).map(bytes)
)
def test_strings_of_random_bytes_are_sure_exactly_when_orjson_reads_them(body: bytes) -> None:
    body = body.replace(b"\n", b"")
    rows = [b'"' + body + b'"', b'{"k":"' + body + b'"}', b'["' + body + b'",1]']
    assert flags(rows) == [expected_flag(r) for r in rows]


# --- each rule by hand -------------------------------------------------------------

SURE = [
    b"0", b"-0", b"12", b"-1.5", b"1e5", b"1E+05", b"2.5e-99", b"999999999999999999", b"-999999999999999999",
    b"0." + b"0" * 400 + b"1", b'""', b'"\\u0000"', b'"\\uD7FF\\uE000\\uffff"', b'"\\/"', b'"\x7f"',
    b'"\xef\xbf\xbe"', b'"\xf4\x8f\xbf\xbf"', b'"\xed\x9f\xbf"', b"true", b"false", b"null", b"[]", b"{}",
    b" \t\r[ 1 , {\"a\" :\t[ ] } ]\r", b'{"a":1,"a":2}', b"[" * 64 + b"]" * 64,
]  # fmt: skip
NOT_SURE = {
    "empty row": b"",
    "only space": b" \t",
    "bad escape": b'"\\x"',
    "escape of a digit": b'"\\1"',
    "short \\u": b'"\\u12"',
    "\\u not hex": b'"\\u12g4"',
    "raw control char": b'"a\x01b"',
    "raw tab in a string": b'"a\tb"',
    "raw 0x1f in a string": b'"\x1f"',
    "\\x escape": b'"\\x0041"',
    "\\a escape": b'"\\a"',
    "lone continuation byte": b'"\x80"',
    "overlong 2-byte": b'"\xc0\xaf"',
    "overlong 3-byte": b'"\xe0\x80\xaf"',
    "overlong 4-byte": b'"\xf0\x80\x80\xaf"',
    "surrogate in UTF-8": b'"\xed\xa0\x80"',
    "above U+10FFFF": b'"\xf4\x90\x80\x80"',
    "F5 lead byte": b'"\xf5\x80\x80\x80"',
    "truncated sequence": b'"\xe2\x82"',
    "UTF-8 outside a string": b"\xc3\xa9",
    "byte order mark": b"\xef\xbb\xbf1",
    "leading zero": b"01",
    "no fraction digits": b"1.",
    "no integer part": b".5",
    "lone minus": b"-",
    "no exponent digits": b"1e",
    "exponent sign only": b"1e+",
    "plus sign": b"+1",
    "NaN": b"NaN",
    "Infinity": b"-Infinity",
    "trailing garbage": b'{"a":1}x',
    "two values": b"1 2",
    "unbalanced open": b'{"a":[1,2}',
    "unbalanced close": b"[1]]",
    "unclosed": b'{"a":1',
    "unclosed string": b'"abc',
    "trailing comma in array": b"[1,]",
    "trailing comma in object": b'{"a":1,}',
    "missing value": b'{"a":}',
    "non-string key": b"{1:2}",
    "missing colon": b'{"a" 1}',
    "single quotes": b"'a'",
    "capital literal": b"True",
    "truncated literal": b"nul",
    "literal run-on": b"truex",
    "lone high surrogate": b'"\\ud800"',
    "lone low surrogate": b'"\\uDC00"',
    "surrogate pair (left to orjson)": b'"\\ud83d\\ude00"',
    "nesting of 65": b"[" * 65 + b"]" * 65,
    "19-digit integer": b"1234567890123456789",
    "19-digit integer in an object": b'{"n":-1000000000000000000}',
    "3-digit exponent": b"1e400",
    "3-digit exponent, small": b"1e100",
    "NUL after the value": b"1\x00",
}


@native
@pytest.mark.parametrize("row", SURE)
def test_sure_by_hand(row: bytes) -> None:
    orjson.loads(row)
    assert flags([row]) == [True]


@native
@pytest.mark.parametrize("row", list(NOT_SURE.values()), ids=list(NOT_SURE))
def test_not_sure_by_hand(row: bytes) -> None:
    assert flags([row]) == [False]
    assert flags([b"1", row, b"2"]) == [True, False, True]  # one flag per row, in place


# --- the flags of a string column --------------------------------------------------


@native
def test_one_flag_per_string_nulls_and_raw_newlines_not_sure() -> None:
    values = pl.Series(['{"a":1}', None, '{"a":\n1}', '"x\ny"', "", "[1]"])
    assert surely_json(values).tolist() == [True, False, False, False, False, True]
    assert surely_json(pl.Series([], dtype=pl.String)).tolist() == []


@pytest.mark.parametrize("how", ["env", "no module"])
def test_without_the_c_pass_every_row_is_left_to_orjson(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "env":
        monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    else:
        monkeypatch.setattr(payload, "_native_shapes", None)
    got = surely_json(pl.Series(['{"a":1}', "[1]", None, "x"]))
    assert got.dtype == np.bool_
    assert got.tolist() == [False] * 4


@native
def test_the_shapes_come_with_the_flags_unchanged() -> None:
    rows = [b'{"a":1}', b'{"a":2}', b'{"b":"x"}', b'{"a":3.5}', b'{"a":01}', b'{"a":9}']
    ids, firsts, valid = payload._shape_ids(b"\n".join(rows), pl.Series([r.decode() for r in rows]))
    assert ids.tolist() == [0, 0, 1, 2, 0, 0]
    assert firsts.tolist() == [0, 2, 3]
    assert valid.tolist() == [True, True, True, True, False, True]

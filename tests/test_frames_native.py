"""The native read pass (``lithair_lab.formats._native``) against the pure-Python path.

Both must give identical record frames and identical damage on any journal,
damaged or not; the pure path itself is checked against the reference codec
by the other ``test_frames*`` modules, which are also run here once with the
native pass switched off (``LITHAIR_LAB_PURE_PYTHON=1``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import lithair_lab as ll
from lithair_lab.errors import PerformanceWarning
from lithair_lab.formats import batch, native
from lithair_lab.formats.envelope import Envelope
from lithair_lab.formats.jsonlines import frame_line

_native = pytest.importorskip(
    "lithair_lab.formats._native", reason="the C extension is not built here (no compiler at install time)"
)

TESTS = Path(__file__).parent


@contextlib.contextmanager
def pure_python() -> Iterator[None]:
    """Force the pure-Python path (hypothesis tests cannot take the monkeypatch fixture)."""
    before = os.environ.get(native.PURE_PYTHON_ENV)
    os.environ[native.PURE_PYTHON_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[native.PURE_PYTHON_ENV]
        else:
            os.environ[native.PURE_PYTHON_ENV] = before


def decode_both(path: Path, chunk_size: int) -> tuple[tuple[pl.DataFrame, pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]:
    def run() -> tuple[pl.DataFrame, pl.DataFrame]:
        batches = list(batch.read_journal(path, chunk_size=chunk_size))
        records = pl.concat([b.records for b in batches]) if batches else batch.empty_records()
        damage = pl.concat([b.damage for b in batches]) if batches else batch.empty_damage()
        return records, damage

    assert native.load() is not None
    fast = run()
    with pure_python():
        assert native.load() is None
        slow = run()
    return fast, slow


# --- random journals ---------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=12)


@st.composite
def envelope_json(draw: st.DrawFn) -> bytes:
    env = Envelope(
        draw(st.sampled_from(["ProductCreated", "shop::Product::Updated", "OrderDeleted"])),
        draw(texts),
        draw(st.integers(0, 2**40)),
        orjson.dumps(draw(st.dictionaries(texts, st.integers(-(2**63), 2**63 - 1) | texts, max_size=3))).decode(),
        draw(st.none() | texts),
    )
    if draw(st.booleans()):
        env = env.chained(draw(st.none() | st.just("00" * 32)))
    obj = orjson.loads(env.to_json())
    if draw(st.integers(0, 9)) == 0:  # an envelope field of the wrong JSON type
        obj[draw(st.sampled_from(["event_id", "payload", "aggregate_id", "timestamp"]))] = draw(
            st.integers(-(2**63), 2**63 - 1) | st.none() | st.just([1])
        )
    if draw(st.integers(0, 9)) == 0:  # an append_many batch count
        obj[batch.BATCH_FIELD] = draw(st.integers(-1, 3))
    return orjson.dumps(obj)


special_bodies = st.sampled_from(
    [
        b"{}", b"[1,2]", b"5", b'"text"', b"null", b'{"a":1}', b'{"event_type":"only"}',
        b'{"event_type":"T","event_id":"e","timestamp":1,"payload":"\\ud800"}',
        b'{"event_type":"T","event_id":"e","timestamp":1,"payload":"\\u00e9\\\\u"}',
        b'{"event_type":"T","event_id":"e","timestamp":1,"payload":"p","event_id":"twice"}',
        b'{"event_type":"T","event_id":"e","timestamp":1.5,"payload":"p"}',
        b"not json", b'{"x":"\xff"}', b"\xc3", b" ",
    ]
)  # fmt: skip


@st.composite
def journal_line(draw: st.DrawFn) -> bytes:
    body = draw(envelope_json() | special_bodies)
    kind = draw(st.sampled_from(["crc", "crc", "crc", "legacy", "blank", "bad_crc", "upper_crc"]))
    if kind == "blank":
        line = draw(st.sampled_from([b"", b"  ", b"\t", b"\x0b\x0c ", b"\r"])) + b"\n"
    elif kind == "legacy":
        line = body + b"\n"
    else:
        line = frame_line(body)
        if kind == "bad_crc":
            line = b"%08x" % (zlib.crc32(body) ^ 1) + line[8:]
        elif kind == "upper_crc":
            line = line[:8].upper() + line[8:]
    if draw(st.integers(0, 7)) == 0:
        line = line[:-1] + b"\r\n"
    return line


@st.composite
def damaged_journal(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(journal_line(), min_size=1, max_size=25)))
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["flip", "insert", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if what == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif what == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
        else:
            data = data[:at]
    return data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=damaged_journal(), chunk_size=st.sampled_from([1 << 16, 1 << 16, 300]))
def test_native_and_pure_python_agree(tmp_path: Path, data: bytes, chunk_size: int) -> None:
    path = tmp_path / "events.raftlog"
    path.write_bytes(data)
    (records, damage), (pure_records, pure_damage) = decode_both(path, chunk_size)
    assert_frame_equal(records, pure_records)
    assert_frame_equal(damage, pure_damage)


def test_agree_on_a_clean_journal_of_many_chunks(tmp_path: Path) -> None:
    lines = [frame_line(Envelope("ProductCreated", f"e{i}", 1_767_225_600 + i, f'{{"i":{i}}}', f"p{i}").to_json()) for i in range(3000)]
    path = tmp_path / "events.raftlog"
    path.write_bytes(b"".join(lines))
    (records, damage), (pure_records, pure_damage) = decode_both(path, 4096)
    assert records.height == 3000 and damage.is_empty()
    assert records["event_id"].to_list() == [f"e{i}" for i in range(3000)]
    assert_frame_equal(records, pure_records)
    assert_frame_equal(damage, pure_damage)


def test_bad_crc_is_reported_with_line_and_offset(tmp_path: Path) -> None:
    good = frame_line(b'{"event_type":"T","event_id":"a","timestamp":1,"payload":"{}"}')
    bad = b"00000000" + good[8:]
    path = tmp_path / "events.raftlog"
    path.write_bytes(good + b"\n" + bad + good)
    (records, damage), _ = decode_both(path, 1 << 16)
    assert records.height == 2
    assert damage.select("offset", "line", "kind").rows() == [(len(good) + 1, 3, batch.BAD_CRC)]


def test_repeated_key_is_read_as_the_reference_reads_it(tmp_path: Path) -> None:
    # Polars' reader keeps the first of two equal keys, orjson (the reference) the last.
    body = b'{"event_type":"T","event_id":"first","timestamp":1,"payload":"{}","event_id" : "last"}'
    path = tmp_path / "events.raftlog"
    path.write_bytes(frame_line(body) + frame_line(body.replace(b"T", b"U")))
    (records, damage), (pure_records, _) = decode_both(path, 1 << 16)
    assert records["event_id"].to_list() == ["last", "last"] == pure_records["event_id"].to_list()
    assert damage.is_empty()


def test_crlf_lines_are_records(tmp_path: Path) -> None:
    body = b'{"event_type":"T","event_id":"a","timestamp":1,"payload":"{}"}'
    path = tmp_path / "events.raftlog"
    path.write_bytes(frame_line(body + b"\r")[:-1] + b"\n" + body + b"\r\n")
    (records, damage), (pure_records, pure_damage) = decode_both(path, 1 << 16)
    assert records["encoding"].to_list() == ["crc", "legacy"] and damage.is_empty()
    assert_frame_equal(records, pure_records)


# --- the primitives ----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), skip=st.integers(0, 15))
def test_crc32_is_zlibs(data: bytes, skip: int) -> None:
    assert _native.crc32(data[skip:]) == zlib.crc32(data[skip:])


@given(data=st.binary(max_size=300))
def test_count_newlines(data: bytes) -> None:
    assert _native.count_newlines(data) == data.count(b"\n")


def test_crc32_of_a_large_buffer() -> None:
    data = bytes(range(256)) * 4099 + b"tail"
    assert _native.crc32(data) == zlib.crc32(data)


# --- the fallback --------------------------------------------------------------


def test_missing_extension_warns_once_and_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_missing", "No module named 'lithair_lab.formats._native'", raising=False)
    monkeypatch.setattr(native, "_warned", False)
    store = tmp_path / "store"
    store.mkdir()
    (store / "events.raftlog").write_bytes(frame_line(b'{"event_type":"T","event_id":"a","timestamp":1,"payload":"{}"}'))
    with pytest.warns(PerformanceWarning, match="falls back to pure Python"):
        frame = ll.read(store)
    assert frame["event_id"].to_list() == ["a"]
    with contextlib.ExitStack() as stack:  # no second warning
        import warnings

        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        ll.read(store)
    assert not [w for w in caught if issubclass(w.category, PerformanceWarning)]


@pytest.mark.slow
def test_frames_suite_passes_on_the_pure_python_path(tmp_path: Path) -> None:
    """The other read-path tests, once more with the native pass switched off."""
    env = {**os.environ, native.PURE_PYTHON_ENV: "1"}
    files = [str(TESTS / f) for f in ("test_frames.py", "test_frames_damage.py", "test_frames_extras.py")]
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist", "--basetemp", str(tmp_path / "t"), *files],
        env=env, capture_output=True, text=True, cwd=TESTS.parent, timeout=240,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]

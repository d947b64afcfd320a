"""Damage: every kind is reported with file, line/offset and kind; fuzzed files never yield invented records."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from builders import (
    append_bytes,
    binary_dir,
    binary_frames,
    crud_events,
    era_b_dir,
    era_c_dir,
    flip_byte,
    json_lines,
    offsets,
    truncate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from lithair_lab.formats import batch, layout
from lithair_lab.formats.envelope import Envelope


def one_store(tmp_path: Path, data: bytes) -> Path:
    d = tmp_path / "s"
    d.mkdir(exist_ok=True)
    (d / layout.ACTIVE).write_bytes(data)
    return d


def test_bad_crc_raises_with_the_first_problem_and_how_to_see_all(tmp_path: Path) -> None:
    envs = crud_events(5)
    data = json_lines(envs)
    at = offsets(data)[2]
    d = one_store(tmp_path, data)
    flip_byte(d / layout.ACTIVE, at + 30)
    with pytest.raises(ll.DamageError) as e:
        ll.read(d)
    err = e.value
    assert (err.kind, err.line, err.offset, err.path) == ("bad_crc", 3, at, d / layout.ACTIVE)
    assert "on_damage=\"report\"" in str(err) and "ll.read_damage(path)" in str(err)
    frame = ll.read(d, on_damage="report")
    assert frame["event_id"].to_list() == [e.event_id for i, e in enumerate(envs) if i != 2]
    assert frame["seq"].to_list() == [0, 1, 2, 3]
    damage = ll.read_damage(d)
    assert damage.select("store", "file", "offset", "line", "kind").rows() == [("s", "events.raftlog", at, 3, "bad_crc")]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"event_type":', "bad_json"),
        (b'{"x":"\xff\xfe"}', "bad_utf8"),
        (b"hello world", "bad_json"),
        (b'{"event_type":"\\ud800"}', "bad_json"),
    ],
)
def test_undecodable_legacy_lines(tmp_path: Path, line: bytes, kind: str) -> None:
    envs = crud_events(2)
    d = one_store(tmp_path, json_lines(envs[:1]) + line + b"\n" + json_lines(envs[1:]))
    assert ll.read(d, on_damage="report")["event_id"].to_list() == [e.event_id for e in envs]
    damage = ll.read_damage(d)
    assert damage.select("line", "kind").rows() == [(2, kind)]
    assert damage["raw"][0]  # shown safely, never empty


def test_torn_tail_of_a_json_journal(tmp_path: Path) -> None:
    envs = crud_events(3)
    data = json_lines(envs)
    d = one_store(tmp_path, data)
    truncate(d / layout.ACTIVE, len(data) - 20)
    damage = ll.read_damage(d)
    assert damage.select("offset", "line", "kind").rows() == [(offsets(data)[2], 3, "torn_tail")]
    assert ll.read(d, on_damage="report").height == 2


def test_last_line_without_newline_but_whole_is_a_record(tmp_path: Path) -> None:
    envs = crud_events(2)
    d = one_store(tmp_path, json_lines(envs)[:-1])
    assert ll.read(d)["event_id"].to_list() == [e.event_id for e in envs]


def test_binary_frame_past_end_of_file(tmp_path: Path) -> None:
    binary_dir(tmp_path / "b", n=4)
    path = tmp_path / "b" / layout.ACTIVE
    data = path.read_bytes()
    truncate(path, len(data) - 3)
    damage = ll.read_damage(tmp_path / "b")
    assert damage.select("offset", "line", "kind").rows() == [(offsets(data, binary=True)[3], None, "frame_past_eof")]
    assert ll.read(tmp_path / "b", on_damage="report").height == 3


def test_binary_garbage_length_is_reported_not_allocated(tmp_path: Path) -> None:
    envs = crud_events(2)
    data = binary_frames(envs)
    d = one_store(tmp_path, data + (2**62).to_bytes(8, "little") + b"junk")
    damage = ll.read_damage(d)
    assert damage["kind"].to_list() == ["frame_past_eof"]
    assert "garbage length" in damage["detail"][0]
    assert ll.read(d, on_damage="report").height == 2


def test_binary_bad_frame_body_keeps_the_framing(tmp_path: Path) -> None:
    envs = crud_events(3)
    data = bytearray(binary_frames(envs))
    second = offsets(bytes(data), binary=True)[1]
    data[second + 8] = 0xFE  # an invalid varint tag where the event type's length starts
    d = one_store(tmp_path, bytes(data))
    assert ll.read_damage(d).select("offset", "kind").rows() == [(second, "bad_frame")]
    assert ll.read(d, on_damage="report")["event_id"].to_list() == [envs[0].event_id, envs[2].event_id]


def test_partial_frame_header_is_a_torn_tail(tmp_path: Path) -> None:
    data = binary_frames(crud_events(2))
    d = one_store(tmp_path, data + b"\x05\x00")
    assert ll.read_damage(d).select("offset", "kind").rows() == [(len(data), "torn_tail")]


def test_oversized_line_is_reported_and_skipped_without_loading(tmp_path: Path) -> None:
    envs = crud_events(2)
    big = b'{"pad":"' + b"x" * 5000 + b'"}\n'
    d = one_store(tmp_path, json_lines(envs[:1]) + big + json_lines(envs[1:]))
    frame = ll.read(d, on_damage="report", chunk_size=512, max_record_size=1024)
    assert frame["event_id"].to_list() == [e.event_id for e in envs]
    assert frame["line"].to_list() == [1, 3]
    damage = ll.read_damage(d, chunk_size=512, max_record_size=1024)
    assert damage.select("line", "kind").rows() == [(2, "oversized_record")]


def test_oversized_binary_frame_is_skipped(tmp_path: Path) -> None:
    envs = crud_events(3)
    fat = Envelope("Big", "big", 1, "x" * 4000)
    d = one_store(tmp_path, binary_frames([envs[0], fat, envs[1]]))
    frame = ll.read(d, on_damage="report", chunk_size=256, max_record_size=1024)
    assert frame["event_id"].to_list() == [envs[0].event_id, envs[1].event_id]
    assert ll.read_damage(d, chunk_size=256, max_record_size=1024)["kind"].to_list() == ["oversized_record"]


def test_tampered_checkpoint(tmp_path: Path) -> None:
    written = era_c_dir(tmp_path / "c", n=6, covered=3, stale=False)
    journal = tmp_path / "c" / written.places[0][0]
    flip_byte(journal, 40)  # inside the checkpoint's prefix: the journal changed after the checkpoint
    with pytest.raises(ll.CheckpointError, match="the journal was changed after the checkpoint"):
        ll.read(tmp_path / "c")
    damage = ll.read_damage(tmp_path / "c")
    assert damage["kind"].to_list()[:1] == ["bad_checkpoint"]
    assert "bad_crc" in damage["kind"].to_list()  # the flipped record itself
    assert ll.read(tmp_path / "c", on_damage="report").height == 5  # the named journal is still read


def test_checkpoint_of_a_truncated_journal(tmp_path: Path) -> None:
    written = era_c_dir(tmp_path / "c", n=6, covered=3, stale=False)
    truncate(tmp_path / "c" / written.places[0][0], 10)
    with pytest.raises(ll.CheckpointError, match="shorter than the checkpoint's offset"):
        ll.read(tmp_path / "c")


def test_a_missing_segment_is_reported(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "b", n=12, segments=3)
    (tmp_path / "b" / "events.raftlog.2").unlink()
    with pytest.raises(ll.DamageError, match="missing_segment"):
        ll.read(tmp_path / "b")
    assert ll.read(tmp_path / "b", on_damage="report").height == 9


def test_records_before_the_first_damage_are_not_lost_in_report_mode(tmp_path: Path) -> None:
    envs = crud_events(40)
    data = json_lines(envs)
    d = one_store(tmp_path, data)
    append_bytes(d / layout.ACTIVE, b"\x00\x01garbage\n")
    frame = ll.read(d, on_damage="report", chunk_size=300)
    assert frame["event_id"].to_list() == [e.event_id for e in envs]


# --- fuzz: flip bytes, truncate ------------------------------------------------


def _check_never_invents(d: Path, written: list[tuple[int, Envelope]]) -> None:
    """Every returned record is one that was written, at the offset it was written at."""
    by_offset = dict(written)
    frame = ll.read(d, on_damage="report", chunk_size=512)
    damage = ll.read_damage(d, chunk_size=512)
    assert damage.schema == pl.Schema(ll.frames.damage.DAMAGE_SCHEMA)
    for row in frame.iter_rows(named=True):
        env = by_offset.get(row["offset"])
        if row["encoding"] == "legacy" or row["record_kind"] == "raw":
            raise AssertionError(f"a flipped CRC line came back as a legacy/raw record: {row}")
        assert env is not None, f"record at {row['offset']} was never written"
        assert (row["event_id"], row["payload"], row["event_hash"]) == (env.event_id, env.payload, env.event_hash)
    assert frame.height + damage.height >= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_json_flips_and_truncation(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    envs = crud_events(12)
    raw = json_lines(envs)
    d = tmp_path_factory.mktemp("fuzz")
    path = d / layout.ACTIVE
    path.write_bytes(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        flip_byte(path, at, data.draw(st.integers(1, 255)))
    if data.draw(st.booleans()):
        truncate(path, data.draw(st.integers(0, len(raw))))
    if not path.read_bytes():
        assert ll.read(d).is_empty()
        return
    try:
        _check_never_invents(d, list(zip(offsets(raw), envs, strict=True)))
    except ll.LithairLabError:
        pass  # a precise, typed refusal is an acceptable answer


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_binary_flips_and_truncation(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    envs = crud_events(8)
    raw = binary_frames(envs)
    d = tmp_path_factory.mktemp("fuzzb")
    path = d / layout.ACTIVE
    path.write_bytes(raw)
    flipped: set[int] = set()
    for _ in range(data.draw(st.integers(0, 2))):
        at = data.draw(st.integers(0, len(raw) - 1))
        flip_byte(path, at, data.draw(st.integers(1, 255)))
        flipped.add(at)
    if data.draw(st.booleans()):
        truncate(path, data.draw(st.integers(0, len(raw))))
    frame = ll.read(d, on_damage="report", chunk_size=128)
    ll.read_damage(d, chunk_size=128)
    # Binary frames carry no checksum: a flip inside a string may still decode. What must
    # hold is that untouched frames come back exactly and nothing is read past the end.
    starts = offsets(raw, binary=True)
    ends = [*starts[1:], len(raw)]
    size = path.stat().st_size
    for row in frame.iter_rows(named=True):
        assert row["offset"] < size
        if row["offset"] in starts:
            i = starts.index(row["offset"])
            if not any(starts[i] <= f < ends[i] for f in flipped) and ends[i] <= size:
                assert row["event_id"] == envs[i].event_id and row["payload"] == envs[i].payload


# --- property: random payloads round-trip, fast path == reference --------------

# Unicode and control characters (st.text), big numbers, deep nesting.
payload_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**200), 2**200) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=40, deadline=None)
@given(
    payloads=st.lists(payload_values, min_size=1, max_size=6),
    text=st.text(),
    agg=st.none() | st.text(max_size=10),
    ts=st.integers(0, 253_402_300_000),  # Python datetimes end in year 9999
)
def test_random_payloads_round_trip_json_and_binary(payloads: list[object], text: str, agg: str | None, ts: int) -> None:
    envs = []
    prev = None
    for i, p in enumerate(payloads):
        payload = json.dumps(p, ensure_ascii=False)  # the stdlib writes integers of any size
        env = Envelope(f"T{text[:5]}::Thing{i % 2}Created", f"{text}{i}", ts + i, payload, agg).chained(prev)
        prev = env.event_hash
        envs.append(env)
    for data, decode in (
        (json_lines(envs), lambda b: batch.decode_json(b, file="f")),
        (json_lines(envs, era="B"), lambda b: batch.decode_json(b, file="f")),
        (binary_frames(envs), lambda b: batch.decode_binary(b, file="f")[:2]),
    ):
        records, damage = decode(data)
        assert damage.is_empty()
        got = [
            Envelope(r["event_type"], r["event_id"], int(r["timestamp"].timestamp()), r["payload"], r["aggregate_id"],
                     r["event_hash"], r["previous_hash"])
            for r in records.iter_rows(named=True)
        ]  # fmt: skip
        assert got == envs
        assert records["short_type"].to_list() == [f"Thing{i % 2}Created" for i in range(len(envs))]
        assert records["model"].to_list() == [f"Thing{i % 2}" for i in range(len(envs))]


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(st.binary(max_size=40) | st.sampled_from([b"{}", b"[]", b"5", b'{"event_type":"a"}']), max_size=8))
def test_vectorized_decoder_agrees_with_the_per_record_codec(lines: list[bytes]) -> None:
    data = b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines)
    records, damage = batch.decode_json(data, file="f")
    expected_records, expected_damage = 0, 0
    for line in data.split(b"\n")[:-1]:
        if not line.strip(b" \t\r\n\x0b\x0c"):
            continue
        _, body, ok = ll.formats.jsonlines.split_line(line)
        if not ok:
            expected_damage += 1
            continue
        env, raw, bad = batch.decode_json_record(body)
        if bad:
            expected_damage += 1
        else:
            expected_records += 1
    assert (records.height, damage.height) == (expected_records, expected_damage)


def test_checkpoint_left_behind_by_a_rotation_crash_is_trusted(tmp_path: Path) -> None:
    """The engine's checkpoint of `events.raftlog` with `segments: k` may cover the start of `.k+1`."""
    from builders import checkpoint_bytes

    envs = crud_events(5)
    d = tmp_path / "s"
    d.mkdir()
    rotated = json_lines(envs[:3])
    (d / "events.raftlog.1").write_bytes(rotated)  # renamed by rotation; the re-checkpoint never happened
    (d / layout.ACTIVE).write_bytes(json_lines(envs[3:]))
    state = {"format": "lithair_lab.state/1", "events": 2, "segments": 0, "models": {}, "versions": {}}
    (d / layout.SNAPSHOT).write_bytes(checkpoint_bytes(layout.ACTIVE, rotated, envs[:2], state))
    assert ll.read(d)["event_id"].to_list() == [e.event_id for e in envs]
    state["segments"] = None  # without the engine's hint the same manifest is not trusted
    (d / layout.SNAPSHOT).write_bytes(checkpoint_bytes(layout.ACTIVE, rotated, envs[:2], state))
    with pytest.raises(ll.CheckpointError):
        ll.read(d)


def _batch(envs: list[Envelope]) -> list[Envelope]:
    """Mark envelopes as one `append_many` batch, the way the engine does (extra field)."""
    n = len(envs)
    return [
        Envelope(e.event_type, e.event_id, e.timestamp, e.payload, e.aggregate_id, e.event_hash, e.previous_hash,
                 {batch.BATCH_FIELD: n - 1 - i} if i < n - 1 else {})
        for i, e in enumerate(envs)
    ]  # fmt: skip


def test_an_unfinished_append_many_batch_at_the_end_is_a_torn_tail(tmp_path: Path) -> None:
    envs = crud_events(6)
    whole = json_lines(envs[:1]) + json_lines(_batch(envs[1:4]))
    cut = json_lines(_batch(envs[4:6] + crud_events(1, t0=0))[:2])  # 2 of a batch of 3 reached the file
    d = one_store(tmp_path, whole + cut)
    assert ll.read(d, on_damage="report")["event_id"].to_list() == [e.event_id for e in envs[:4]]
    damage = ll.read_damage(d)
    assert damage.select("offset", "line", "kind").rows() == [(len(whole), 5, "torn_tail")]
    assert "`append_many` batch cut short" in damage["detail"][0]
    one_store(tmp_path, whole)  # the same batches, whole: every record
    assert ll.read(d)["event_id"].to_list() == [e.event_id for e in envs[:4]]


def test_engine_append_many_batches_read_whole(tmp_path: Path) -> None:
    with ll.open_store(tmp_path / "e") as store:
        store.append_many([{"event_type": "ProductCreated", "payload": {"id": f"p{i}"}, "aggregate_id": f"p{i}"} for i in range(5)])
    frame = ll.read(tmp_path / "e")
    assert frame["aggregate_id"].to_list() == [f"p{i}" for i in range(5)]

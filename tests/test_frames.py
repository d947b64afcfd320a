"""The read path over every FORMATS.md variant: records, fields, order, bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from builders import (
    T0,
    Written,
    binary_dir,
    binary_frames,
    crud_events,
    era_a_dir,
    era_b_dir,
    era_c_dir,
    json_lines,
    multi_file_dir,
    parent_dir,
    unframed_binary_dir,
)
from worked import WORKED_FRAME, WORKED_LINE

import lithair_lab as ll
from lithair_lab.formats import layout
from lithair_lab.formats.envelope import Envelope
from lithair_lab.formats.schema import DAMAGE_SCHEMA, EVENT_SCHEMA


def pen() -> Envelope:
    return Envelope(
        "ProductCreated",
        "Product:Created:p1:6f1c2a1e-0000-4000-8000-000000000001",
        1767225600,
        '{"id":"p1","name":"Pen","price":1.5}',
        "p1",
    ).chained(None)


def assert_frame_is(frame: pl.DataFrame, written: Written, *, store: str, encoding: str) -> None:
    """Every record and field of ``frame`` is exactly what was written, in order."""
    assert frame.schema == pl.Schema(EVENT_SCHEMA)
    assert frame.height == len(written.records)
    for seq, (row, rec, (file, offset, line)) in enumerate(
        zip(frame.iter_rows(named=True), written.records, written.places, strict=True)
    ):
        assert (row["seq"], row["store"], row["file"], row["offset"], row["line"]) == (seq, store, file, offset, line)
        assert row["encoding"] == encoding
        if isinstance(rec, str):
            assert row["record_kind"] == "raw"
            assert row["payload"] == rec
            assert row["event_type"] is None and row["event_id"] is None
            continue
        assert row["record_kind"] == "envelope"
        got = Envelope(
            row["event_type"], row["event_id"], int(row["timestamp"].timestamp()), row["payload"],
            row["aggregate_id"], row["event_hash"], row["previous_hash"],
        )  # fmt: skip
        assert got == rec
        assert row["short_type"] == rec.event_type.rsplit("::", 1)[-1]


# --- worked examples -------------------------------------------------------


def test_worked_line_reads_field_for_field(tmp_path: Path) -> None:
    (tmp_path / layout.ACTIVE).write_bytes(WORKED_LINE)
    row = ll.read(tmp_path).row(0, named=True)
    assert row == {
        "seq": 0, "store": tmp_path.name, "file": "events.raftlog", "offset": 0, "line": 1, "encoding": "crc",
        "record_kind": "envelope", "event_type": "ProductCreated", "short_type": "ProductCreated",
        "model": "Product", "op": "Created", "event_id": pen().event_id,
        "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "aggregate_id": "p1",
        "payload": '{"id":"p1","name":"Pen","price":1.5}', "event_hash": pen().event_hash, "previous_hash": None,
    }  # fmt: skip


def test_builders_write_the_worked_examples() -> None:
    assert json_lines([pen()]) == WORKED_LINE
    assert json_lines([pen()], era="B")[:9] == b"c9ffe51b:"
    frame = Envelope("T", "e1", 1700000000, "{}").chained(None)
    assert binary_frames([frame]) == WORKED_FRAME


def test_worked_binary_frame_is_detected_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / layout.ACTIVE).write_bytes(WORKED_FRAME)
    row = ll.read(tmp_path).row(0, named=True)
    assert (row["encoding"], row["event_type"], row["event_id"], row["payload"], row["line"]) == (
        "binary", "T", "e1", "{}", None,
    )  # fmt: skip
    assert row["timestamp"] == dt.datetime.fromtimestamp(1700000000, dt.UTC)


# --- every era ---------------------------------------------------------------


def test_era_a_raw_lines_are_kept_as_raw(tmp_path: Path) -> None:
    written = era_a_dir(tmp_path / "a")
    assert_frame_is(ll.read(tmp_path / "a"), written, store="a", encoding="legacy")


@pytest.mark.parametrize("crc", [True, False])
def test_era_b_segments_in_order_with_paths_and_repeating_ids(tmp_path: Path, crc: bool) -> None:
    written = era_b_dir(tmp_path / "b", n=14, segments=3, crc=crc)
    frame = ll.read(tmp_path / "b")
    assert_frame_is(frame, written, store="b", encoding="crc" if crc else "legacy")
    assert frame["file"].unique(maintain_order=True).to_list() == [
        "events.raftlog.1", "events.raftlog.2", "events.raftlog.3", "events.raftlog",
    ]  # fmt: skip
    assert frame["event_id"].n_unique() < frame.height  # Era B ids repeat; none is dropped
    assert frame["event_hash"].null_count() == frame.height
    assert set(frame["model"]) == {"Product"}


def test_era_c_reads_the_checkpoint_selected_journal_and_reports_stale_files(tmp_path: Path) -> None:
    written = era_c_dir(tmp_path / "c", n=10, covered=4)
    name = written.places[0][0]
    assert_frame_is(ll.read(tmp_path / "c"), written, store="c", encoding="crc")
    damage = ll.read_damage(tmp_path / "c")
    assert damage.schema == pl.Schema(DAMAGE_SCHEMA)
    assert sorted(zip(damage["kind"], damage["file"], strict=True)) == [
        ("leftover_tmp", "native-snapshot-00000000-0000-0000-0000-000000000def.tmp"),
        ("stale_file", "events.raftlog"),
    ]
    assert name in damage.filter(pl.col("kind") == "stale_file")["detail"][0]


@pytest.mark.parametrize("era", ["B", "C"])
def test_binary_journals(tmp_path: Path, era: str) -> None:
    written = binary_dir(tmp_path / "bin", n=9, era=era)
    assert_frame_is(ll.read(tmp_path / "bin"), written, store="bin", encoding="binary")


def test_parent_directory_of_stores_adds_the_store_column(tmp_path: Path) -> None:
    written = parent_dir(tmp_path / "data")
    frame = ll.read(tmp_path / "data")
    assert frame["store"].unique(maintain_order=True).to_list() == ["products", "users"]
    assert_frame_is(frame.filter(pl.col("store") == "products"), written["products"], store="products", encoding="crc")
    assert_frame_is(frame.filter(pl.col("store") == "users"), written["users"], store="users", encoding="binary")


def test_multi_file_mode_subfolders_are_stores(tmp_path: Path) -> None:
    written = multi_file_dir(tmp_path / "orders")
    frame = ll.read(tmp_path / "orders")
    assert frame["store"].unique(maintain_order=True).to_list() == list(written)
    for store, w in written.items():
        assert_frame_is(frame.filter(pl.col("store") == store), w, store=store, encoding="crc")
    from_parent = ll.read(tmp_path)["store"].unique(maintain_order=True).to_list()
    assert from_parent == [f"orders/{s}" for s in written]
    snap = ll.read_snapshot(tmp_path / "orders")
    assert snap.filter(pl.col("key") == "global")["data"].to_list() == ['{"count":3}']


def test_one_journal_file_can_be_read_alone(tmp_path: Path) -> None:
    written = era_b_dir(tmp_path / "b", n=9, segments=2)
    frame = ll.read(tmp_path / "b" / "events.raftlog.2")
    assert frame["event_id"].to_list() == [e.event_id for e in written.envelopes[3:6]]


def test_lines_crossing_chunk_boundaries_decode_the_same(tmp_path: Path) -> None:
    written = era_b_dir(tmp_path / "b", n=30, segments=1)
    whole = ll.read(tmp_path / "b")
    for chunk in (1, 7, 100, 333):
        assert ll.read(tmp_path / "b", chunk_size=chunk).equals(whole)
    assert whole.height == len(written.records)
    binary_dir(tmp_path / "bin", n=12)
    assert ll.read(tmp_path / "bin", chunk_size=5).equals(ll.read(tmp_path / "bin"))


def test_blank_lines_are_not_records_and_keep_line_numbers(tmp_path: Path) -> None:
    envs = crud_events(3)
    (tmp_path / layout.ACTIVE).write_bytes(b"\n".join([json_lines(envs[:1]), json_lines(envs[1:2]) + b"  \n"]) + json_lines(envs[2:]))
    frame = ll.read(tmp_path)
    assert frame["line"].to_list() == [1, 3, 5]
    assert frame["event_id"].to_list() == [e.event_id for e in envs]


def test_lazy_scan_pushes_down_projection_filter_and_limit(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "b", n=30, segments=2)
    lf = ll.scan(tmp_path / "b", chunk_size=200)
    assert lf.head(4).collect()["seq"].to_list() == [0, 1, 2, 3]
    got = lf.filter(pl.col("op") == "Deleted").select("seq", "op").collect()
    full = ll.read(tmp_path / "b").filter(pl.col("op") == "Deleted").select("seq", "op")
    assert got.equals(full) and got.height > 0
    counts = lf.group_by("short_type").len().sort("short_type").collect(engine="streaming")
    assert counts["len"].sum() == 30


def test_a_frame_passes_through_scan(tmp_path: Path) -> None:
    era_a_dir(tmp_path / "a")
    frame = ll.read(tmp_path / "a")
    assert ll.scan(frame).collect().equals(frame)


def test_timestamps_are_utc_datetimes(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "b", n=3, segments=0)
    ts = ll.read(tmp_path / "b")["timestamp"]
    assert ts.dtype == pl.Datetime("us", "UTC")
    assert ts.to_list()[1] == dt.datetime.fromtimestamp(T0 + 60, dt.UTC)


# --- bad input ----------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ll.FormatError, match="no such file or directory"):
        ll.scan(tmp_path / "nope")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ll.FormatError, match="is an empty directory"):
        ll.scan(tmp_path)


def test_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ll.FormatError, match="is a file, not a data directory"):
        ll.scan(tmp_path / "notes.txt")


def test_a_directory_of_unrelated_files(tmp_path: Path) -> None:
    for name in ("a.csv", "b.png"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ll.FormatError, match=r"holds no Lithair data directory \(found `a.csv`, `b.png`\)"):
        ll.scan(tmp_path)


def test_unknown_damage_policy_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`on_damage` must be one of 'raise', 'report', got 'skip'"):
        ll.scan(tmp_path, on_damage="skip")  # type: ignore[arg-type]


def test_unframed_binary_is_reported_clearly(tmp_path: Path) -> None:
    unframed_binary_dir(tmp_path / "u")
    with pytest.raises(ll.DamageError, match="unframed_binary") as e:
        ll.read(tmp_path / "u")
    assert "newlines without length prefixes" in str(e.value)
    assert ll.read(tmp_path / "u", on_damage="report").is_empty()
    assert ll.read_damage(tmp_path / "u")["kind"].to_list() == ["unframed_binary"]


def test_an_empty_journal_is_an_empty_frame(tmp_path: Path) -> None:
    (tmp_path / layout.ACTIVE).write_bytes(b"")
    frame = ll.read(tmp_path)
    assert frame.is_empty() and frame.schema == pl.Schema(EVENT_SCHEMA)


def test_a_store_with_only_meta_has_no_events(tmp_path: Path) -> None:
    (tmp_path / layout.META).write_bytes(b"{}")
    assert ll.read(tmp_path).is_empty()


def test_a_source_that_is_not_a_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="`source` must be a path"):
        ll.scan([tmp_path])  # type: ignore[arg-type]

"""Payload columns, snapshots/meta/dedup, the hash chain, follow, and directories the engine wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from builders import (
    T0,
    append_bytes,
    binary_frames,
    crud_events,
    era_b_dir,
    era_c_dir,
    json_lines,
)

import lithair_lab as ll
from lithair_lab.formats import layout
from lithair_lab.formats.envelope import Envelope
from lithair_lab.formats.jsonlines import frame_line

FIXTURES = Path(__file__).parent / "fixtures" / "lithair-upstream" / "schema"


def events_dir(tmp_path: Path, payloads: list[str], etype: str = "ProductCreated") -> Path:
    envs = [Envelope(etype, f"e{i}", T0 + i, p, f"k{i}") for i, p in enumerate(payloads)]
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.ACTIVE).write_bytes(json_lines(envs))
    return d


# --- payload columns ------------------------------------------------------------


def test_schema_comes_from_every_row_so_a_late_field_is_kept(tmp_path: Path) -> None:
    payloads = ['{"id":"a","price":1}'] * 500 + ['{"id":"b","price":2.5,"tags":["x"],"dims":{"w":1,"h":2}}']
    d = events_dir(tmp_path, payloads)
    schema = ll.payload_schema(d, event_type="ProductCreated")
    assert schema == pl.Schema(
        {"id": pl.String, "price": pl.Float64, "tags": pl.List(pl.String), "dims": pl.Struct({"w": pl.Int64, "h": pl.Int64})}
    )
    frame = ll.decode_payloads(d, model="Product")
    assert frame.height == 501
    assert frame["dims"].to_list()[-1] == {"w": 1, "h": 2}
    assert frame["price"].to_list()[-2:] == [1.0, 2.5]


def test_conflicting_types_are_reported_not_guessed(tmp_path: Path) -> None:
    d = events_dir(tmp_path, ['{"id":"a","stock":1}', '{"id":"b","stock":"many"}', '{"id":"c","stock":null}'])
    with pytest.raises(ll.SchemaConflictError) as e:
        ll.decode_payloads(d)
    assert e.value.field == "stock"
    assert e.value.types == {"number": [0], "string": [1]}
    assert "pass `schema={...}`" in str(e.value)


def test_object_versus_scalar_conflict_is_reported(tmp_path: Path) -> None:
    d = events_dir(tmp_path, ['{"dims":1}', '{"dims":{"w":1}}'])
    with pytest.raises(ll.SchemaConflictError, match="`dims`"):
        ll.payload_schema(d)


def test_caller_schema_is_used_as_given(tmp_path: Path) -> None:
    d = events_dir(tmp_path, ['{"id":"a","stock":1}', '{"id":"b","stock":2}'])
    frame = ll.decode_payloads(d, schema={"stock": pl.Int32})
    assert frame["stock"].dtype == pl.Int32
    assert "id" not in frame.columns or frame["id"].dtype == pl.String


def test_colliding_field_names_are_prefixed(tmp_path: Path) -> None:
    d = events_dir(tmp_path, ['{"timestamp":"yesterday","event_id":7,"name":"n"}'])
    frame = ll.decode_payloads(d)
    assert frame["payload.timestamp"].to_list() == ["yesterday"]
    assert frame["payload.event_id"].to_list() == [7]
    assert frame["event_id"].to_list() == ["e0"]
    assert frame["timestamp"].dtype == pl.Datetime("us", "UTC")


def test_model_schema_file_fixes_fields_and_order(tmp_path: Path) -> None:
    d = events_dir(tmp_path, ['{"id":"a","name":"Pen","price_cents":150,"extra":true}'])
    (d / ".schema").mkdir()
    shutil.copy(FIXTURES / "Product_v1.json", d / ".schema" / "Product.json")
    frame = ll.decode_payloads(d, model="Product")
    assert frame.columns[-8:] == ["id", "name", "description", "price_cents", "stock", "active", "created_at", "extra"]
    assert frame["description"].to_list() == [None]
    assert frame["extra"].to_list() == [True]  # a field the schema does not name is kept, not dropped


def test_era_b_full_paths_select_by_short_type(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "b", n=9, segments=1)
    created = ll.decode_payloads(tmp_path / "b", event_type="ProductCreated")
    assert created.height == 3
    assert created["name"].to_list() == ["item 0", "item 1", "item 2"]
    full = ll.decode_payloads(tmp_path / "b", event_type="my_app::models::ProductCreated")
    assert full.equals(created)


# --- snapshots, meta, dedup ----------------------------------------------------


def test_checkpoint_state_as_entities(tmp_path: Path) -> None:
    era_c_dir(tmp_path / "c", n=8, covered=3)
    snap = ll.read_snapshot(tmp_path / "c")
    assert snap.select("kind", "key", "covered_events").rows() == [("checkpoint", "products", 3)]
    assert orjson.loads(snap["data"][0]) == {
        "p0": {"id": "p0", "name": "item 0", "price": 1.5, "stock": 0},
        "p1": {"id": "p1", "name": "item 1", "price": 2.5, "stock": 1},
        "p2": {"id": "p2", "name": "item 2", "price": 3.5, "stock": 2},
    }


def test_legacy_snapshots_both_shapes(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.SNAPSHOT).write_bytes(b'{"p1":{"id":"p1","n":1},"p2":{"id":"p2","n":2}}')
    snap = ll.read_snapshot(d)
    assert snap.select("kind", "key", "data").rows() == [
        ("legacy", "p1", '{"id":"p1","n":1}'), ("legacy", "p2", '{"id":"p2","n":2}'),
    ]  # fmt: skip
    assert ll.decode_payloads(snap, column="data")["n"].to_list() == [1, 2]
    (d / layout.SNAPSHOT).write_bytes(b'{"Product":{"version":3,"last_updated":1767225600,"data":{"p1":{"id":"p1"}}}}')
    row = ll.read_snapshot(d).row(0, named=True)
    assert (row["key"], row["version"], row["data"]) == ("Product", 3, '{"p1":{"id":"p1"}}')
    assert row["last_updated"].year == 2026


def test_engine_checkpoint_state_names_models(tmp_path: Path) -> None:
    with ll.open_store(tmp_path / "e") as store:
        store.append("ProductCreated", {"id": "p1", "name": "Pen"}, aggregate_id="p1")
        store.append("UserCreated", {"id": "u1"}, aggregate_id="u1")
        store.snapshot()
    snap = ll.read_snapshot(tmp_path / "e")
    assert sorted(snap.select("model", "key").rows()) == [("Product", "p1"), ("User", "u1")]
    assert set(snap["covered_events"]) == {2}


def test_meta(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "b", n=3, segments=0)
    assert ll.read_meta(tmp_path / "b") == {
        "created_at": T0, "description": "Lithair event-sourced database", "format": "lithair-db", "version": "1.0.0",
    }  # fmt: skip
    era_a = tmp_path / "a"
    era_a.mkdir()
    (era_a / layout.ACTIVE).write_bytes(b"")
    with pytest.raises(ll.FormatError, match="has no `meta.raftmeta`"):
        ll.read_meta(era_a)
    assert set(ll.read_meta(tmp_path)) == {"b"}  # a parent: {store: meta} for stores that have one


def test_dedup_ids_and_torn_last_id(tmp_path: Path) -> None:
    written = era_b_dir(tmp_path / "b", n=4, segments=0)
    dedup = ll.read_dedup(tmp_path / "b")
    assert dedup["event_id"].to_list() == [e.event_id for e in written.envelopes]
    assert dedup["line"].to_list() == [1, 2, 3, 4]
    append_bytes(tmp_path / "b" / layout.DEDUP, b"Product:Upd")
    with pytest.warns(ll.errors.LithairLabWarning, match="torn write"):
        assert ll.read_dedup(tmp_path / "b").height == 4


# --- hash chain -------------------------------------------------------------------


def test_intact_chain_has_no_problems(tmp_path: Path) -> None:
    era_c_dir(tmp_path / "c", n=12)
    assert ll.verify_chain(tmp_path / "c").is_empty()
    assert ll.verify_chain(ll.read(tmp_path / "c")).is_empty()


def test_invalid_hash_and_broken_link(tmp_path: Path) -> None:
    envs = crud_events(5)
    forged = Envelope(envs[2].event_type, envs[2].event_id, envs[2].timestamp, '{"id":"p2","price":0}',
                      envs[2].aggregate_id, envs[2].event_hash, envs[2].previous_hash)  # fmt: skip
    relinked = Envelope(envs[4].event_type, envs[4].event_id, envs[4].timestamp, envs[4].payload,
                        envs[4].aggregate_id, None, None).chained("00" * 32)  # fmt: skip
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.ACTIVE).write_bytes(json_lines([envs[0], envs[1], forged, envs[3], relinked]))
    problems = ll.verify_chain(d)
    assert problems.select("seq", "problem").rows() == [(2, "invalid_hash"), (4, "broken_link")]
    assert problems["expected"][1] == envs[3].event_hash


def test_a_record_without_hash_resets_the_chain(tmp_path: Path) -> None:
    a = crud_events(2)
    legacy = Envelope("X", "x", T0, "{}")
    b = crud_events(2, t0=T0 + 999)  # a new chain from genesis
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.ACTIVE).write_bytes(json_lines([*a, legacy, *b]))
    assert ll.verify_chain(d).is_empty()


# --- follow --------------------------------------------------------------------------


def test_follow_returns_only_new_whole_records(tmp_path: Path) -> None:
    envs = crud_events(6)
    d = tmp_path / "s"
    d.mkdir()
    path = d / layout.ACTIVE
    path.write_bytes(json_lines(envs[:2]))
    f = ll.follow(d)
    assert f.poll()["event_id"].to_list() == [e.event_id for e in envs[:2]]
    assert f.poll().is_empty()
    line = json_lines(envs[2:3])
    append_bytes(path, line[:25])  # a record still being written
    assert f.poll().is_empty()
    append_bytes(path, line[25:] + json_lines(envs[3:4]))
    got = f.poll()
    assert got["event_id"].to_list() == [envs[2].event_id, envs[3].event_id]
    assert got["seq"].to_list() == [2, 3]
    assert got["line"].to_list() == [3, 4]


def test_follow_is_correct_across_rotation(tmp_path: Path) -> None:
    envs = crud_events(6)
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.ACTIVE).write_bytes(json_lines(envs[:2]))
    f = ll.follow(d)
    assert f.poll().height == 2
    append_bytes(d / layout.ACTIVE, json_lines(envs[2:3]))
    (d / layout.ACTIVE).rename(d / "events.raftlog.1")  # rotation after an append not yet seen
    (d / layout.ACTIVE).write_bytes(json_lines(envs[3:5]))
    assert f.poll()["event_id"].to_list() == [e.event_id for e in envs[2:5]]
    assert f.poll().is_empty()


def test_follow_binary_partial_frame_waits(tmp_path: Path) -> None:
    envs = crud_events(3)
    data = binary_frames(envs)
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.ACTIVE).write_bytes(data[:-10])
    f = ll.follow(d)
    assert f.poll().height == 2
    append_bytes(d / layout.ACTIVE, data[-10:])
    assert f.poll()["event_id"].to_list() == [envs[2].event_id]


def test_follow_reports_damage_when_asked(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / layout.ACTIVE).write_bytes(frame_line(b'{"a":1}')[:-3] + b"0}\n")
    f = ll.follow(d, on_damage="report")
    assert f.poll().is_empty()
    assert f.damage["kind"].to_list() == ["bad_crc"]
    with pytest.raises(ll.DamageError):
        ll.follow(d).poll()


# --- directories written by the engine ---------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_engine_directories_round_trip(tmp_path: Path, binary: bool) -> None:
    d = tmp_path / "e"
    appended = []
    with ll.open_store(d, binary=binary, max_log_file_size=600) as store:
        for i in range(12):
            appended.append(store.append("ProductUpdated", {"id": f"p{i % 3}", "n": i, "s": "é\n\u2028"}, aggregate_id=f"p{i % 3}"))
    frame = ll.read(d)
    assert frame["file"].n_unique() > 1  # rotated into segments
    got = [
        Envelope(r["event_type"], r["event_id"], int(r["timestamp"].timestamp()), r["payload"], r["aggregate_id"],
                 r["event_hash"], r["previous_hash"])
        for r in frame.iter_rows(named=True)
    ]  # fmt: skip
    assert got == [Envelope(*(getattr(e, k) for k in ("event_type", "event_id", "timestamp", "payload", "aggregate_id", "event_hash", "previous_hash"))) for e in appended]
    assert ll.verify_chain(frame).is_empty()
    assert ll.read_damage(d).filter(~pl.col("kind").is_in(["stale_file", "leftover_tmp"])).is_empty()
    assert ll.decode_payloads(d, model="Product")["n"].to_list() == list(range(12))


def test_pretty_printed_and_empty_payloads_decode_too(tmp_path: Path) -> None:
    d = events_dir(tmp_path, ['{\n  "a": 1,\n  "b": {"c": "x"}\n}', "{}", '{"a":2}'])
    frame = ll.decode_payloads(d)
    assert frame["a"].to_list() == [1, None, 2]
    assert frame["b"].to_list() == [{"c": "x"}, None, None]


field_types = {
    "i": st.integers(-(2**63), 2**63 - 1),
    "f": st.floats(-1e300, 1e300, allow_nan=False, allow_subnormal=False),
    "s": st.text(max_size=12),
    "b": st.booleans(),
    "o": st.fixed_dictionaries({"x": st.integers(-5, 5), "y": st.text(max_size=3)}),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_payload_columns_round_trip(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    kinds = data.draw(st.lists(st.sampled_from(sorted(field_types)), min_size=1, max_size=4))
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries({}, optional={f"{k}{n}": field_types[k] | st.none() for n, k in enumerate(kinds)}),
            min_size=1,
            max_size=8,
        )
    )
    d = events_dir(tmp_path_factory.mktemp("p"), [orjson.dumps(r).decode() for r in rows])
    frame = ll.decode_payloads(d)
    for name in {k for r in rows for k in r}:
        got = frame[name].to_list()
        want = [r.get(name) for r in rows]
        assert got == want, name

"""Restore through the engine's importer: any source, every record kept, repeated ids included."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from builders import T0, binary_dir, binary_frames, crud_events, era_a_dir, era_b_dir, era_c_dir, json_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from lithair_lab.engine.importer import Importer, RawRecord, import_records
from lithair_lab.formats.envelope import BATCH_FIELD
from lithair_lab.engine.reducers import ReplayState
from lithair_lab.formats import layout
from lithair_lab.formats.envelope import Envelope

ERA_B = Path(__file__).resolve().parents[1] / "datasets" / "upstream-era-b"
KEPT = ["record_kind", "event_type", "event_id", "timestamp", "aggregate_id", "payload"]


def snapshot_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def fold(frame: pl.DataFrame) -> ReplayState:
    """The engine's fold of a frame's records, independent of the importer."""
    s = ReplayState()
    for r in frame.iter_rows(named=True):
        env = None
        if r["record_kind"] == "envelope":
            env = Envelope(r["event_type"], r["event_id"], int(r["timestamp"].timestamp()), r["payload"], r["aggregate_id"])
        s.apply(env)
    return s


def assert_same_state(got: ll.State, want: ll.State) -> None:
    assert sorted(m for m in got if got[m].height) == sorted(m for m in want if want[m].height)
    for m in want:
        if want[m].height:
            assert_frame_equal(got[m], want[m])  # dtypes too: a checkpoint's frame is the journal's


def assert_restored(src: Path, out: Path, prefix: pl.DataFrame, at: object = None, position: int | None = None) -> None:
    """``out`` holds exactly ``prefix``'s records and opens to the source's state at the moment."""
    back = ll.read(out)
    assert back.select(KEPT).equals(prefix.select(KEPT))
    assert ll.verify_chain(out).is_empty()
    assert_same_state(ll.state_at(out), ll.state_at(src, at, position=position))
    want = fold(prefix)
    with ll.open_store(out) as store:
        assert store.event_count == prefix.height
        assert store.state == want.models
        assert store.versions == want.versions
    ids = (out / layout.DEDUP).read_text().splitlines()
    envelopes = prefix.filter(pl.col("record_kind") == "envelope")["event_id"]
    assert ids == envelopes.unique(maintain_order=True).to_list()  # each id once, in order of first use


# --- the bundled Era B directory ----------------------------------------------


def test_upstream_era_b_round_trips_with_every_record(tmp_path: Path) -> None:
    before = snapshot_bytes(ERA_B)
    src = ll.read(ERA_B)
    assert src["event_id"].is_duplicated().any() and (src["record_kind"] == "raw").any()  # what makes it hard
    mid = src["timestamp"].sort()[700]
    cases = [(None, None, src), (mid, None, None), (None, 333, src.head(333))]
    for i, (at, position, prefix) in enumerate(cases):
        out = ll.restore(ERA_B, at, position=position, into=tmp_path / f"r{i}")
        if prefix is None:  # a moment in time: its records, and the raw lines among them
            last = src.filter(pl.col("timestamp") <= at)["seq"].max()
            prefix = src.filter(pl.col("seq") <= last)
        assert_restored(ERA_B, out, prefix, at, position)
        assert prefix["event_id"].is_duplicated().any()  # repeated ids were written, not refused
    assert snapshot_bytes(ERA_B) == before


def test_new_appends_are_deduplicated_against_every_imported_id(tmp_path: Path) -> None:
    out = ll.restore(ERA_B, into=tmp_path / "r")
    ids = ll.read(ERA_B)["event_id"].drop_nulls().unique().to_list()
    with ll.open_store(out) as store:
        for key in ids[:: max(1, len(ids) // 20)]:
            with pytest.raises(ll.DuplicateEventError):
                store.append("UserUpdated", {"id": "x"}, event_id=key, aggregate_id="x")
        store.append("UserCreated", {"id": "new"}, event_id="User:Created:brand-new", aggregate_id="new")
    with ll.open_store(out) as store:  # and after a reopen, from dedup.raftids and its cache
        with pytest.raises(ll.DuplicateEventError):
            store.append("UserUpdated", {"id": "x"}, event_id=ids[0], aggregate_id="x")
        assert store.state["User"]["new"] == {"id": "new"}


def test_what_if_on_an_era_b_history(tmp_path: Path) -> None:
    src = ll.read(ERA_B)
    first = src.filter(pl.col("short_type") == "ProductUpdated")["seq"][0]
    key = src.filter(pl.col("seq") == first)["aggregate_id"][0]
    body = orjson.loads(src.filter(pl.col("seq") == first)["payload"][0])
    out = ll.what_if(ERA_B, into=tmp_path / "w", drop=pl.col("short_type") == "PaymentCreated", replace={int(first): {**body, "price": 0.5}})
    back = ll.read(out)
    assert back.filter(pl.col("short_type") == "PaymentCreated").is_empty()
    assert back.height == src.height - src.filter(pl.col("short_type") == "PaymentCreated").height
    assert orjson.loads(back.filter(pl.col("event_id") == src.filter(pl.col("seq") == first)["event_id"][0])["payload"][0])["price"] == 0.5
    assert ll.state_at(out).entity("Product", key) is not None
    with ll.open_store(out) as store:
        assert "Payment" not in store.state


# --- every kind of source ------------------------------------------------------


def engine_dir(d: Path, *, binary: bool, compact: bool = False) -> None:
    with ll.open_store(d, max_log_file_size=0 if compact else 2_000, binary=binary) as store:
        for i, e in enumerate(crud_events(40)):
            store.append(e.event_type, ll.RawJSON(e.payload), event_id=e.event_id, aggregate_id=e.aggregate_id, timestamp=e.timestamp)
            if i == 25:
                store.snapshot()
                if compact:  # an Era C generation whose checkpoint covers records all still there
                    store.compact(ll.NoCompaction())


SOURCES = {
    "era_a": lambda d: era_a_dir(d, n=8),
    "era_b_rotated": lambda d: era_b_dir(d, n=30, segments=3),
    "era_b_legacy_lines": lambda d: era_b_dir(d, n=12, segments=1, crc=False),
    "era_c_native_journal": lambda d: engine_dir(d, binary=False, compact=True),
    "binary_c": lambda d: binary_dir(d, n=10),
    "binary_b": lambda d: binary_dir(d, n=10, era="B"),
    "engine_rotated_checkpointed": lambda d: engine_dir(d, binary=False),
    "engine_binary": lambda d: engine_dir(d, binary=True),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_every_kind_of_source_round_trips(tmp_path: Path, kind: str) -> None:
    src_dir = tmp_path / "src"
    SOURCES[kind](src_dir)
    before = snapshot_bytes(src_dir)
    src = ll.read(src_dir)
    for position in (None, src.height // 2, 0):
        out = ll.restore(src_dir, position=position, into=tmp_path / f"r{position}")
        assert_restored(src_dir, out, src if position is None else src.head(position), position=position)
    assert snapshot_bytes(src_dir) == before


def test_output_options_binary_rotation_and_no_chain(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "src", n=60, segments=2)
    src = ll.read(tmp_path / "src")
    out = ll.restore(tmp_path / "src", into=tmp_path / "rot", max_log_file_size=1_500)
    assert len(layout.segments(out)) >= 3
    assert_restored(tmp_path / "src", out, src)
    out = ll.restore(tmp_path / "src", into=tmp_path / "bin", binary=True)
    assert ll.read(out)["encoding"].unique().to_list() == ["binary"]
    assert_restored(tmp_path / "src", out, src)
    out = ll.restore(tmp_path / "src", into=tmp_path / "plain", hash_chain=False, snapshot=False)
    assert ll.read(out)["event_hash"].is_null().all() and not (out / layout.SNAPSHOT).exists()
    assert_restored(tmp_path / "src", out, src)


def test_binary_output_leaves_raw_records_out_with_a_warning(tmp_path: Path) -> None:
    era_a_dir(tmp_path / "src", n=4)
    with pytest.warns(ll.LithairLabWarning, match=r"4 raw \(non-envelope\) records were left out"):
        out = ll.restore(tmp_path / "src", into=tmp_path / "bin", binary=True)
    assert not (out / layout.ACTIVE).exists() or (out / layout.ACTIVE).stat().st_size == 0


# --- refusals: nothing written --------------------------------------------------


def test_sources_whose_older_records_are_gone_are_refused(tmp_path: Path) -> None:
    era_c_dir(tmp_path / "upstream", n=12, covered=5)  # an upstream checkpoint; its older journals were deleted
    with pytest.raises(ll.HorizonError, match=r"stands for records removed with the journals before `native-journal-"):
        ll.restore(tmp_path / "upstream", into=tmp_path / "r1")
    with ll.open_store(tmp_path / "compacted") as store:
        for e in crud_events(20):
            store.append(e.event_type, ll.RawJSON(e.payload), event_id=e.event_id, aggregate_id=e.aggregate_id, timestamp=e.timestamp)
        store.compact(ll.KeepLatestPerKey(active_segment=0))
    with pytest.raises(ll.HorizonError, match=r"was compacted: \d+ records before its checkpoint are gone"):
        ll.restore(tmp_path / "compacted", into=tmp_path / "r2")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_refusals_write_nothing(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "src", n=10)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ll.LithairLabError, match=r"already exists and is not empty"):
        ll.restore(tmp_path / "src", into=tmp_path / "full")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ll.LithairLabError, match=r"already exists and is not empty"):
        ll.restore(tmp_path / "src", into=tmp_path / "file")
    with pytest.raises(ll.LithairLabError, match=r"`replace` names seq \[99\]"):
        ll.what_if(tmp_path / "src", into=tmp_path / "w", replace={99: {}})
    with pytest.raises(ll.InvalidEventError, match=r"`replace` for seq 1"):
        ll.what_if(tmp_path / "src", into=tmp_path / "w", replace={1: "{not json"})
    assert not (tmp_path / "w").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full", "src"]  # no half-built sibling left


def test_an_empty_target_directory_is_filled(tmp_path: Path) -> None:
    era_b_dir(tmp_path / "src", n=10)
    (tmp_path / "empty").mkdir()
    out = ll.restore(tmp_path / "src", into=tmp_path / "empty")
    assert ll.read(out).height == 10


def test_a_record_that_cannot_be_stored_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    good = crud_events(3, era="B", chain=False)
    bad = Envelope("UserCreated", "id\nwith a break", T0, "{}", "u")
    with pytest.raises(ll.LithairLabError, match=r"record 3 of the import into `.*out`: `event_id` 'id\\nwith a break'"):
        import_records(tmp_path / "out", [*good, bad])
    with pytest.raises(ll.LithairLabError, match=r"record 0 .*raw \(non-envelope\) record cannot be stored in a binary journal"):
        import_records(tmp_path / "out", [RawRecord("{}")], binary=True)
    with pytest.raises(ll.LithairLabError, match=r"record 0 .*timestamp -1 is not an integer of u64"):
        import_records(tmp_path / "out", [Envelope("T", "e", -1, "{}")])
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_import_are_removed_by_the_next(tmp_path: Path) -> None:
    stale = tmp_path / ".out.import-0123456789ab"
    stale.mkdir()
    (stale / layout.ACTIVE).write_bytes(b"half")
    (stale / ".lithair_lab.lock").write_text("pid 1\n")  # nobody holds its flock: its import died
    other = tmp_path / ".other.import-0123456789ab"  # another target's: left alone
    other.mkdir()
    import_records(tmp_path / "out", crud_events(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.import-0123456789ab", "out"]


# --- the importer itself ----------------------------------------------------------


def test_importer_keeps_extras_drops_batch_marks_and_chains_afresh(tmp_path: Path) -> None:
    envs = [
        Envelope("ProductCreated", "a", T0, '{"id":"p1","price":1.50}', "p1", "f" * 64, "e" * 64, {"origin": "eu", BATCH_FIELD: 1}),
        Envelope("ProductUpdated", "a", T0 + 1, ll.RawJSON('{"price":2}'), "p1"),  # a repeated id, a str subclass
    ]
    with Importer(tmp_path / "out") as imp:
        imp.add(envs[:1])
        imp.add([RawRecord('{"type":"Legacy"}'), *envs[1:]])
        report = imp.finish()
    assert (report.records, report.raw, report.ids, report.repeated) == (3, 1, 1, 1)
    lines = [orjson.loads(line[9:]) for line in (tmp_path / "out" / layout.ACTIVE).read_bytes().splitlines()]
    assert lines[0]["origin"] == "eu" and BATCH_FIELD not in lines[0]
    assert lines[0]["payload"] == '{"id":"p1","price":1.50}'  # byte for byte
    assert lines[1] == {"type": "Legacy"}
    assert lines[2]["previous_hash"] == lines[0]["event_hash"]  # the chain runs on past a raw record
    assert ll.verify_chain(tmp_path / "out").is_empty()
    with ll.open_store(tmp_path / "out") as store:
        assert store.state["Product"]["p1"] == {"id": "p1", "price": 2}
        assert store.event_count == 3


def test_an_abandoned_importer_leaves_nothing(tmp_path: Path) -> None:
    with Importer(tmp_path / "out") as imp:
        imp.add(crud_events(5))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ll.LithairLabError, match=r"is finished"):
        imp.add(crud_events(1))


# --- random histories ---------------------------------------------------------------

TYPES = ["ProductCreated", "ProductUpdated", "ProductDeleted", "my_app::models::UserCreated", "Pinged"]
record = st.one_of(
    st.tuples(
        st.sampled_from(TYPES),
        st.sampled_from(["e1", "e2", "e3", "Product:Updated:p1", ""]),  # few ids: they repeat
        st.sampled_from(["p1", "p2", None]),
        st.dictionaries(st.sampled_from(["id", "name", "price"]), st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none()), max_size=3),
        st.integers(0, 90),
    ),
    st.dictionaries(st.sampled_from(["type", "x"]), st.integers(0, 3), min_size=1).map(lambda d: orjson.dumps(d).decode()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(record, max_size=30),
    cut=st.floats(0, 1),
    era=st.sampled_from(["B", "C"]),
    segments=st.integers(0, 2),
    binary=st.booleans(),
    by_time=st.booleans(),
)
def test_random_histories_round_trip(
    tmp_path_factory: pytest.TempPathFactory, records: list, cut: float, era: str, segments: int, binary: bool, by_time: bool
) -> None:
    tmp = tmp_path_factory.mktemp("h")
    src_dir = tmp / "src"
    src_dir.mkdir()
    t, history = T0, []
    for r in records:
        if isinstance(r, str):
            history.append(r)
            continue
        et, eid, agg, body, dt = r
        t += dt
        history.append(Envelope(et, eid, t, orjson.dumps(body).decode(), agg))
    if binary:
        history = [h for h in history if isinstance(h, Envelope)]
    per = max(1, len(history) // (segments + 1))
    names = [f"{layout.ACTIVE}.{k}" for k in range(1, segments + 1)] + [layout.ACTIVE]
    for k, name in enumerate(names):
        part = history[k * per : (k + 1) * per] if name != layout.ACTIVE else history[k * per :]
        data = binary_frames(part, era=era) if binary else json_lines(part, era=era)
        (src_dir / name).write_bytes(data)
    if not history:
        return
    src = ll.read(src_dir)
    position = int(cut * src.height)
    if by_time:  # a time: every record up to the first event after it (raw records go with the one before them)
        at = T0 + int(cut * (t - T0))
        later = src.filter(pl.col("timestamp").dt.epoch("s") > at)["seq"]
        prefix = src.head(int(later[0]) if len(later) else src.height)
        out = ll.restore(src_dir, at, into=tmp / "out")
        assert_restored(src_dir, out, prefix, at=at)
    else:
        out = ll.restore(src_dir, position=position, into=tmp / "out")
        assert_restored(src_dir, out, src.head(position), position=position)
    shutil.rmtree(tmp)

"""Opening a directory after a crash or damage: torn tails, bit flips, checkpoints, old eras."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import pytest

import lithair_lab as ll
from lithair_lab.formats import bincode, checkpoint, jsonlines
from lithair_lab.formats.envelope import Envelope

from engine_support import assert_chain, read_back


def fill(d: Path, n: int = 5, **opts: object) -> list[Envelope]:
    with ll.open_store(d, **opts) as store:  # type: ignore[arg-type]
        return [
            store.append("ProductCreated", {"id": f"p{i}", "n": i}, aggregate_id=f"p{i}", event_id=f"e{i}")
            for i in range(n)
        ]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("cut", [1, 9, -1], ids=["one-byte", "inside", "all-but-last-byte"])
def test_torn_tail_is_cut_aside_and_the_store_goes_on(tmp_path: Path, binary: bool, cut: int) -> None:
    envs = fill(tmp_path, binary=binary)
    journal = tmp_path / "events.raftlog"
    whole = journal.read_bytes()
    extra = Envelope("ProductCreated", "torn", 1, '{"id":"px"}', "px").chained(envs[-1].event_hash)
    record = bincode.encode_frame(extra) if binary else jsonlines.frame_line(extra.to_json())
    torn = record[:cut] if cut > 0 else record[:cut]
    journal.write_bytes(whole + torn)

    with ll.open_store(tmp_path) as store:
        assert store.binary is binary
        assert store.event_count == 5
        assert "px" not in store.state["Product"]
        [side] = store.torn_tails
        assert side.read_bytes() == torn
        assert side.name.startswith("torn-events.raftlog-at-") and side.name.endswith(".bytes")
        assert journal.read_bytes() == whole
        store.append("ProductCreated", {"id": "p5"}, aggregate_id="p5", event_id="torn")  # never acknowledged
    stored = [s.env for s in read_back(tmp_path)]
    assert stored[:5] == envs and len(stored) == 6
    assert_chain(stored)
    assert side.exists(), "the cut bytes are kept"


def test_bit_flip_inside_the_journal_stops_the_open_naming_line_and_offset(tmp_path: Path) -> None:
    fill(tmp_path)
    journal = tmp_path / "events.raftlog"
    data = bytearray(journal.read_bytes())
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")][:-1]
    data[starts[2] + 40] ^= 0x04  # inside the third line's JSON
    journal.write_bytes(bytes(data))
    before = journal.read_bytes()

    with pytest.raises(ll.DamageError) as err:
        ll.open_store(tmp_path)
    e = err.value
    assert (e.line, e.offset, e.kind, e.path.name) == (3, starts[2], "bad_crc", "events.raftlog")
    assert "line 3" in str(e) and f"byte offset {starts[2]}" in str(e)
    assert 'on_damage="report"' in str(e)
    assert journal.read_bytes() == before, "a failed open must not touch the journal"
    assert not list(tmp_path.glob("torn-*")), "damage inside the journal is not a torn tail"

    with ll.open_store(tmp_path, on_damage="report") as store:
        [damage] = store.damage
        assert (damage.line, damage.offset, damage.kind) == (3, starts[2], "bad_crc")
        assert sorted(store.state["Product"]) == ["p0", "p1", "p3", "p4"]
        assert store.event_count == 4
        store.append("T", {}, event_id="after")
    assert journal.read_bytes().startswith(before), "opening anyway deletes nothing"
    with pytest.raises(ll.DamageError):
        ll.open_store(tmp_path)  # the damage is still there, still reported


def test_bad_json_with_a_matching_crc_is_damage(tmp_path: Path) -> None:
    fill(tmp_path, 2)
    journal = tmp_path / "events.raftlog"
    journal.write_bytes(journal.read_bytes() + jsonlines.frame_line(b'{"event_type":') + b"")
    fill_after = journal.read_bytes()
    with pytest.raises(ll.DamageError) as err:
        ll.open_store(tmp_path)
    assert err.value.kind == "bad_json" and err.value.line == 3
    assert journal.read_bytes() == fill_after


@pytest.mark.parametrize("where", ["length", "body"])
def test_binary_damage_inside_the_journal_is_reported(tmp_path: Path, where: str) -> None:
    fill(tmp_path, 4, binary=True)
    journal = tmp_path / "events.raftlog"
    data = bytearray(journal.read_bytes())
    (n,) = bincode.LEN.unpack_from(data, 0)
    second = 8 + n
    if where == "length":
        data[second + 6] = 0x7F  # an impossible length
    else:
        data[second + 8] = 0xFE  # the varint tag of event_type's length
    journal.write_bytes(bytes(data))
    with pytest.raises(ll.DamageError) as err:
        ll.open_store(tmp_path)
    assert err.value.offset == second and err.value.line is None
    assert err.value.kind == "bad_frame"


def test_legacy_lines_are_kept_as_records(tmp_path: Path) -> None:
    (tmp_path / "events.raftlog").write_bytes(b'{"ProductCreated":{"id":1}}\n\n' + b"5\n")
    with ll.open_store(tmp_path) as store:
        assert store.event_count == 2  # the blank line is not a record
        assert store.state == {}
        store.append("T", {}, event_id="x")
        assert store.event_count == 3


def test_era_b_directory_with_repeated_ids_opens_whole_and_dedups_new_appends(tmp_path: Path) -> None:
    lines = []
    prev = None
    for i, (op, price) in enumerate([("Created", 1), ("Updated", 2), ("Updated", 3), ("Updated", 4)]):
        env = Envelope(
            f"my_app::models::Product{op}", f"Product:{op}:p1", 1700000000 + i,
            orjson.dumps({"id": "p1", "price": price}).decode(), "p1",
        ).chained(prev)  # fmt: skip
        prev = env.event_hash
        lines.append(jsonlines.frame_line(env.to_json(era="B")))
    (tmp_path / "events.raftlog").write_bytes(b"".join(lines))
    (tmp_path / "dedup.raftids").write_bytes(b"Product:Created:p1\nProduct:Updated:p1\nProduct:Updated:p1\n")
    with ll.open_store(tmp_path) as store:
        assert store.event_count == 4, "no record with a repeated id may be dropped"
        assert store.state == {"Product": {"p1": {"id": "p1", "price": 4}}}
        assert store.versions["Product"]["p1"][0] == 4
        with pytest.raises(ll.DuplicateEventError):
            store.append("ProductUpdated", {"id": "p1", "price": 5}, event_id="Product:Updated:p1")
        env = store.append("ProductUpdated", {"id": "p1", "price": 5}, event_id="Product:Updated:p1:v5")
        assert env.previous_hash == prev, "the chain continues from the Era B records"


def test_torn_dedup_line_is_not_taken_for_an_id(tmp_path: Path) -> None:
    fill(tmp_path, 2)
    ids = tmp_path / "dedup.raftids"
    ids.write_bytes(ids.read_bytes() + b"e12")  # half of "e123\n": never a whole id
    with ll.open_store(tmp_path) as store:
        store.append("T", {}, event_id="e12")
        with pytest.raises(ll.DuplicateEventError):
            store.append("T", {}, event_id="e1")
    assert ids.read_bytes() == b"e0\ne1\ne12\n"
    assert any(p.read_bytes() == b"e12" for p in tmp_path.glob("torn-dedup.raftids-*"))


def test_ids_survive_the_loss_of_dedup_raftids(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        store.append("T", {"a": 1}, event_id="x")
        store.snapshot()
        store.append("T", {"a": 2}, event_id="y")
    os.rename(tmp_path / "dedup.raftids", tmp_path / "moved-away")
    with ll.open_store(tmp_path, dedup_persist=False) as store:
        for eid in ("x", "y"):
            with pytest.raises(ll.DuplicateEventError):
                store.append("T", {}, event_id=eid)


def test_checkpoint_over_a_changed_journal_is_refused(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        for i in range(4):
            store.append("ProductCreated", {"id": f"p{i}"}, aggregate_id=f"p{i}")
        store.snapshot()
    journal = tmp_path / "events.raftlog"
    data = bytearray(journal.read_bytes())
    data[20] ^= 0x01
    journal.write_bytes(bytes(data))
    with pytest.raises(ll.CheckpointError, match="changed after the checkpoint"):
        ll.open_store(tmp_path)
    journal.write_bytes(bytes(data[:50]))
    with pytest.raises(ll.CheckpointError, match="shorter than the checkpoint's offset"):
        ll.open_store(tmp_path)


@pytest.mark.parametrize(
    "manifest",
    [
        b"not json at all",
        b'{"__lithair_native_checkpoint":{"version":2},"sha256":"00"}',
        checkpoint.Checkpoint("events.raftlog", 0, 0, checkpoint.EMPTY_SHA256, None, "{}").to_bytes().replace(
            b'"sha256":"', b'"sha256":"0'
        ),
        checkpoint.Checkpoint("other.log", 0, 0, checkpoint.EMPTY_SHA256, None, "{}").to_bytes(),
    ],
    ids=["not-json", "version", "sha256", "journal-name"],
)
def test_bad_checkpoint_never_opens_empty(tmp_path: Path, manifest: bytes) -> None:
    fill(tmp_path, 2)
    (tmp_path / "state.raftsnap").write_bytes(manifest)
    with pytest.raises(ll.CheckpointError):
        ll.open_store(tmp_path)


def test_worked_empty_checkpoint_opens_and_needs_its_journal(tmp_path: Path) -> None:
    (tmp_path / "state.raftsnap").write_bytes(
        checkpoint.Checkpoint("events.raftlog", 0, 0, checkpoint.EMPTY_SHA256, None, "{}").to_bytes()
    )
    with pytest.raises(ll.CheckpointError, match="`events.raftlog` is missing"):
        ll.open_store(tmp_path)
    (tmp_path / "events.raftlog").write_bytes(b"")
    with ll.open_store(tmp_path) as store:
        assert store.state == {} and store.event_count == 0


def test_crash_between_rotation_and_recheckpoint_is_recovered(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        for i in range(5):
            store.append("ProductCreated", {"id": f"p{i}"}, aggregate_id=f"p{i}")
        store.snapshot()
        store.append("ProductCreated", {"id": "p5"}, aggregate_id="p5")
        live = store.state
    # the rename of a rotation happened, the re-checkpoint did not
    os.rename(tmp_path / "events.raftlog", tmp_path / "events.raftlog.1")
    with ll.open_store(tmp_path) as store:
        assert store.state == live
        assert store.event_count == 6
        store.append("ProductCreated", {"id": "p6"}, aggregate_id="p6")
    with ll.open_store(tmp_path) as store:
        assert sorted(store.state["Product"]) == [f"p{i}" for i in range(7)]


def test_crash_after_an_offset_zero_checkpoint_and_a_second_rotation(tmp_path: Path) -> None:
    """An offset-0 checkpoint matches any file: the segment count it records disambiguates."""
    with ll.open_store(tmp_path, max_log_file_size=400) as store:
        for i in range(3):
            store.append("ProductCreated", {"id": f"p{i}", "pad": "x" * 100}, aggregate_id=f"p{i}")
        store.snapshot()
        for i in range(3, 12):
            store.append("ProductCreated", {"id": f"p{i}", "pad": "x" * 100}, aggregate_id=f"p{i}")
        live = store.state
    segs = sorted(tmp_path.glob("events.raftlog.*"), key=lambda p: int(p.suffix[1:]))
    n = len(segs) + 1
    os.rename(tmp_path / "events.raftlog", tmp_path / f"events.raftlog.{n}")
    with ll.open_store(tmp_path, max_log_file_size=400) as store:
        assert store.state == live
        assert store.event_count == 12


def test_legacy_snapshot_covers_nothing_and_is_kept_on_first_checkpoint(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    legacy = b'{"p0": {"id": "p0", "n": 99}}'
    (tmp_path / "state.raftsnap").write_bytes(legacy)
    with ll.open_store(tmp_path) as store:
        assert store.legacy_snapshot == {"p0": {"id": "p0", "n": 99}}
        assert store.state["Product"]["p0"] == {"id": "p0", "n": 0}  # the journal replays whole
        store.snapshot()
    [kept] = tmp_path.glob("state.raftsnap.before-lithair_lab-*")
    assert kept.read_bytes() == legacy
    assert checkpoint.is_manifest(orjson.loads((tmp_path / "state.raftsnap").read_bytes()))


def test_upstream_checkpoint_on_a_native_journal_is_followed(tmp_path: Path) -> None:
    name = "native-journal-6f1c2a1e-0000-4000-8000-000000000001.raftlog"
    env = Envelope("ProductCreated", "a", 1, '{"id":"p1"}', "p1").chained(None)
    line = jsonlines.frame_line(env.to_json())
    (tmp_path / name).write_bytes(line)
    (tmp_path / "events.raftlog").write_bytes(b"")  # stale, not part of the history
    cp = checkpoint.Checkpoint(name, len(line), 1, hashlib.sha256(line).hexdigest(), env.event_hash, '{"upstream":1}')
    (tmp_path / "state.raftsnap").write_bytes(cp.to_bytes())
    with ll.open_store(tmp_path) as store:
        assert store.state == {"Product": {"p1": {"id": "p1"}}}  # upstream state is not ours: full replay
        second = store.append("ProductCreated", {"id": "p2"}, aggregate_id="p2")
        assert second.previous_hash == env.event_hash
    assert (tmp_path / name).read_bytes().startswith(line)
    assert len((tmp_path / name).read_bytes().splitlines()) == 2
    assert (tmp_path / "events.raftlog").read_bytes() == b""


def test_damage_after_a_checkpoint_names_the_absolute_line(tmp_path: Path) -> None:
    with ll.open_store(tmp_path) as store:
        for i in range(6):
            store.append("T", {"i": i}, event_id=f"e{i}")
        store.snapshot()
        store.append("T", {"i": 6}, event_id="e6")
        store.append("T", {"i": 7}, event_id="e7")
    journal = tmp_path / "events.raftlog"
    data = bytearray(journal.read_bytes())
    eighth = data.rstrip(b"\n").rfind(b"\n") + 1
    data[eighth + 30] ^= 0x01
    journal.write_bytes(bytes(data))
    with pytest.raises(ll.DamageError) as err:
        ll.open_store(tmp_path)
    assert (err.value.line, err.value.offset) == (8, eighth)


@pytest.mark.parametrize("tamper", ["none", "cache", "ids"])
def test_dedup_cache_is_used_only_while_it_matches(tmp_path: Path, tamper: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lithair_lab.engine import dedup

    with ll.open_store(tmp_path) as store:
        for i in range(50):
            store.append("T", {"i": i}, event_id=f"e{i}")
        store.snapshot()
        store.append("T", {"i": 50}, event_id="e50")
    cache = tmp_path / dedup.CACHE_NAME
    assert cache.exists()
    if tamper == "cache":
        data = bytearray(cache.read_bytes())
        data[-3] ^= 0xFF  # a flipped digest must not be trusted
        cache.write_bytes(bytes(data))
    elif tamper == "ids":
        ids = tmp_path / "dedup.raftids"
        ids.write_bytes(ids.read_bytes().replace(b"e1\n", b"x1\n", 1))  # same length, other content
    used = []
    real = dedup.load_cache
    monkeypatch.setattr(dedup, "load_cache", lambda p: used.append(r := real(p)) or r)
    with ll.open_store(tmp_path) as store:
        assert (used[0] is not None) is (tamper == "none")
        for eid in ("e0", "e25", "e49", "e50"):
            with pytest.raises(ll.DuplicateEventError):
                store.append("T", {}, event_id=eid)
        store.append("T", {}, event_id="new")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_replay_keeps_timestamps_beyond_a_datetime_exactly(tmp_path: Path, binary: bool) -> None:
    """The decoder's frame holds datetimes; seconds beyond their range are read back from the record."""
    big = 2**64 - 1
    with ll.open_store(tmp_path, binary=binary) as store:
        store.append("ProductCreated", {"id": "p1"}, aggregate_id="p1", timestamp=big)
        store.append("ProductUpdated", {"id": "p2"}, aggregate_id="p2", timestamp=1)
        live = ({k: dict(v) for k, v in store.versions.items()}, store.last_hash)
    with ll.open_store(tmp_path) as store:
        assert ({k: dict(v) for k, v in store.versions.items()}, store.last_hash) == live
        assert store.versions["Product"]["p1"][1] == big


def test_a_whole_record_without_its_newline_is_still_a_torn_tail(tmp_path: Path) -> None:
    """The engine writes a line and its newline in one write: a last line without it was never
    acknowledged, even when its bytes happen to be a whole record."""
    fill(tmp_path, 3)
    journal = tmp_path / "events.raftlog"
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-1])
    (tmp_path / "dedup.raftids").write_bytes(b"e0\ne1\n")  # ids are written after their record: a crash left none
    last = whole[whole.rfind(b"\n", 0, len(whole) - 1) + 1 : -1]
    with ll.open_store(tmp_path) as store:
        assert store.event_count == 2
        [side] = store.torn_tails
        assert side.read_bytes() == last
        store.append("ProductCreated", {"id": "p2", "n": 2}, aggregate_id="p2", event_id="e2")  # never acknowledged
    assert journal.read_bytes().count(b"\n") == 3 and journal.read_bytes().endswith(b"\n")
    assert_chain([r.env for r in read_back(tmp_path)])


def test_the_chain_runs_on_past_a_raw_record(tmp_path: Path) -> None:
    """A raw (non-envelope) record has no hash: after reopening, the next event
    links to the last hashed one, as ``verify_chain`` and restore read the chain."""
    d = tmp_path / "s"
    with ll.open_store(d) as store:
        store.append("ProductCreated", {"id": "a"}, aggregate_id="a")
    with open(d / "events.raftlog", "ab") as f:
        f.write(jsonlines.frame_line(b'{"LegacyThing":{"n":1}}'))
    with ll.open_store(d) as store:
        store.append("ProductUpdated", {"n": 2}, aggregate_id="a")
    frame = ll.read(d)
    assert frame["record_kind"].to_list() == ["envelope", "raw", "envelope"]
    assert frame["previous_hash"][2] == frame["event_hash"][0] is not None
    assert ll.verify_chain(d).is_empty()

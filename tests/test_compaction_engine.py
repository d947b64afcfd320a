"""Engine compaction: correct by construction, crash-safe at every step, backups and restore."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import polars as pl
import pytest

import lithair_lab as ll
from lithair_lab.engine import open_store
from lithair_lab.engine.compaction import BACKUP_DIR, list_backups, restore_backup
from lithair_lab.engine.policies import (
    KeepLatestPerKey,
    MaxCountMaxAge,
    SmartCompaction,
    SnapshotThenTruncate,
)
from lithair_lab.errors import PolicyError
from lithair_lab.formats import checkpoint, layout

SMART = SmartCompaction(threshold=100, keep_recent=50)


def fill(store, n_products: int = 5, n_updates: int = 110, start: int = 0) -> None:
    """The seed's smart-compaction workload: creations, one user, then updates spread over the products."""
    for k in range(n_products):
        store.append("ProductCreated", {"id": f"p{k}", "price": 0}, aggregate_id=f"p{k}", event_id=f"c{k}", timestamp=k)
    if start == 0:
        store.append("UserRegistered", {"id": "u1"}, aggregate_id="u1", event_id="user")
    for i in range(start, start + n_updates):
        k = i % 5
        store.append("ProductUpdated", {"id": f"p{k}", "price": i}, aggregate_id=f"p{k}", event_id=f"u{i}")


def manifest(path: Path) -> checkpoint.Checkpoint:
    return checkpoint.parse_manifest(orjson.loads((path / layout.SNAPSHOT).read_bytes()))


def journal_lines(path: Path) -> list[dict]:
    cp = manifest(path)
    lines = (path / cp.journal).read_bytes().split(b"\n")[:-1]
    return [orjson.loads(line[9:]) for line in lines]


def test_state_count_chain_and_dedup_survive_compaction_and_reopen(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)
        state, count, anchor = copy.deepcopy(s.state), s.event_count, s.last_hash
        report = s.compact(SMART)
        assert (report.before, report.retained, report.carried) == (116, 56, 0)  # 5 created + UserRegistered + 50
        assert s.state == state and s.event_count == count and s.last_hash == anchor
    cp = manifest(d)
    assert cp.covered_events == 56 and cp.last_event_hash == anchor
    kept = journal_lines(d)
    assert [r["event_id"] for r in kept[:6]] == ["c0", "c1", "c2", "c3", "c4", "user"]
    assert [r["event_id"] for r in kept[6:]] == [f"u{i}" for i in range(60, 110)]
    assert not (d / layout.ACTIVE).exists()  # moved to the backup
    with open_store(d) as s:
        # retained records are history, not applied twice: same state, same count
        assert s.state == state and s.event_count == count and s.last_hash == anchor
        with pytest.raises(ll.DuplicateEventError):
            s.append("ProductUpdated", {"id": "p0", "price": -1}, aggregate_id="p0", event_id="u3")  # compacted away
        env = s.append("ProductUpdated", {"id": "p0", "price": 7}, aggregate_id="p0", event_id="new")
        assert env.previous_hash == anchor
    with open_store(d) as s:
        assert s.state["Product"]["p0"]["price"] == 7 and s.event_count == count + 1


@pytest.mark.parametrize("options", [{"binary": True}, {"max_log_file_size": 4_000}], ids=["binary", "segments"])
def test_binary_journals_and_rotated_segments_compact_too(tmp_path: Path, options: dict) -> None:
    d = tmp_path / "shop"
    with open_store(d, **options) as s:
        fill(s)
        state, count = copy.deepcopy(s.state), s.event_count
        replaced = sorted(p.name for p in d.iterdir() if p.name.startswith(layout.ACTIVE))
        assert len(replaced) > 1 or "binary" in options
        report = s.compact(SMART)
        backed_up = sorted(p.name for p in report.backup.iterdir() if p.name.startswith(layout.ACTIVE))
        assert backed_up == replaced
        s.append("ProductUpdated", {"id": "p0", "price": 5}, aggregate_id="p0")
        state["Product"]["p0"] = {"id": "p0", "price": 5}
    with open_store(d, **options) as s:
        assert s.state == state and s.event_count == count + 1 and s.binary == ("binary" in options)


def test_ids_missing_from_dedup_file_are_made_durable_before_the_switch(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)
    (d / layout.DEDUP).unlink()  # as in a directory written by upstream without `dedup.raftids`
    with open_store(d) as s:
        s.compact(SMART)
    on_disk = set((d / layout.DEDUP).read_text().split("\n"))
    assert {f"u{i}" for i in range(60)} <= on_disk  # every dropped id
    with open_store(d) as s, pytest.raises(ll.DuplicateEventError):
        s.append("ProductUpdated", {}, event_id="u7")


def test_appends_during_compaction_are_carried_over(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    from lithair_lab.engine.compaction import compact

    with open_store(d) as s:
        fill(s)

        def meanwhile(step: str) -> None:
            if step == "barrier":  # the lock is free: appends go on while the journal is rewritten
                for i in range(3):
                    s.append("ProductUpdated", {"id": "p1", "price": 1000 + i}, aggregate_id="p1", event_id=f"m{i}")

        report = compact(s, SMART, on_step=meanwhile)
        assert report.carried == 3
        state, count = copy.deepcopy(s.state), s.event_count
    assert [r["event_id"] for r in journal_lines(d)[-3:]] == ["m0", "m1", "m2"]
    with open_store(d) as s:
        assert s.state == state and s.event_count == count == 119
        assert s.state["Product"]["p1"]["price"] == 1002


def test_a_concurrent_appender_loses_nothing(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    stop = threading.Event()
    appended: list[str] = []
    with open_store(d) as s:
        fill(s, n_updates=5000)

        def appender() -> None:
            i = 0
            while not stop.is_set() or i < 50:
                s.append("ProductUpdated", {"id": "p2", "price": i}, aggregate_id="p2", event_id=f"t{i}")
                appended.append(f"t{i}")
                i += 1

        t = threading.Thread(target=appender)
        t.start()
        time.sleep(0.02)
        report = s.compact(SmartCompaction(threshold=1000, keep_recent=100))
        stop.set()
        assert 0 < report.locked_seconds < report.seconds
        t.join()
        state, count = copy.deepcopy(s.state), s.event_count
    with open_store(d) as s:
        assert s.state == state and s.event_count == count == 5006 + len(appended)
        for eid in appended[-5:]:
            with pytest.raises(ll.DuplicateEventError):
                s.append("X", {}, event_id=eid)


def test_truncation_without_snapshot_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)
        files = sorted(p.name for p in d.iterdir())
        with pytest.raises(PolicyError) as e:
            s.compact(SnapshotThenTruncate(threshold=100, snapshot=False))
        msg = str(e.value)
        assert "policy `SnapshotThenTruncate` would lose state" in msg
        assert "`Product/p0`" in msg and "hint: give the policy `snapshot=True`" in msg
        assert sorted(p.name for p in d.iterdir()) == files
        s.append("ProductUpdated", {"id": "p0", "price": 1}, aggregate_id="p0")  # still usable


def test_keep_latest_without_snapshot_is_accepted_when_kept_records_rebuild_the_state(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)  # updates carry the whole object: the newest per key rebuilds it
        state = copy.deepcopy(s.state)
        report = s.compact(KeepLatestPerKey(threshold=100, active_segment=0))
        assert report.retained == 6
    with open_store(d) as s:
        assert s.state == state
    with open_store(tmp_path / "b") as s:
        fill(s)
        s.append("ProductUpdated", {"price": 5}, aggregate_id="p1")  # a partial update: merged, not whole
        with pytest.raises(PolicyError, match=r"do not rebuild 1 entities \(`Product/p1`\)"):
            s.compact(KeepLatestPerKey(threshold=100, active_segment=0))


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    with open_store(tmp_path / "a", dedup_persist=False) as s:
        fill(s)
        with pytest.raises(PolicyError, match="would forget the idempotence keys of 60 dropped records"):
            s.compact(SMART)
    with open_store(tmp_path / "b") as s:
        fill(s)
        with pytest.raises(PolicyError, match=r"unknown event type in `critical_types`.*`OrderCreatd` \(did you mean"):
            s.compact(SmartCompaction(threshold=100, keep_recent=50, critical_types=["OrderCreatd", "ProductCreated"]))
        s.append("OrderCreated", {"id": "o1"}, aggregate_id="o1")
        s.compact(SmartCompaction(threshold=100, keep_recent=50, critical_types=["OrderCreated"]))
        with pytest.raises(PolicyError, match="is not a compaction policy"):
            s.compact(object())  # type: ignore[arg-type]


def test_backups_are_kept_to_the_count_and_restore_rolls_back_and_forth(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    policy = SmartCompaction(threshold=100, keep_recent=50, backups=2)
    states = []
    with open_store(d) as s:
        fill(s)
        for round_ in range(4):
            states.append((copy.deepcopy(s.state), s.event_count))
            s.compact(policy)
            fill(s, start=1000 * (round_ + 1), n_products=0, n_updates=60)
        final = (copy.deepcopy(s.state), s.event_count)
    backups = list_backups(d)
    assert len(backups) == 2 and all(b.policy == "SmartCompaction" for b in backups)
    with pytest.raises(ll.StoreLockedError), open_store(d):
        restore_backup(d)
    undo = restore_backup(d)  # the newest: the generation replaced by the 4th compaction
    with open_store(d) as s:
        assert (s.state, s.event_count) == states[3]
    assert undo.parent.name == BACKUP_DIR
    restore_backup(d, undo.name)  # and back again: nothing was lost
    with open_store(d) as s:
        assert (s.state, s.event_count) == final
    with pytest.raises(FileNotFoundError, match="no backup `nope`"):
        restore_backup(d, "nope")


def test_backups_zero_removes_replaced_files_only_after_the_switch(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)
        state = copy.deepcopy(s.state)
        assert s.compact(SmartCompaction(threshold=100, keep_recent=50, backups=0)).backup is None
    assert not (d / layout.ACTIVE).exists() and list_backups(d) == []
    with open_store(d) as s:
        assert s.state == state


def test_automatic_trigger_compacts_in_the_background(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        auto = s.auto_compact(SmartCompaction(threshold=100, keep_recent=20, snapshot_interval=None))
        fill(s, n_updates=400)  # appends go on while the first compaction runs in its thread
        auto.wait(10)
        assert not auto.errors and len(auto.reports) >= 1
        first = len(auto.reports)
        fill(s, n_products=0, start=1000, n_updates=100)  # past the trigger again
        auto.wait(10)
        assert not auto.errors and len(auto.reports) > first
        state, count = copy.deepcopy(s.state), s.event_count
    with open_store(d) as s:
        assert s.state == state and s.event_count == count == 506
        assert len((d / manifest(d).journal).read_bytes().split(b"\n")) - 1 < 100


def test_a_failing_automatic_compaction_warns_and_stops(tmp_path: Path) -> None:
    with open_store(tmp_path / "a", dedup_persist=False) as s:
        auto = s.auto_compact(SmartCompaction(threshold=100, keep_recent=10))
        with pytest.warns(ll.LithairLabWarning, match="automatic compaction of .* failed and is stopped"):
            fill(s)
            auto.wait(10)
        assert len(auto.errors) == 1 and isinstance(auto.errors[0], PolicyError) and auto.trigger is None
        fill(s, n_products=0, start=500, n_updates=150)  # appends go on, no retry on each of them
        auto.wait(10)
        assert len(auto.errors) == 1 and s.event_count == 266


def test_smart_snapshot_interval_publishes_checkpoints_between_compactions(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        auto = s.auto_compact(SmartCompaction(threshold=10_000, keep_recent=10, snapshot_interval=50))
        for i in range(120):
            s.append("ProductUpdated", {"id": "p1", "price": i}, aggregate_id="p1")
            auto.wait()
        assert not auto.errors and auto.reports == []
        # checkpoints at 50 and 100 appends: the replay on open starts from the newest
        assert manifest(d).covered_events == 100


# -- kill tests: SIGKILL at every step of a compaction -------------------------------------

STEPS = [
    "barrier", "journal_partial", "journal_written", "carried_over", "ids_durable",
    "backed_up", "published", "switched", "moved", "pruned",
]  # fmt: skip

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from lithair_lab.engine import open_store
    from lithair_lab.engine.compaction import compact
    from lithair_lab.engine.policies import SmartCompaction

    d, target = Path(sys.argv[1]), sys.argv[2]
    s = open_store(d)

    def on_step(step):
        if step == "barrier":
            for i in range(3):
                s.append("ProductUpdated", {"id": "p1", "price": 1000 + i}, aggregate_id="p1", event_id=f"m{i}")
        if step == target:
            Path(sys.argv[3]).write_text(step)
            time.sleep(60)

    compact(s, SmartCompaction(threshold=100, keep_recent=50), on_step=on_step)
    """
)


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_step_leaves_old_or_new_generation(tmp_path: Path, step: str) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)
        for i in range(3):  # what the child appends during its compaction
            s.append("ProductUpdated", {"id": "p1", "price": 1000 + i}, aggregate_id="p1", event_id=f"m{i}")
        expected = (copy.deepcopy(s.state), s.event_count)
    # the child redoes it from the same start
    d2 = tmp_path / "victim"
    with open_store(d2) as s:
        fill(s)
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(d2), step, str(marker)], env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, f"child exited with {child.returncode} before step {step}"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    with open_store(d2) as s:
        assert (s.state, s.event_count) == expected
        with pytest.raises(ll.DuplicateEventError):
            s.append("ProductUpdated", {}, event_id="u0")  # dropped by the compaction, if it happened
        new_generation = layout.NATIVE_JOURNAL.fullmatch(s._active_name) is not None
        assert new_generation == (STEPS.index(step) >= STEPS.index("published"))
        # a later compaction tidies whatever the killed one left, keeping it in a backup
        s.compact(SMART)
        assert sorted(p.name for p in d2.iterdir() if layout.LITHAIR_FILE.fullmatch(p.name)) == sorted(
            [layout.DEDUP, layout.META, layout.SNAPSHOT, s._active_name]
        )
        state = copy.deepcopy(s.state)
    with open_store(d2) as s:
        assert s.state == state == expected[0]


RESTORE_STEPS = ["kept", "copied", "switched", "dedup", "tidied"]

RESTORE_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lithair_lab.engine.compaction import restore_backup

    def on_step(step):
        if step == sys.argv[2]:
            Path(sys.argv[3]).write_text(step)
            time.sleep(60)

    restore_backup(Path(sys.argv[1]), on_step=on_step)
    """
)


@pytest.mark.parametrize("step", RESTORE_STEPS)
def test_sigkill_during_a_restore_leaves_one_generation_and_loses_nothing(tmp_path: Path, step: str) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)
        old = (copy.deepcopy(s.state), s.event_count)
        s.compact(SMART)
        s.append("ProductUpdated", {"id": "p0", "price": -5}, aggregate_id="p0", event_id="late")
        new = (copy.deepcopy(s.state), s.event_count)
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", RESTORE_CHILD, str(d), step, str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    with open_store(d) as s:
        got = (s.state, s.event_count)
    assert got == (old if RESTORE_STEPS.index(step) >= RESTORE_STEPS.index("switched") else new)
    # the generation that was current before the restore is always in a backup
    keep = [b for b in list_backups(d) if b.policy == "before-restore"]
    assert len(keep) == 1
    restore_backup(d, keep[0].name)
    with open_store(d) as s:
        assert (s.state, s.event_count) == new


def test_scan_numbers_records_after_a_compaction_as_the_engine_does(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    with open_store(d) as s:
        fill(s)  # 116 records
        s.compact(SMART)  # keeps 56 as history; the state covers all 116
        s.append("ProductUpdated", {"id": "p0", "price": 7}, aggregate_id="p0", event_id="after")
        last_seq = s.versions["Product"]["p0"][2]
    frame = ll.read(d)
    assert frame["seq"].head(56).to_list() == list(range(56))  # the kept history, in journal order
    after = frame.filter(pl.col("event_id") == "after")
    assert after["seq"].to_list() == [116] == [last_seq]
    head = ll.state_at(d)["Product"].filter(pl.col("_key") == "p0")
    assert head["_changed_seq"].to_list() == [116] and head["price"].to_list() == [7]

"""Compaction policies: what each retains, and the errors for bad parameters."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lithair_lab.engine.policies import (
    CompactionPolicy,
    KeepLatestPerKey,
    MaxCountMaxAge,
    NoCompaction,
    SmartCompaction,
    SnapshotThenTruncate,
    check_critical_types,
    check_policy,
    next_trigger,
    retention_mask,
)
from lithair_lab.errors import PolicyError

from compaction_frames import T0, frame, product_updates


def kept(policy: CompactionPolicy, df: pl.DataFrame, now=None) -> list[int]:
    mask = retention_mask(policy, df, now=now or df["timestamp"].max() or T0)
    return df.filter(mask)["seq"].to_list()


def test_no_compaction_keeps_everything_and_never_triggers() -> None:
    df = product_updates(2, 10)
    assert kept(NoCompaction(), df) == list(range(12))
    assert next_trigger(NoCompaction().threshold, 0) is None


def test_smart_keeps_critical_and_recent() -> None:
    df = frame(
        [
            ("ProductCreated", "p1", {"id": "p1"}),
            ("UserRegistered", "u1", {"id": "u1"}),
            *[("ProductUpdated", "p1", {"id": "p1", "price": i}) for i in range(10)],
            ("PaymentProcessed", "o1", {"amount": 3}),
            ("ProductUpdated", "p1", {"id": "p1", "price": 99}),
        ]
    )
    p = SmartCompaction(threshold=10, keep_recent=3)
    # 0 and 1 critical (Created op, UserRegistered by name), 12 critical by name, 11..13 recent
    assert kept(p, df) == [0, 1, 11, 12, 13]


def test_smart_critical_types_compare_on_the_short_type() -> None:
    df = frame([("my_app::models::Audit", None, {}), ("Noise", None, {}), ("Noise", None, {})])
    p = SmartCompaction(threshold=5, keep_recent=0, critical_types=["app::Audit"], critical_ops=())
    assert kept(p, df) == [0]


def test_snapshot_then_truncate_keeps_nothing() -> None:
    assert kept(SnapshotThenTruncate(), product_updates(3, 5)) == []


def test_keep_latest_per_key_with_tombstones_and_active_segment() -> None:
    df = frame(
        [
            ("ProductCreated", "p1", {"id": "p1"}, 0),
            ("ProductCreated", "p2", {"id": "p2"}, 0),
            ("ProductUpdated", "p1", {"id": "p1", "v": 2}, 10),
            ("ProductDeleted", "p2", {"id": "p2"}, 10),  # tombstone, old at now=T0+2d
            ("OrderCreated", None, {"id": "p1"}, 20),  # key from the payload: a different model
            ("Ping", None, {"x": 1}, 20),  # no key: always kept
            ("ProductUpdated", "p1", {"id": "p1", "v": 3}, 86400 * 2),  # active segment
        ]
    )
    now = T0 + timedelta(days=2)
    assert kept(KeepLatestPerKey(threshold=10, active_segment=1), df, now) == [4, 5, 6]
    # a tombstone younger than the retention stays
    assert kept(KeepLatestPerKey(threshold=10, active_segment=1, tombstone_retention=timedelta(days=3)), df, now) == [
        3,
        4,
        5,
        6,
    ]
    # with a larger active segment, p1's older record is inside it and kept
    assert kept(KeepLatestPerKey(threshold=10, active_segment=5), df, now) == [2, 3, 4, 5, 6]


def test_max_count_and_max_age_per_entity() -> None:
    df = frame([("ProductUpdated", f"p{i % 2}", {"id": f"p{i % 2}", "v": i}, i * 3600) for i in range(8)])
    now = T0 + timedelta(hours=7)
    assert kept(MaxCountMaxAge(threshold=10, max_count=2), df, now) == [4, 5, 6, 7]
    assert kept(MaxCountMaxAge(threshold=10, max_age=timedelta(hours=2)), df, now) == [5, 6, 7]
    assert kept(MaxCountMaxAge(threshold=10, max_count=1, max_age=timedelta(hours=5)), df, now) == [6, 7]


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from(["Created", "Updated", "Deleted"]), st.integers(0, 4)), max_size=40),
    keep_recent=st.integers(0, 9),
    count=st.integers(1, 4),
)
def test_every_policy_keeps_a_subset_in_order_and_the_newest(ops, keep_recent, count) -> None:
    df = frame([(f"Item{op}", f"k{k}", {"id": f"k{k}"}) for op, k in ops])
    policies = [
        SmartCompaction(threshold=10, keep_recent=keep_recent),
        KeepLatestPerKey(threshold=10, active_segment=keep_recent),
        MaxCountMaxAge(threshold=10, max_count=count),
    ]
    for p in policies:
        seqs = kept(p, df)
        assert seqs == sorted(set(seqs))
        # the newest record of every key survives each per-key policy and the smart one keeps its recent tail
        if df.height and not isinstance(p, KeepLatestPerKey):
            last_of_key = df.group_by("aggregate_id").agg(pl.col("seq").max())["seq"].to_list()
            if isinstance(p, MaxCountMaxAge):
                assert set(last_of_key) <= set(seqs)
        tail = list(range(max(0, df.height - keep_recent), df.height))
        if not isinstance(p, MaxCountMaxAge):
            assert set(tail) <= set(seqs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SmartCompaction(threshold=0), "`threshold` must be a positive number of events, got 0"),
        (lambda: SmartCompaction(keep_recent=-1), "`keep_recent` must be a non-negative number of events, got -1"),
        (lambda: SmartCompaction(backups=-2), "`backups` must be a non-negative number of events, got -2"),
        (lambda: SmartCompaction(threshold=100, keep_recent=100), "must be below `threshold` (100)"),
        (lambda: SmartCompaction(snapshot_interval=0), "`snapshot_interval` must be a positive"),
        (lambda: SmartCompaction(critical_types="ProductCreated"), "must be a list of names"),
        (lambda: SmartCompaction(critical_types=["not a type"]), "not an event type name"),
        (lambda: SmartCompaction(threshold=True), "`threshold` must be a positive"),
        (lambda: KeepLatestPerKey(threshold=10, active_segment=10), "`active_segment` (10) must be below"),
        (lambda: KeepLatestPerKey(tombstone_retention=-timedelta(1)), "`tombstone_retention` must be"),
        (lambda: MaxCountMaxAge(), "needs `max_count`, `max_age` or both"),
        (lambda: MaxCountMaxAge(max_count=0), "`max_count` must be a positive"),
        (lambda: MaxCountMaxAge(max_age=timedelta(0)), "`max_age` must be a positive"),
        (lambda: NoCompaction(threshold=5), "`NoCompaction` never triggers"),
    ],
)
def test_bad_parameters_are_clear_errors(make, message) -> None:
    with pytest.raises(PolicyError) as e:
        make()
    assert message in str(e.value)


def test_threshold_zero_suggests_the_remedy() -> None:
    with pytest.raises(PolicyError, match="hint: use `NoCompaction"):
        SnapshotThenTruncate(threshold=0)


def test_unknown_critical_type_is_named_with_a_suggestion() -> None:
    p = SmartCompaction(critical_types=["ProductCreated", "OrderCreatd"])
    with pytest.raises(PolicyError) as e:
        check_critical_types(p, ["ProductCreated", "OrderCreated", "x::ProductUpdated"])
    assert "`OrderCreatd` (did you mean `OrderCreated`?)" in str(e.value)
    assert "`ProductCreated`" not in str(e.value).split(":", 1)[1].split("\n")[0]
    check_critical_types(SmartCompaction(), [])  # the seed's default list is never refused


class KeepOrders:
    name = "orders only"
    threshold = 1_000
    snapshot = True
    backups = 5

    def retain(self, *, now):
        return pl.col("model") == "Order"


def test_a_user_policy_is_a_small_class() -> None:
    df = frame([("OrderCreated", "o1", {}), ("ProductCreated", "p1", {}), ("OrderUpdated", "o1", {})])
    assert check_policy(KeepOrders()) is not None
    assert kept(KeepOrders(), df) == [0, 2]


def test_a_user_policy_that_misbehaves_is_named() -> None:
    class Nulls(KeepOrders):
        name = "nully"

        def retain(self, *, now):
            return pl.col("op") == "Updated"  # null for non-CRUD rows

    class Wrong(KeepOrders):
        name = "wrong"

        def retain(self, *, now):
            return pl.col("seq")

    df = frame([("Ping", None, {}), ("OrderUpdated", "o1", {})])
    with pytest.raises(PolicyError, match="gave 1 nulls"):
        kept(Nulls(), df)
    with pytest.raises(PolicyError, match="must give one boolean per record"):
        kept(Wrong(), df)
    with pytest.raises(PolicyError, match="lacks `threshold`, `snapshot`, `backups`"):
        check_policy(type("Half", (), {"name": "h", "retain": lambda self, now: pl.lit(True)})())


def test_trigger_backs_off_when_a_compaction_keeps_much() -> None:
    assert next_trigger(10_000, 1_000) == 10_000
    assert next_trigger(100, 70) == 140

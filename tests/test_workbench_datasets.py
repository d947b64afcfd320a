"""Workload generators: deterministic, exactly sized, shaped like the seed's shop and a mailbox."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from lithair_lab.datasets.workloads import START, WORKLOADS, mailbox, shop
from lithair_lab.formats.crud import split_type


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_workloads_are_deterministic_and_exactly_sized(kind: str) -> None:
    make = WORKLOADS[kind]
    a, b, c = list(make(3000, seed=7)), list(make(3000, seed=7)), list(make(3000, seed=8))
    assert len(a) == 3000
    assert a == b
    assert a != c
    assert len({e.event_id for e in a}) == len(a)  # unique idempotence keys
    assert all(split_type(e.event_type) is not None for e in a)  # every event is CRUD
    ts = [e.timestamp for e in a]
    assert ts == sorted(ts)
    start = int(START.timestamp())
    assert ts[0] == start
    assert 0.7 < (ts[-1] - start) / (4 * 7 * 86400) < 1.3  # about the 4 weeks asked for
    assert list(make(0)) == []


def test_shop_has_price_storms_deletes_recreates_and_a_day_night_rhythm() -> None:
    events = list(shop(20_000, seed=1))
    # storms: long runs of consecutive price updates on one hot product, like the seed's curl loops
    runs = [
        (k, len(list(g)))
        for k, g in itertools.groupby(events, key=lambda e: (e.event_type, e.aggregate_id))
        if k[0] == "ProductUpdated"
    ]
    assert max(n for _, n in runs) >= 100
    # a deleted product comes back under the same key
    deleted = {e.aggregate_id for e in events if e.event_type == "ProductDeleted"}
    recreated = [
        e.aggregate_id
        for i, e in enumerate(events)
        if e.event_type == "ProductCreated" and any(
            p.event_type == "ProductDeleted" and p.aggregate_id == e.aggregate_id for p in events[:i]
        )
    ]
    assert deleted and recreated
    # a key is created only when it is not live: no "create over live" in the history
    live: set[tuple[str, str]] = set()
    for e in events:
        if e.event_type.endswith("Created"):
            assert (e.event_type, e.aggregate_id) not in live
            live.add((e.event_type, e.aggregate_id))
        elif e.event_type.endswith("Deleted"):
            live.discard((e.event_type.replace("Deleted", "Created"), e.aggregate_id))
    # orders are paid before they move on, and payments name their order
    types = Counter(e.event_type for e in events)
    assert {"UserCreated", "OrderCreated", "OrderUpdated", "PaymentCreated"} <= set(types)
    paid = {e.payload["order_id"] for e in events if e.event_type == "PaymentCreated"}
    assert paid <= {e.aggregate_id for e in events if e.event_type == "OrderCreated"}
    # busy days, quiet nights: far more events per hour at 14:00 than at 03:00 UTC
    hours = Counter((e.timestamp // 3600) % 24 for e in events)
    assert hours[14] > 2 * hours[3]


def test_mailbox_rewrites_whole_messages() -> None:
    events = list(mailbox(5000, seed=3))
    fields = set(next(e for e in events if e.event_type == "MessageCreated").payload)
    updates = [e for e in events if e.event_type == "MessageUpdated"]
    assert len(updates) > len(events) / 2  # the pattern that asks for compaction
    assert all(set(e.payload) == fields for e in updates)  # whole objects, never patches
    # consecutive versions of one message differ in one field: read/unread, flag or folder
    last: dict[str, dict[str, object]] = {}
    for e in events:
        if e.event_type == "MessageUpdated":
            changed = {k for k in fields if e.payload[k] != last[e.aggregate_id][k]}
            assert len(changed) == 1 and changed <= {"read", "flagged", "folder"}
        last[e.aggregate_id] = e.payload

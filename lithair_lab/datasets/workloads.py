"""Realistic event streams, deterministic by seed: an e-commerce shop and a mailbox.

A workload is a plain iterator of :class:`Event` (no I/O); ``generate.py`` writes
it through the engine. Every event is a CRUD event (``<Model><Op>``, payload the
whole object after the change, as upstream CRUD models write them), so states,
histories and compaction policies apply to them unchanged.

Time follows a working week: busy days, quiet nights, and short bursts (a
flash sale, a morning inbox sweep), stretched to span ``weeks`` weeks.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


@dataclass(frozen=True, slots=True)
class Event:
    """One event to append: what ``Store.append`` takes, with every field fixed by the seed."""

    event_type: str
    payload: dict[str, Any]
    aggregate_id: str
    timestamp: int  # Unix seconds
    event_id: str


class _Clock:
    """Timestamps for ``n`` events over ``weeks`` weeks with day/night rhythm and bursts."""

    def __init__(self, rng: random.Random, n: int, weeks: float, start: datetime) -> None:
        span = weeks * 7 * 86400
        # The random draws come first, so the rhythm can be fitted to the span below
        # without consuming the generator differently.
        draws = [rng.expovariate(1.0) for _ in range(n)]
        bursts = [rng.randint(20, 200) if rng.random() < 0.002 else 0 for _ in range(n)]  # flash sales, sweeps
        base = span / max(n, 1)
        for _ in range(4):  # fit the mean gap so the events span about `weeks`
            gaps = self._gaps(draws, bursts, base)
            total = sum(gaps)
            if not total:
                break
            base *= span / total
        # No final rescaling: stretching the times would shift nights into days.
        first = int(start.timestamp())
        self._times, acc = [first], 0.0
        for g in gaps[:-1]:  # the gap after event i is set by the hour of event i
            acc += g
            self._times.append(first + int(acc))
        self._i = 0

    @staticmethod
    def _gaps(draws: list[float], bursts: list[int], base: float) -> list[float]:
        gaps, t, burst_left = [], 0.0, 0
        for u, burst in zip(draws, bursts, strict=True):
            hour = (t / 3600) % 24
            day = int(t / 86400) % 7  # the workload starts on a Monday
            weight = 1.0 if 8 <= hour < 22 else 8.0  # quiet nights
            weight *= 1.6 if day >= 5 else 1.0  # slower weekends
            if burst_left:
                burst_left -= 1
                weight *= 0.05
            elif burst:
                burst_left = burst
            gap = u * weight * base
            gaps.append(gap)
            t += gap
        return gaps

    def next(self) -> int:
        ts = self._times[self._i]
        self._i += 1
        return ts


def _event_id(rng: random.Random, model: str, op: str, key: str) -> str:
    # Era C style idempotence key; the uuid comes from the seeded generator, not the OS.
    return f"{model}:{op}:{key}:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _crud(rng: random.Random, clock: _Clock, model: str, op: str, key: str, obj: dict[str, Any]) -> Event:
    return Event(f"{model}{op}", dict(obj), key, clock.next(), _event_id(rng, model, op, key))


_ADJ = ("Red", "Blue", "Steel", "Oak", "Paper", "Glass", "Quiet", "Swift", "Tiny", "Grand")
_NOUN = ("Pen", "Lamp", "Chair", "Mug", "Notebook", "Kettle", "Desk", "Clock", "Bag", "Plant")
_FIRST = ("Ada", "Brune", "Chen", "Dara", "Elio", "Fatou", "Goran", "Hana", "Ines", "Jun", "Kofi", "Lea")
_STATUS_FLOW = ("paid", "shipped", "delivered")


def shop(events: int, *, seed: int = 0, weeks: float = 4, start: datetime = START) -> Iterator[Event]:
    """An e-commerce shop like the seed's: products, users, orders, payments.

    Parameters
    ----------
    events
        Exact number of events produced.
    seed
        Same seed, same events, byte for byte.
    weeks
        Time span of the workload.
    start
        First timestamp (UTC).

    Yields
    ------
    Event
        `ProductCreated/Updated/Deleted`, `UserCreated/Updated`, `OrderCreated/Updated`,
        `PaymentCreated`. A few hot products take most price updates, with storms of
        hundreds of consecutive updates on one product (the seed's curl loops);
        products are deleted and later re-created under the same key.
    """
    rng = random.Random(seed)
    clock = _Clock(rng, events, weeks, start)
    products: dict[str, dict[str, Any]] = {}
    deleted: list[str] = []
    users: dict[str, dict[str, Any]] = {}
    user_keys: list[str] = []  # users are never deleted: a list keeps choices O(1)
    orders: dict[str, dict[str, Any]] = {}
    open_orders: dict[str, None] = {}  # insertion-ordered: oldest first, O(1) removal
    n_products = max(4, min(500, events // 150))
    hot = [f"p{i}" for i in range(1, max(2, n_products // 20) + 1)]
    storm: tuple[str, int, int] | None = None  # (product, updates left, step)
    made = 0

    def new_product(key: str) -> Event:
        name = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}"
        products[key] = {"id": key, "name": name, "price": round(rng.uniform(2, 400), 2), "stock": rng.randint(0, 500)}
        return _crud(rng, clock, "Product", "Created", key, products[key])

    def new_user() -> Event:
        key = f"u{len(users) + 1}"
        first = rng.choice(_FIRST)
        users[key] = {"id": key, "name": f"{first} {chr(65 + rng.randrange(26))}.", "email": f"{first.lower()}{len(users) + 1}@example.com"}
        user_keys.append(key)
        return _crud(rng, clock, "User", "Created", key, users[key])

    def price_update(key: str, price: float) -> Event:
        products[key] = {**products[key], "price": price}
        return _crud(rng, clock, "Product", "Updated", key, products[key])

    # The catalogue and the first customers come first, as when a shop opens.
    while made < events and len(products) < n_products:
        yield new_product(f"p{len(products) + 1}")
        made += 1
    while made < events and len(users) < 3:
        yield new_user()
        made += 1
    while made < events:
        made += 1
        if storm is not None:
            key, left, step = storm
            storm = (key, left - 1, step + 1) if left > 1 else None
            if key in products:
                yield price_update(key, round(400 + step * 0.01, 2))
                continue
        r = rng.random()
        if r < 0.002:  # a storm starts: one hot product repriced hundreds of times in a row
            live_hot = [k for k in hot if k in products]
            if live_hot:
                storm = (rng.choice(live_hot), rng.randint(100, 600), 1)
            yield new_user()
        elif r < 0.30:  # price and stock updates, mostly on the hot products
            key = rng.choice(hot) if rng.random() < 0.7 else rng.choice(list(products) or hot)
            if key not in products:  # a withdrawn hot product comes back
                if key in deleted:
                    deleted.remove(key)
                yield new_product(key)
            elif rng.random() < 0.8:
                yield price_update(key, round(products[key]["price"] * rng.uniform(0.9, 1.1), 2))
            else:
                products[key] = {**products[key], "stock": rng.randint(0, 500)}
                yield _crud(rng, clock, "Product", "Updated", key, products[key])
        elif r < 0.32 and len(products) > 2:  # withdraw a product ...
            key = rng.choice(sorted(products))
            products.pop(key)
            deleted.append(key)
            yield _crud(rng, clock, "Product", "Deleted", key, {"id": key})
        elif r < 0.34 and deleted:  # ... and bring one back under the same key
            yield new_product(deleted.pop(rng.randrange(len(deleted))))
        elif r < 0.44:
            yield new_user()
        elif r < 0.47 and users:
            key = rng.choice(user_keys)
            users[key] = {**users[key], "email": f"{key}.{rng.randrange(10**6)}@example.org"}
            yield _crud(rng, clock, "User", "Updated", key, users[key])
        elif r < 0.60 and users and products:  # orders arrive about as fast as they are fulfilled
            key = f"o{len(orders) + 1}"
            items = [
                {"product_id": p, "qty": rng.randint(1, 3), "price": products[p]["price"]}
                for p in rng.sample(sorted(products), k=min(len(products), rng.randint(1, 3)))
            ]
            total = round(sum(i["qty"] * i["price"] for i in items), 2)
            orders[key] = {"id": key, "user_id": rng.choice(user_keys), "items": items, "total": total, "status": "pending"}
            open_orders[key] = None
            yield _crud(rng, clock, "Order", "Created", key, orders[key])
        elif open_orders:
            if rng.random() < 0.5:
                key = next(iter(open_orders))  # the oldest open order
            else:  # or one of the latest few
                key = rng.choice(list(itertools.islice(reversed(open_orders), 20)))
            order = orders[key]
            if order["status"] == "pending":  # payment first, then the order moves on
                order["status"] = "paid"
                pay = f"pay{key[1:]}"
                yield _crud(rng, clock, "Payment", "Created", pay, {"id": pay, "order_id": key, "amount": order["total"], "method": rng.choice(("card", "transfer", "wallet"))})
            else:
                order["status"] = _STATUS_FLOW[_STATUS_FLOW.index(order["status"]) + 1]
                if order["status"] == "delivered":
                    del open_orders[key]
                yield _crud(rng, clock, "Order", "Updated", key, order)
        else:
            yield new_user()


_SENDERS = ("alerts@bank.example", "news@daily.example", "team@work.example", "friend@mail.example", "shop@store.example")
_SUBJECTS = ("Weekly report", "Your invoice", "Lunch?", "Build failed", "New comment", "Meeting notes", "Sale ends today")


def mailbox(events: int, *, seed: int = 0, weeks: float = 4, start: datetime = START, mailboxes: int = 3) -> Iterator[Event]:
    """A mailbox: messages arrive, then are read, marked unread, flagged, archived, deleted.

    Every change rewrites the **whole** message object (`MessageUpdated`), the
    pattern that made upstream users ask for compaction: a few hundred messages
    produce thousands of near-identical events.

    Parameters
    ----------
    events
        Exact number of events produced.
    seed
        Same seed, same events.
    weeks
        Time span of the workload.
    start
        First timestamp (UTC).
    mailboxes
        Number of owners whose messages interleave.

    Yields
    ------
    Event
        `MessageCreated`, `MessageUpdated`, `MessageDeleted`.
    """
    rng = random.Random(seed)
    clock = _Clock(rng, events, weeks, start)
    messages: dict[str, dict[str, Any]] = {}
    live: list[str] = []
    for _ in range(events):
        r = rng.random()
        if r < 0.2 or len(live) < 5:
            key = f"m{len(messages) + 1}"
            messages[key] = {
                "id": key,
                "owner": f"box{rng.randrange(mailboxes) + 1}",
                "from": rng.choice(_SENDERS),
                "subject": rng.choice(_SUBJECTS),
                "folder": "inbox",
                "read": False,
                "flagged": False,
            }
            live.append(key)
            yield _crud(rng, clock, "Message", "Created", key, messages[key])
            continue
        # recent mail is touched far more often than old mail
        index = len(live) - 1 - min(len(live) - 1, int(rng.expovariate(1 / 8)))
        key = live[index]
        msg = messages[key]
        if r < 0.85:
            msg["read"] = not msg["read"]
        elif r < 0.92:
            msg["flagged"] = not msg["flagged"]
        elif r < 0.97:
            msg["folder"] = "archive" if msg["folder"] == "inbox" else "inbox"
        else:
            live.pop(index)  # near the end: cheap
            yield _crud(rng, clock, "Message", "Deleted", key, {"id": key})
            continue
        yield _crud(rng, clock, "Message", "Updated", key, msg)


WORKLOADS = {"shop": shop, "mailbox": mailbox}

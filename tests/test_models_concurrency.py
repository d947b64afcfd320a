"""Many writer threads against one ModelStore: invariants hold, tallies are exact, replay agrees."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import orjson

import lithair_lab as ll
from lithair_lab.engine.models import ModelStore, open_models, shop_models
from lithair_lab.errors import ConstraintError

THREADS = 8
OPS_PER_THREAD = 5_000
PRODUCTS = 10
ACCOUNTS = 10
INITIAL_STOCK = 2_000
INITIAL_BALANCE = 1_000


def run_threads(target, n: int = THREADS) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def setup_shop(db: ModelStore) -> None:
    db.create("users", {"id": "buyer", "email": "buyer@example.com"})
    for p in range(PRODUCTS):
        db.create("products", {"id": f"p{p}", "name": f"P{p}", "price": 1, "stock": INITIAL_STOCK})
    for a in range(ACCOUNTS):
        db.create("accounts", {"id": f"a{a}", "owner": f"o{a}", "balance": INITIAL_BALANCE})


def test_orders_never_exceed_stock_and_transfers_conserve_money(tmp_path: Path) -> None:
    path = tmp_path / "shop"
    ordered: list[Counter[str]] = [Counter() for _ in range(THREADS)]
    refused = [0] * THREADS
    moved = [0] * THREADS
    with open_models(path, shop_models(), fsync=False) as db:
        setup_shop(db)

        def work(i: int) -> None:
            rng = random.Random(i)
            for n in range(OPS_PER_THREAD):
                if n % 2 == 0:  # place an order if the stock allows it
                    p, qty = f"p{rng.randrange(PRODUCTS)}", rng.randint(1, 3)
                    with db.transaction():
                        stock = db.get("products", p)["stock"]
                        if stock < qty:
                            refused[i] += 1
                            continue
                        db.update("products", p, {"stock": stock - qty})
                        db.create("orders", {"id": f"t{i}-{n}", "user_id": "buyer", "product_id": p, "quantity": qty})
                    ordered[i][p] += qty
                else:  # move money between two accounts if the balance allows it
                    src, dst = rng.sample(range(ACCOUNTS), 2)
                    amount = rng.randint(1, 200)
                    with db.transaction():
                        balance = db.get("accounts", f"a{src}")["balance"]
                        if balance < amount:
                            continue
                        db.update("accounts", f"a{src}", {"balance": balance - amount})
                        db.update("accounts", f"a{dst}", {"balance": db.get("accounts", f"a{dst}")["balance"] + amount})
                    moved[i] += amount

        run_threads(work)
        state = db.store.state
        tally = sum(ordered, Counter())
        orders = state["Order"]
        by_product: Counter[str] = Counter()
        for o in orders.values():
            by_product[o["product_id"]] += o["quantity"]
        assert by_product == tally  # every acknowledged order is there, nothing else
        for p in range(PRODUCTS):
            stock = state["Product"][f"p{p}"]["stock"]
            assert stock >= 0
            assert stock + tally[f"p{p}"] == INITIAL_STOCK
        assert sum(a["balance"] for a in state["Account"].values()) == ACCOUNTS * INITIAL_BALANCE
        assert all(a["balance"] >= 0 for a in state["Account"].values())
        assert sum(moved) > 0 and sum(refused) > 0  # both paths of the invariant were exercised
        snapshot = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
        events = db.store.event_count
    with open_models(path, fsync=False) as db:  # replay gives the same state
        assert db.store.event_count == events
        assert orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS) == snapshot
        assert db.find("orders", status="pending").total == len(db.store.state["Order"])
        replayed = db.store.state
        # ... and so does the vectorized state-at-T of the read path
        frames = ll.state_at(path)
        assert dict(frames["Product"].select("_key", "stock").iter_rows()) == {k: o["stock"] for k, o in replayed["Product"].items()}
        assert dict(frames["Account"].select("_key", "balance").iter_rows()) == {k: o["balance"] for k, o in replayed["Account"].items()}
        assert frames["Order"]["quantity"].sum() == sum(tally.values())


def test_unique_values_hold_across_concurrent_writers(tmp_path: Path) -> None:
    wins: list[list[str]] = [[] for _ in range(THREADS)]
    with open_models(tmp_path / "shop", shop_models(), fsync=False) as db:
        barrier = threading.Barrier(THREADS)

        def work(i: int) -> None:
            barrier.wait()
            for n in range(200):  # every thread races for the same 200 e-mail addresses
                try:
                    db.create("users", {"id": f"t{i}-{n}", "email": f"user{n}@example.com"})
                    wins[i].append(f"user{n}@example.com")
                except ConstraintError as e:
                    assert e.kind == "unique"

        run_threads(work)
        won = [e for w in wins for e in w]
        assert sorted(won) == sorted(f"user{n}@example.com" for n in range(200))  # each exactly once
        assert db.count("users") == 200


def test_a_second_writer_process_is_refused_so_constraints_cannot_race(tmp_path: Path) -> None:
    """Constraints are checked in one process; the store's lock keeps every other writer out."""
    with open_models(tmp_path / "shop", shop_models(), fsync=False):
        code = (
            "import sys, lithair_lab as ll\n"
            "try:\n    ll.open_models(sys.argv[1])\nexcept ll.StoreLockedError as e:\n    print(type(e).__name__)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "shop")], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "StoreLockedError"

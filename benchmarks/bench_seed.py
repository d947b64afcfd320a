"""The seed document's throughput table, measured: Python API and HTTP API, beside raw orjson writes.

``python -m benchmarks.bench_seed [--quick]``

The seed claims (its "Throughput Testing" table): product updates 1,000/s at
2 ms p99 and 50 MB, order creation 500/s at 5 ms and 30 MB, user registration
100/s at 10 ms and 20 MB, bulk operations 5,000/s at 1 ms and 100 MB. Each of
the four operations runs on a fresh shop directory (``shop_models()``, the
store's default options: sync mode, no fsync unless ``LT_FSYNC_ON_APPEND``):

- product updates: ``put`` of a new price to one of 100 existing products;
- order creation: ``create`` of an order of an existing user and product
  (two foreign keys checked);
- user registration: ``create`` of a user (unique email checked);
- bulk operations: through Python, transactions of 100 product creations
  (one all-or-none ``append_many`` each; the latency is per transaction);
  through HTTP, which has no batch route, product creations over 16
  keep-alive connections at once (the latency is per request).

Python API rows run in a child process that opens the store, prepares what the
operation needs, then times each call; its peak resident memory is the row's
memory. HTTP rows drive the real server (``lithair-lab serve --shop`` in its
own process, ``load_http.ServerProcess``) from this process over loopback with
the h11 client (``load_http.Connection``), one keep-alive connection and one
request after another (the seed's curl loops, without a new TCP connection per
request; ``bench_http`` has those); the memory is the server's peak (``VmHWM``).

The anchor of every rate is the raw append: ``orjson.dumps`` of the same
events' envelopes, written 1,000 lines per ``write`` (no validation, no CRC,
hash chain, dedup, state or indexes), measured in the same run. The anchor of
a peak memory is the same process's resident memory just before the timed
operations (Python: the store open and prepared; HTTP: the server started).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .harness import Row, Timing, in_child, markdown, percentile, proc_status_mib

AREA = "seed"
PRODUCTS = 100
USERS = 100
BULK = 100  # product creations per Python transaction
BULK_CONNECTIONS = 16
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Operation:
    """One row of the seed's table: what is prepared, what each timed call writes."""

    key: str
    title: str
    seed_rate: str
    seed_p99: str
    seed_memory: str


OPERATIONS = (
    Operation("product_updates", "product updates", "1,000/s", "2 ms", "50 MB"),
    Operation("order_creation", "order creation", "500/s", "5 ms", "30 MB"),
    Operation("user_registration", "user registration", "100/s", "10 ms", "20 MB"),
    Operation("bulk", "bulk operations", "5,000/s", "1 ms", "100 MB"),
)


def product(i: int) -> dict[str, Any]:
    return {"name": f"Product {i}", "price": 400.0, "stock": 100}


def price(i: int) -> dict[str, Any]:
    return {"price": round(400 + i * 0.01, 2)}


def order(i: int) -> dict[str, Any]:
    k = i % PRODUCTS
    return {"id": f"o{i}", "user_id": f"u{i % USERS}", "product_id": str(k), "quantity": 1 + i % 3, "total": 400.0 * (1 + i % 3)}


def user(i: int) -> dict[str, Any]:
    return {"id": f"n{i}", "email": f"user{i}@example.com", "name": f"User {i}"}


# -- the anchor --------------------------------------------------------------------


def events_of(op: str, n: int) -> list[tuple[str, dict[str, Any], str]]:
    """``(event_type, payload, aggregate_id)`` of the ``n`` events the operation writes."""
    if op == "product_updates":
        return [("ProductUpdated", price(i), str(i % PRODUCTS)) for i in range(n)]
    if op == "order_creation":
        return [("OrderCreated", order(i), f"o{i}") for i in range(n)]
    if op == "user_registration":
        return [("UserCreated", user(i), f"n{i}") for i in range(n)]
    return [("ProductCreated", {"id": f"b{i}", **product(i)}, f"b{i}") for i in range(n)]


def raw_append_rate(path: Path, op: str, n: int) -> float:
    """Events/s of ``orjson.dumps`` of each envelope, written 1,000 lines at a time."""
    events = events_of(op, n)
    t0 = time.perf_counter()
    with path.open("ab") as f:
        batch: list[bytes] = []
        for i, (event_type, payload, key) in enumerate(events):
            env = {
                "event_type": event_type, "event_id": f"e{i}", "timestamp": T0 + i,
                "payload": orjson.dumps(payload).decode(), "aggregate_id": key,
            }  # fmt: skip
            batch.append(orjson.dumps(env) + b"\n")
            if len(batch) == 1_000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))
    return n / (time.perf_counter() - t0)


# -- Python API (runs in a child process) ------------------------------------------------


def python_child(op: str, n: int, directory: str) -> dict[str, Any]:
    """Open a fresh shop in ``directory``, prepare, time ``n`` events of ``op``; rate, latencies, memory."""
    import lithair_lab as ll

    with ll.open_models(directory, ll.shop_models()) as db:
        if op in ("product_updates", "order_creation"):
            with db.transaction():
                for k in range(PRODUCTS):
                    db.put("products", str(k), product(k))
                for k in range(USERS):
                    db.create("users", {"id": f"u{k}", "email": f"u{k}@example.com"})
        calls: list[Callable[[], Any]]
        if op == "product_updates":
            calls = [lambda i=i: db.put("products", str(i % PRODUCTS), price(i)) for i in range(n)]
        elif op == "order_creation":
            calls = [lambda i=i: db.create("orders", order(i)) for i in range(n)]
        elif op == "user_registration":
            calls = [lambda i=i: db.create("users", user(i)) for i in range(n)]
        else:

            def bulk(start: int) -> None:
                with db.transaction():
                    for i in range(start, start + BULK):
                        db.create("products", {"id": f"b{i}", **product(i)})

            calls = [lambda s=s: bulk(s) for s in range(0, n, BULK)]
        before = proc_status_mib("VmRSS")
        latencies = []
        t0 = time.perf_counter()
        for call in calls:
            t = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - t0
        written = db.store.event_count
    expected = n + (PRODUCTS + USERS if op in ("product_updates", "order_creation") else 0)
    if written != expected:
        raise RuntimeError(f"`{op}` left {written:,} events in the store, expected {expected:,}")
    return {"seconds": seconds, "latencies": latencies, "rss_before": before, "peak": proc_status_mib("VmHWM")}


def run_python(op: str, n: int, directory: Path) -> dict[str, Any]:
    return in_child("benchmarks.bench_seed", "python_child", op, n, str(directory))


# -- HTTP API ---------------------------------------------------------------------------


async def _http_ops(url: str, op: str, n: int) -> tuple[float, list[float]]:
    from .load_http import Connection

    setup = Connection(url)
    if op in ("product_updates", "order_creation"):
        for k in range(PRODUCTS):
            await _ok(setup, "PUT", f"/api/products/{k}", product(k))
        for k in range(USERS):
            await _ok(setup, "POST", "/api/users", {"id": f"u{k}", "email": f"u{k}@example.com"})
    await setup.aclose()
    if op == "product_updates":
        requests = [("PUT", f"/api/products/{i % PRODUCTS}", price(i)) for i in range(n)]
    elif op == "order_creation":
        requests = [("POST", "/api/orders", order(i)) for i in range(n)]
    elif op == "user_registration":
        requests = [("POST", "/api/users", user(i)) for i in range(n)]
    else:
        requests = [("PUT", f"/api/products/b{i}", product(i)) for i in range(n)]
    connections = BULK_CONNECTIONS if op == "bulk" else 1
    latencies: list[float] = []
    queue = iter(requests)

    async def worker() -> None:
        conn = Connection(url)
        for method, target, body in queue:  # the shared iterator hands each request to one worker
            t = time.perf_counter()
            await _ok(conn, method, target, body)
            latencies.append(time.perf_counter() - t)
        await conn.aclose()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - t0, latencies


async def _ok(conn: Any, method: str, target: str, body: dict[str, Any]) -> None:
    status, text = await conn.request(method, target, orjson.dumps(body))
    if status >= 300:
        raise RuntimeError(f"{method} {target}: HTTP {status} {text[:200]!r}")


def run_http(op: str, n: int, directory: Path) -> dict[str, Any]:
    from .load_http import ServerProcess

    with ServerProcess(directory) as server:
        time.sleep(0.2)  # let the server's start-up allocations settle before the baseline
        before = proc_status_mib("VmRSS", server.proc.pid)  # before the prepared entities; VmHWM after the run is the peak
        seconds, latencies = asyncio.run(_http_ops(server.url, op, n))
        peak = proc_status_mib("VmHWM", server.proc.pid)
        if server.stop() != 0:
            raise RuntimeError(f"the server of `{op}` did not stop cleanly")
    return {"seconds": seconds, "latencies": latencies, "rss_before": before, "peak": peak}


# -- rows -------------------------------------------------------------------------------


def run(quick: bool, repeat: int | None = None) -> list[Row]:
    repeat = repeat or (1 if quick else 3)
    sizes = {
        "python": {"product_updates": 5_000, "order_creation": 5_000, "user_registration": 5_000, "bulk": 20_000},
        "HTTP": {"product_updates": 2_000, "order_creation": 2_000, "user_registration": 2_000, "bulk": 5_000},
    }
    if quick:
        sizes = {api: {op: max(BULK, n // 20) for op, n in ops.items()} for api, ops in sizes.items()}
    runners = {"python": run_python, "HTTP": run_http}
    rows: list[Row] = []
    for api in ("python", "HTTP"):
        for operation in OPERATIONS:
            op, n = operation.key, sizes[api][operation.key]
            results, anchors = [], []
            for _ in range(repeat):  # a fresh directory and process each time
                with tempfile.TemporaryDirectory() as tmp:
                    results.append(runners[api](op, n, Path(tmp) / "shop"))
                    anchors.append(raw_append_rate(Path(tmp) / "raw.jsonl", op, n))
            rows += _rows(api, operation, n, results, anchors)
    return rows


def _rows(api: str, op: Operation, n: int, results: list[dict[str, Any]], anchors: list[float]) -> list[Row]:
    def t(values: list[float]) -> Timing:
        return Timing(tuple(values))

    per = "transaction of 100" if api == "python" and op.key == "bulk" else "request" if api == "HTTP" else "call"
    how = {
        ("python", "bulk"): f"{n:,} product creations in transactions of {BULK}",
        ("HTTP", "bulk"): f"{n:,} PUT new product, {BULK_CONNECTIONS} keep-alive connections",
    }.get((api, op.key), f"{n:,} {'requests, 1 keep-alive connection' if api == 'HTTP' else 'calls'}")
    name = f"{api} API: {op.title} ({how})"
    return [
        Row(AREA, f"{name}: events/s", t([n / r["seconds"] for r in results]), "events/s",
            "raw orjson batched writes", t(anchors), higher_is_better=True, target=f"seed: {op.seed_rate}"),
        Row(AREA, f"{name}: p50 latency per {per}", t([percentile(r["latencies"], 0.5) * 1000 for r in results]), "ms"),
        Row(AREA, f"{name}: p99 latency per {per}", t([percentile(r["latencies"], 0.99) * 1000 for r in results]), "ms",
            target=f"seed: {op.seed_p99}"),
        Row(AREA, f"{name}: peak memory{' (server)' if api == 'HTTP' else ''}", t([r["peak"] for r in results]), "MiB",
            "RSS before the timed operations", t([r["rss_before"] for r in results]), target=f"seed: {op.seed_memory}"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/20 of the sizes, one run each (about 20 s)")
    print(markdown(run(parser.parse_args().quick)))


if __name__ == "__main__":
    main()

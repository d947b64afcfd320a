"""HTTP API: the seed's curl loops and the 100-connection load, each beside its anchor.

``python -m benchmarks.bench_http [--quick]``

- Seed loop 1: ``PUT /api/products/1`` with ``{"name", "price"}``, each request
  on a new connection (``Connection: close``), against a fresh shop; anchor:
  the same writes made in-process through ``ModelStore.put`` (what HTTP costs).
- Seed loop 2: ``PUT /api/products/1`` with ``{"price"}`` only, new connection
  each, with the seed's smart compaction (threshold 10,000) running in the
  server, so it triggers during the loop; no request may fail.
- Load: mixed reads/writes over 100 keep-alive connections; anchor: ``GET
  /health`` at the same concurrency (the HTTP stack's ceiling on this machine).
  Then every acknowledged write is checked in the log, exactly once.

The server is the real CLI in its own process; the client speaks HTTP/1.1
through h11 (see ``load_http.Connection``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson

from lithair_lab.engine.models import open_models, shop_models

from .harness import Row, Timing, markdown
from .load_http import Connection, ServerProcess, check_log, run_load

AREA = "http"


async def _seed_loop(url: str, start: int, n: int, whole: bool) -> tuple[float, list[int]]:
    failures: list[int] = []
    t0 = time.perf_counter()
    for i in range(start, start + n):
        body = {"name": f"Test Product {i}", "price": 400 + i} if whole else {"price": round(400 + i * 0.01, 2)}
        status, _ = await Connection(url, close=True).request("PUT", "/api/products/1", orjson.dumps(body))
        if status >= 300:
            failures.append(status)
    return time.perf_counter() - t0, failures


def _in_process(path: Path, loop1: int, loop2: int) -> tuple[float, float]:
    """The two loops' writes made directly through ``ModelStore.put`` (same store options as the server)."""
    seconds = []
    with open_models(path, shop_models()) as db:
        for n, whole in ((loop1, True), (loop2, False)):
            t0 = time.perf_counter()
            for i in range(1, n + 1):
                db.put("products", "1", {"name": f"Test Product {i}", "price": 400 + i} if whole else {"price": round(400 + i * 0.01, 2)})
            seconds.append(time.perf_counter() - t0)
    return seconds[0], seconds[1]


async def _health(url: str, requests: int, concurrency: int) -> float:
    async def worker(k: int) -> None:
        conn = Connection(url)
        for _ in range(k):
            await conn.request("GET", "/health")
        await conn.aclose()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return time.perf_counter() - t0


def _seed_run(base: Path, loop1: int, loop2: int, threshold: int) -> dict[str, float]:
    shop = base / "seed"
    with ServerProcess(shop, "--compaction", "smart", "--compact-threshold", str(threshold)) as server:
        s1, f1 = asyncio.run(_seed_loop(server.url, 1, loop1, whole=True))
        s2, f2 = asyncio.run(_seed_loop(server.url, 1, loop2, whole=False))
        metrics = orjson.loads(asyncio.run(Connection(server.url, close=True).request("GET", "/metrics"))[1])
        assert server.stop() == 0
    a1, a2 = _in_process(base / "anchor", loop1, loop2)
    return {"r1": loop1 / s1, "r2": loop2 / s2, "a1": loop1 / a1, "a2": loop2 / a2, "failed": len(f1) + len(f2), "compactions": metrics["compactions"]}


def _load_run(base: Path, n: int) -> dict[str, float]:
    loaded = base / "load"
    with ServerProcess(loaded) as server:
        health = asyncio.run(_health(server.url, n, 100))
        result = run_load(server.url, requests=n, concurrency=100, write_ratio=0.5)
        assert server.stop() == 0
    checked = check_log(loaded, result.acked, result.unacked)
    return {**result.summary(), "health_rps": n / health, "acked": len(result.acked), "found": checked["acked_found"]}


def run(quick: bool, repeat: int = 3) -> list[Row]:
    loop1, loop2 = (100, 500) if quick else (1_000, 10_000)
    load_n = 1_000 if quick else 10_000
    threshold = 250 if quick else 10_000
    seeds, loads = [], []
    for _ in range(repeat):  # each run on fresh directories and a fresh server
        with tempfile.TemporaryDirectory() as tmp:
            seeds.append(_seed_run(Path(tmp), loop1, loop2, threshold))
            loads.append(_load_run(Path(tmp), load_n))

    def t(runs: list[dict[str, float]], key: str) -> Timing:
        return Timing(tuple(r[key] for r in runs))

    return [
        Row(AREA, f"seed loop 1: {loop1:,} PUT name+price, new connection each", t(seeds, "r1"), "req/s",
            "in-process ModelStore.put", t(seeds, "a1"), higher_is_better=True),
        Row(AREA, f"seed loop 2: {loop2:,} PUT price, new connection each, smart compaction on", t(seeds, "r2"), "req/s",
            "in-process ModelStore.put", t(seeds, "a2"), higher_is_better=True),
        Row(AREA, "seed loops: failed requests (all runs)", float(sum(r["failed"] for r in seeds)), "requests", target="0"),
        Row(AREA, f"seed loops: compactions per run (threshold {threshold:,})", t(seeds, "compactions"), "runs", target=">= 1"),
        Row(AREA, f"load: {load_n:,} requests, 100 connections, 50% PUT", t(loads, "throughput_rps"), "req/s",
            "GET /health, 100 connections", t(loads, "health_rps"), higher_is_better=True),
        Row(AREA, "load: p50 latency", t(loads, "p50_ms"), "ms"),
        Row(AREA, "load: p99 latency", t(loads, "p99_ms"), "ms"),
        Row(AREA, "load: errors (all runs)", float(sum(r["errors"] for r in loads)), "requests", target="0"),
        Row(AREA, "load: acknowledged writes missing or doubled in the log (all runs)",
            float(sum(r["acked"] - r["found"] for r in loads)), "writes", target="0"),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loops (well under a minute)")
    print(markdown(run(parser.parse_args().quick)))

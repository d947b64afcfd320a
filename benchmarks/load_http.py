"""HTTP load against `lithair-lab serve`, then a check that every acknowledged write is in the log once.

``python -m benchmarks.load_http [--requests 10000] [--concurrency 100] [--dir DIR]``

The server runs in its own process (the real CLI, loopback only, a free
port); the client is httpx's async client with ``concurrency`` connections,
sending a mix of reads and writes. Every write carries an ``Idempotency-Key``
that becomes its ``event_id``, so after the run the directory is reopened and
each acknowledged write is looked up in the log: it must be there exactly
once. The fault test (``tests/test_server_fault.py``) uses the same pieces
and SIGKILLs the server mid-load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import orjson
import polars as pl

import lithair_lab as ll
from lithair_lab.engine.models import open_models

from .harness import percentile

PRODUCTS = 100


class ServerProcess:
    """``lithair-lab serve DIR --shop --port 0`` in a child process; the URL is read from its first line."""

    def __init__(self, path: Path, *extra: str) -> None:
        code = "from lithair_lab.cli import main; main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", str(path), "--shop", "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if " on http://" not in line:
            self.proc.kill()
            err = self.proc.stderr.read()  # type: ignore[union-attr]
            raise RuntimeError(f"server did not start: {line!r} {err}")
        self.url = line.rsplit(" on ", 1)[1].strip()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no lock release."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()


@dataclass
class LoadResult:
    """What the client saw: latencies of answered requests, errors, acknowledged write keys."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # no HTTP answer (connection refused/reset, timeout)
    acked: list[str] = field(default_factory=list)
    unacked: list[str] = field(default_factory=list)  # sent, never answered: may or may not be written

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.failures

    @property
    def errors(self) -> int:
        return self.failures + sum(n for s, n in self.statuses.items() if s >= 400)

    def summary(self) -> dict[str, float]:
        lat = self.latencies or [0.0]
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "throughput_rps": self.requests / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(lat, 0.5) * 1000,
            "p99_ms": percentile(lat, 0.99) * 1000,
            "errors": self.errors,
            "acked_writes": len(self.acked),
        }


class Connection:
    """One HTTP/1.1 connection on asyncio streams, framed by h11 (the parser uvicorn also uses).

    httpx's async pool costs more CPU per request than the server under test
    at 100 connections, so the load would measure the client; h11 keeps the
    client cheap while still speaking real HTTP. ``close=True`` sends
    ``Connection: close`` and opens a new TCP connection for every request,
    like the seed's curl loops.
    """

    def __init__(self, url: str, *, close: bool = False) -> None:
        host, _, port = url.removeprefix("http://").rpartition(":")
        self.host, self.port, self.close = host.strip("[]"), int(port), close
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
        """Send one request and read its whole response: ``(status, body)``."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._h11 = h11.Connection(h11.CLIENT)
        h = self._h11
        head = [("host", self.host), ("content-length", str(len(body))), *headers]
        if body:
            head.append(("content-type", "application/json"))
        if self.close:
            head.append(("connection", "close"))
        data = h.send(h11.Request(method=method, target=target, headers=head))
        if body:
            data += h.send(h11.Data(data=body))
        self._writer.write(data + h.send(h11.EndOfMessage()))  # type: ignore[operator]
        status, chunks = 0, []
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    received = await self._reader.read(65536)  # type: ignore[union-attr]
                    if not received:
                        raise ConnectionResetError("server closed the connection mid-response")
                    h.receive_data(received)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
        except (h11.RemoteProtocolError, ConnectionError):
            await self.aclose()
            raise
        if self.close or h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            await self.aclose()
        else:
            h.start_next_cycle()
        return status, b"".join(chunks)

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


TRANSPORT_ERRORS = (ConnectionError, OSError, h11.RemoteProtocolError, asyncio.IncompleteReadError)


async def _prepare(url: str) -> None:
    conn = Connection(url)
    for k in range(PRODUCTS):
        body = orjson.dumps({"name": f"Product {k}", "price": 1.0, "stock": 100})
        status, text = await conn.request("PUT", f"/api/products/{k}", body)
        if status >= 300:
            raise RuntimeError(f"preparing product {k}: HTTP {status} {text!r}")
    await conn.aclose()


async def _load(
    url: str,
    requests: int,
    concurrency: int,
    write_ratio: float,
    seed: int,
    run_id: str,
    kill_after_acks: int | None,
    kill: Callable[[], None] | None,
) -> LoadResult:
    result = LoadResult()
    rng = random.Random(seed)
    plan = [rng.random() for _ in range(requests)]
    next_index = 0
    await _prepare(url)

    async def worker() -> None:
        nonlocal next_index
        conn = Connection(url)
        while next_index < requests:
            n = next_index
            next_index += 1
            k = n % PRODUCTS
            draw = plan[n]
            key = None
            t0 = time.perf_counter()
            try:
                if draw < write_ratio:
                    key = f"{run_id}-{n}"
                    body = orjson.dumps({"price": round(400 + n * 0.01, 2)})
                    status, _ = await conn.request("PUT", f"/api/products/{k}", body, (("idempotency-key", key),))
                elif draw < write_ratio + (1 - write_ratio) * 0.2:
                    status, _ = await conn.request("GET", f"/api/products?name=Product%20{k}")
                else:
                    status, _ = await conn.request("GET", f"/api/products/{k}")
            except TRANSPORT_ERRORS:
                result.failures += 1
                if key is not None:
                    result.unacked.append(key)
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if key is not None:
                (result.acked if status < 300 else result.unacked).append(key)
                if kill is not None and kill_after_acks is not None and len(result.acked) == kill_after_acks:
                    kill()
        await conn.aclose()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result


def run_load(
    url: str,
    *,
    requests: int = 10_000,
    concurrency: int = 100,
    write_ratio: float = 0.5,
    seed: int = 0,
    run_id: str = "load",
    kill_after_acks: int | None = None,
    kill: Callable[[], None] | None = None,
) -> LoadResult:
    """Send ``requests`` mixed requests over ``concurrency`` connections (after creating the products).

    Writes (``write_ratio``) PUT a price with an ``Idempotency-Key`` of
    ``<run_id>-<n>``; reads GET one product or list by the indexed ``name``.
    With ``kill_after_acks``, ``kill()`` is called right after that many
    writes were acknowledged (the fault test).
    """
    return asyncio.run(_load(url, requests, concurrency, write_ratio, seed, run_id, kill_after_acks, kill))


def check_log(path: Path, acked: list[str], unacked: list[str] = ()) -> dict[str, int]:  # type: ignore[assignment]
    """Reopen ``path`` and check the log: every acknowledged key exactly once, others at most once.

    Returns counts; raises AssertionError naming the first key that breaks the rule.
    """
    with open_models(path) as db:  # a full open: torn-tail repair, replay, indexes
        events = db.store.event_count
    frame = ll.read(path).select("event_id")
    if frame.height != events:
        raise AssertionError(f"the reopened store counts {events} events, the log holds {frame.height}")
    counts = frame.group_by("event_id").len()
    def seen(keys: list[str]) -> pl.DataFrame:
        return pl.DataFrame({"event_id": keys}, schema={"event_id": pl.String}).join(counts, on="event_id", how="left").with_columns(pl.col("len").fill_null(0))

    a = seen(list(acked))
    missing = a.filter(pl.col("len") != 1)
    if missing.height:
        row = missing.row(0, named=True)
        raise AssertionError(f"acknowledged write `{row['event_id']}` is in the log {row['len']} times (expected once)")
    u = seen(list(unacked))
    twice = u.filter(pl.col("len") > 1)
    if twice.height:
        raise AssertionError(f"unacknowledged write `{twice.row(0)[0]}` is in the log {twice.row(0)[1]} times")
    return {"events": events, "acked_found": a.height, "unacked_written": int((u["len"] == 1).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--write-ratio", type=float, default=0.5)
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: a fresh temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.dir or Path(tmp) / "shop"
        with ServerProcess(path) as server:
            result = run_load(server.url, requests=args.requests, concurrency=args.concurrency, write_ratio=args.write_ratio)
            server.stop()
        checked = check_log(path, result.acked, result.unacked)
    for k, v in {**result.summary(), **checked}.items():
        print(f"{k:>16}: {v:,.2f}" if isinstance(v, float) else f"{k:>16}: {v:,}")


if __name__ == "__main__":
    main()

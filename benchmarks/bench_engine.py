"""Engine benchmark: append rates per durability mode, open (replay) time, dedup memory.

``python -m benchmarks.bench_engine [--quick]``

- appends/s for each mode with 1 writer and with 8 threads, beside the anchor:
  raw ``orjson.dumps`` of the same envelopes + batched file writes (no CRC,
  no chain, no dedup, no state);
- group commit with 8 threads each calling ``append_many`` (100 per call),
  and with 8 threads calling ``append(wait=False)`` and waiting for every 100th;
- open time of a journal of 1,000,000 events (full replay) and of a
  checkpoint plus a 1,000-event tail;
- memory of the dedup index per id at 10,000,000 ids;
- the disk's fsync latency (what bounds a blocking group-commit append), and
  the CPU time of each step of one async append beside the anchor's time per
  event (where the microseconds go).

``--quick`` uses small sizes (a smoke run, well under a minute).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.harness import Row, Timing, markdown, measure, percentile
from lithair_lab.engine import open_store
from lithair_lab.engine.dedup import DedupIndex
from lithair_lab.formats.envelope import Envelope, encode_line, native_encoder

AREA = "engine"
ENTITIES = 10_000


def _event(i: int) -> tuple[str, dict[str, Any], str, str]:
    key = f"p{i % ENTITIES}"
    return "ProductUpdated", {"id": key, "price": i % 997, "stock": i % 13, "name": "Pen"}, f"ev-{i}", key


def _split(n: int, threads: int) -> list[range]:
    step = n // threads
    return [range(t * step, (t + 1) * step) for t in range(threads)]


def _run_threads(threads: int, n: int, body: Callable[[range], None]) -> None:
    if threads == 1:
        body(range(n))
        return
    pool = [threading.Thread(target=body, args=(r,)) for r in _split(n, threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


def anchor(path: Path, n: int, threads: int) -> None:
    """orjson.dumps of each envelope, written in batches of 1,000 lines under one lock."""
    lock = threading.Lock()
    with open(path, "ab", buffering=0) as f:

        def body(r: range) -> None:
            batch: list[bytes] = []
            for i in r:
                event_type, payload, event_id, agg = _event(i)
                env = {
                    "event_type": event_type, "event_id": event_id, "timestamp": 1767225600,
                    "payload": orjson.dumps(payload).decode(), "aggregate_id": agg,
                    "event_hash": None, "previous_hash": None,
                }  # fmt: skip
                batch.append(orjson.dumps(env) + b"\n")
                if len(batch) == 1000:
                    with lock:
                        f.write(b"".join(batch))
                    batch.clear()
            with lock:
                f.write(b"".join(batch))

        _run_threads(threads, n, body)


def engine(path: Path, n: int, threads: int, opts: dict[str, Any], *, batch: int = 1, pipeline: int = 0) -> None:
    """``append`` (or ``append_many`` of ``batch``) for n events, then close (a barrier).

    ``pipeline``: ``append(..., wait=False)`` and wait for every ``pipeline``-th
    one only (a caller acknowledging its events in groups).
    """
    with open_store(path, **opts) as store:
        if pipeline:

            def body(r: range) -> None:
                append = store.append
                for i in r:
                    event_type, payload, event_id, agg = _event(i)
                    pending = append(event_type, payload, event_id=event_id, aggregate_id=agg, timestamp=1767225600, wait=False)
                    if (i + 1) % pipeline == 0:
                        pending.wait()  # the writer is in order: this one durable, all before it are
                pending.wait()

        elif batch == 1:

            def body(r: range) -> None:
                append = store.append
                for i in r:
                    event_type, payload, event_id, agg = _event(i)
                    append(event_type, payload, event_id=event_id, aggregate_id=agg, timestamp=1767225600)

        else:

            def body(r: range) -> None:
                for start in range(r.start, r.stop, batch):
                    events = []
                    for i in range(start, min(start + batch, r.stop)):
                        event_type, payload, event_id, agg = _event(i)
                        events.append({
                            "event_type": event_type, "payload": payload, "event_id": event_id,
                            "aggregate_id": agg, "timestamp": 1767225600,
                        })  # fmt: skip
                    store.append_many(events)

        _run_threads(threads, n, body)


def _timed(fn: Callable[[Path], None], repeat: int) -> Timing:
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    box: list[Path] = []

    def setup() -> None:
        if box:
            shutil.rmtree(box.pop(), ignore_errors=True)
        box.append(Path(tempfile.mkdtemp(dir=tmp)))

    try:
        return measure(lambda: fn(box[-1]), repeat=repeat, setup=setup)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def append_rows(quick: bool) -> list[Row]:
    n = 10_000 if quick else 200_000
    repeat = 3
    rows: list[Row] = []
    anchors = {t: _timed(lambda p, t=t: anchor(p / "raw.log", n, t), repeat).rate(n) for t in (1, 8)}
    modes: list[tuple[str, dict[str, Any], int, str]] = [
        ("sync", {"mode": "sync"}, n, ""),
        ("async", {"mode": "async"}, n, "≥ 0.40× anchor"),
        ("async binary", {"mode": "async", "binary": True}, n, ""),
        ("group", {"mode": "group"}, 400 if quick else 5000, ""),
        ("sync fsync/append", {"mode": "sync", "fsync": True}, 200 if quick else 3000, "disk-bound"),
    ]
    for name, opts, count, target in modes:
        for threads in (1, 8):
            rate = _timed(lambda p, o=opts, c=count, t=threads: engine(p, c, t, o), repeat).rate(count)
            rows.append(
                Row(AREA, f"append {name}, {threads} thread{'s' if threads > 1 else ''}", rate, "events/s",
                    "orjson+batched writes", anchors[threads], higher_is_better=True,
                    target=target if threads == 1 else ("≥ 100,000/s" if name == "group" else target),
                    notes={"events": count})  # fmt: skip
            )
    rate = _timed(lambda p: engine(p, n, 8, {"mode": "group"}, batch=100), repeat).rate(n)
    rows.append(
        Row(AREA, "append group, 8 threads × append_many(100)", rate, "events/s", "orjson+batched writes",
            anchors[8], higher_is_better=True, target="≥ 100,000/s", notes={"events": n})  # fmt: skip
    )
    rate = _timed(lambda p: engine(p, n, 8, {"mode": "group"}, pipeline=100), repeat).rate(n)
    rows.append(
        Row(AREA, "append group, 8 threads × append(wait=False), wait every 100", rate, "events/s",
            "orjson+batched writes", anchors[8], higher_is_better=True, target="≥ 100,000/s", notes={"events": n})  # fmt: skip
    )
    return rows


def open_rows(quick: bool) -> list[Row]:
    n = 30_000 if quick else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_open_"))
    try:
        d = tmp / "store"
        with open_store(d, mode="async") as store:
            for start in range(0, n, 1000):
                store.append_many([
                    dict(zip(("event_type", "payload", "event_id", "aggregate_id"), _event(i), strict=True))
                    for i in range(start, start + 1000)
                ])  # fmt: skip
        size = (d / "events.raftlog").stat().st_size
        full = measure(lambda: open_store(d).close(), repeat=1 if not quick else 2)
        rows = [
            Row(AREA, f"open: replay {n:,} events", full, "s",
                notes={"journal_bytes": size, "entities": ENTITIES})  # fmt: skip
        ]
        with open_store(d) as store:
            store.snapshot()
            store.append_many([
                dict(zip(("event_type", "payload", "event_id", "aggregate_id"), _event(i), strict=True))
                for i in range(n, n + 1000)
            ])  # fmt: skip
        tail = measure(lambda: open_store(d).close(), repeat=3)
        rows.append(
            Row(AREA, f"open: checkpoint + 1,000-event tail ({n:,} covered)", tail, "s",
                f"full replay of {n:,}", full)  # fmt: skip
        )
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dedup_rows(quick: bool) -> list[Row]:
    n = 300_000 if quick else 10_000_000
    tracemalloc.start()
    index = DedupIndex()
    index.update(f"order-{i:012d}-{i * 7919 % 1000003}" for i in range(n))
    for i in range(1000):  # and the incremental path
        index.add(f"late-{i}")
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return [
        Row(AREA, f"dedup index memory at {n:,} ids", current / len(index), "bytes/id", target="≤ 64",
            notes={"peak_bytes_per_id": peak / len(index)}),  # fmt: skip
        Row(AREA, f"dedup index peak while building ({n:,} ids)", peak / len(index), "bytes/id"),
    ]


def fsync_rows(quick: bool) -> list[Row]:
    """fsync latency of a 200-byte append on the benchmark's disk (a blocking group-commit
    append waits for at least one)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_fsync_"))
    fd = os.open(tmp / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        runs = []
        for _ in range(20 if quick else 300):
            os.write(fd, b"x" * 200)
            t = time.perf_counter()
            os.fsync(fd)
            runs.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
    ms = [r * 1000 for r in runs]
    timing = Timing((percentile(ms, 0.5), percentile(ms, 0.1), percentile(ms, 0.9)))
    return [Row(AREA, "disk fsync latency (write 200 B + fsync), median [p10–p90]", timing, "ms",
                notes={"runs": len(ms), "max_blocking_group_rate_8_threads": 8 / (percentile(ms, 0.5) / 1000)})]  # fmt: skip


def _cpu_us(fn: Callable[[], Any], n: int) -> Timing:
    """CPU microseconds per event of ``fn`` (which handles n events); steadier than wall time here."""
    runs = []
    for _ in range(3):
        t = time.process_time()
        fn()
        runs.append((time.process_time() - t) / n * 1e6)
    return Timing(tuple(runs))


def step_rows(quick: bool) -> list[Row]:
    """Where one async ``append`` spends its CPU time, step by step, beside the anchor's per event."""
    n = 5_000 if quick else 100_000
    events = [_event(i) for i in range(n)]
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_steps_"))
    try:
        anchor_us = _cpu_us(lambda: anchor(tmp / "raw.log", n, 1), n)
        box = [0]

        def whole() -> None:
            box[0] += 1
            with open_store(tmp / f"s{box[0]}", mode="async") as store:
                append = store.append
                for et, p, eid, agg in events:
                    append(et, p, event_id=eid, aggregate_id=agg, timestamp=1767225600)

        store = open_store(tmp / "steps", mode="async")
        try:
            prepared = [store._prepare(et, p, eid, agg, 1767225600) for et, p, eid, agg in events]
            h = "ab" * 32
            lines = [encode_line(et, key, ts, body, agg, h, True, 0) for key, et, body, agg, ts in prepared]
            envs = [Envelope(et, key, ts, body, agg, lh, h) for (key, et, body, agg, ts), (_, lh) in zip(prepared, lines, strict=True)]
            state = store._state
            writer = store._writer
            new = tuple.__new__

            def dedup() -> None:
                index = DedupIndex()
                for key, *_ in prepared:
                    index.add(key)

            steps = [
                ("whole append (async), incl. building the event", whole),
                ("building the event (bench's own loop)", lambda: [_event(i) for i in range(n)]),
                ("validate + payload dumps + key (_prepare)", lambda: [store._prepare(et, p, eid, agg, 1767225600) for et, p, eid, agg in events]),
                ("dedup digest + lookup + insert", dedup),
                (f"envelope JSON + CRC + SHA-256 chain ({'C' if native_encoder else 'Python'})",
                 lambda: [encode_line(et, key, ts, body, agg, h, True, 0) for key, et, body, agg, ts in prepared]),
                ("Envelope record (a tuple, built as the store builds it)",
                 lambda: [new(Envelope, (et, key, ts, body, agg, h, h, {})) for key, et, body, agg, ts in prepared]),
                ("state apply (CRUD merge, payload parsed)", lambda: [state.apply(e) for e in envs]),
                ("writer submit (async buffer)", lambda: [writer.submit(line, b"ev\n", 1) for line, _ in lines]),
            ]  # fmt: skip
            # The whole append beside the anchor (ratio = anchor time / append time, as the rates'),
            # then each step alone: the steps' sum is the append minus the call and lock overhead.
            rows = [
                Row(AREA, f"append step: {name}", _cpu_us(fn, n), "µs CPU/event",
                    *(("orjson+batched writes µs/event", anchor_us) if i == 0 else ()))  # fmt: skip
                for i, (name, fn) in enumerate(steps)
            ]
        finally:
            store.close()
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool) -> list[Row]:
    """All engine figures; ``quick`` uses small sizes."""
    return [*append_rows(quick), *fsync_rows(quick), *step_rows(quick), *open_rows(quick), *dedup_rows(quick)]


if __name__ == "__main__":
    print(markdown(run("--quick" in sys.argv[1:])))

"""Time travel: cold ``state_at``, the time machine, ``history`` and ``diff`` on one log.

``python -m benchmarks.bench_state [--quick]``. The full run builds (once, in a
temporary directory, through the engine) a log of 1,000,000 events over
10,000 entities and measures, in the same process:

- reading that log's envelope + payload frame (``ll.read`` then
  ``ll.decode_payloads`` per model): the anchor of cold ``state_at``;
- cold ``state_at`` at the head, from files;
- a naive Python dict fold (``orjson.loads`` per line) from the same files;
- the peak memory of cold ``state_at`` and of the naive fold, each in a
  fresh process;
- the time machine's build time and memory held, and its latency (wall and
  CPU) at 100 random moments and 100 random positions (median, p99; target
  p99 <= 50 ms);
- ``history`` of one busy entity and ``diff`` between two moments;
- cold ``state_at`` again once the engine has checkpointed the whole log.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import polars as pl

import lithair_lab as ll
from lithair_lab.state import TimeMachine, diff, history, state_at

from .harness import Row, Timing, in_child, markdown, measure, peak_rss_mib, percentile

AREA = "state"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
MODELS = ("Product", "Customer", "Order")


def workload(n: int, entities: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` CRUD events over ``entities`` keys: creates first, then updates
    (whole objects and partial ones), deletes and re-creates; ~100 events a second."""
    rng = random.Random(seed)
    keys = [(MODELS[i % len(MODELS)], f"k{i}") for i in range(entities)]
    live: set[int] = set()
    out = []
    for i in range(n):
        ts = T0 + i // 100
        k = rng.randrange(entities) if i >= entities else i
        model, key = keys[k]
        if k not in live:
            op, payload = "Created", {"id": key, "name": f"n{k}", "price": rng.randint(1, 999), "stock": 10, "tag": None}
            live.add(k)
        elif rng.random() < 0.005:
            op, payload = "Deleted", {"id": key}
            live.discard(k)
        elif rng.random() < 0.5:
            op, payload = "Updated", {"price": rng.randint(1, 999)}
        else:
            op, payload = "Updated", {"id": key, "name": f"n{k}.{i}", "price": rng.randint(1, 999), "stock": rng.randint(0, 50), "tag": "x"}
        out.append({"event_type": f"{model}{op}", "payload": payload, "aggregate_id": key, "timestamp": ts, "event_id": f"e{i}"})
    return out


def build(path: Path, n: int, entities: int) -> Path:
    """Write the workload through the engine (batches of 10,000 appends)."""
    events = workload(n, entities)
    with ll.open_store(path) as store:
        for i in range(0, n, 10_000):
            store.append_many(events[i : i + 10_000])
    return path


def naive_fold(path: Path) -> dict[str, dict[str, Any]]:
    """The comparison: one ``orjson.loads`` per line and a dict fold, CRUD only."""
    state: dict[str, dict[str, Any]] = {}
    ops = ("Created", "Updated", "Deleted")
    with (path / "events.raftlog").open("rb") as f:
        for line in f:
            env = orjson.loads(line[9:])
            t = env["event_type"]
            op = next(o for o in ops if t.endswith(o))
            entities = state.setdefault(t[: -len(op)], {})
            key = env["aggregate_id"]
            if op == "Deleted":
                entities.pop(key, None)
            elif op == "Updated" and key in entities:
                entities[key] = {**entities[key], **orjson.loads(env["payload"])}
            else:
                entities[key] = orjson.loads(env["payload"])
    return state


def read_frame(path: Path) -> dict[str, pl.DataFrame]:
    """The anchor: the envelope frame plus every model's payload columns."""
    frame = ll.read(path)
    return {m: ll.decode_payloads(frame, model=m) for m in MODELS}


def run(quick: bool) -> list[Row]:
    n, entities, queries, repeat = (30_000, 300, 30, 2) if quick else (1_000_000, 10_000, 100, 3)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "log", n, entities)
        size = f"{n:,} events, {entities:,} entities"
        anchor = measure(lambda: read_frame(path), repeat=repeat)
        cold = measure(lambda: state_at(path), repeat=repeat)
        rows.append(Row(AREA, f"cold state_at(head) from files ({size})", cold, "s", "read envelope+payload frame", anchor,
                        target="time ≤ 1.5× the read (ratio ≥ 0.67)"))
        naive = measure(lambda: naive_fold(path), repeat=repeat)
        rows.append(Row(AREA, "cold state_at(head) from files", cold, "s", "naive Python dict fold", naive))
        # Peak memory in fresh processes (each its own VmHWM), as bench_scale measures it.
        peaks = {name: Timing(tuple(in_child("benchmarks.bench_scale", "task", name, str(path))["peak"] for _ in range(repeat)))
                 for name in ("state_at", "naive fold")}
        rows.append(Row(AREA, "cold state_at(head) peak memory (fresh process)", peaks["state_at"], "MiB",
                        "naive Python dict fold, peak memory", peaks["naive fold"]))

        before = peak_rss_mib()
        t = time.perf_counter()
        tm = TimeMachine(path)
        built = time.perf_counter() - t
        rows.append(Row(AREA, "TimeMachine build (version index)", built, "s", "read envelope+payload frame", anchor))
        rows.append(Row(AREA, "TimeMachine memory held (version index)", tm.estimated_size("mb"), "MiB",
                        notes={"peak_rss_growth": max(0.0, peak_rss_mib() - before)}))

        rng = random.Random(1)
        last = T0 + (n - 1) // 100
        tm.state_at(T0 + 1)  # one query first: its one-time set-up is not a query's latency
        moments = [rng.randint(T0 - 5, last + 5) for _ in range(queries)]
        ms, cpu = _latencies([{"at": at} for at in moments], tm)
        rows.append(Row(AREA, f"TimeMachine.state_at at {queries} random moments, median", statistics.median(ms), "ms",
                        target="p99 ≤ 50 ms", notes={"cpu_median_ms": statistics.median(cpu)}))
        rows.append(Row(AREA, f"TimeMachine.state_at at {queries} random moments, p99", percentile(ms, 0.99), "ms",
                        target="≤ 50 ms", notes={"max": max(ms), "cpu_p99_ms": percentile(cpu, 0.99)}))

        ms, cpu = _latencies([{"position": rng.randint(0, n)} for _ in range(queries)], tm)
        rows.append(Row(AREA, f"TimeMachine.state_at at {queries} random positions, median", statistics.median(ms), "ms",
                        target="p99 ≤ 50 ms", notes={"cpu_median_ms": statistics.median(cpu)}))
        rows.append(Row(AREA, f"TimeMachine.state_at at {queries} random positions, p99", percentile(ms, 0.99), "ms",
                        target="≤ 50 ms", notes={"max": max(ms), "cpu_p99_ms": percentile(cpu, 0.99)}))

        busy = "k0"
        rows.append(Row(AREA, "history(Product, one entity) from files", measure(lambda: history(path, "Product", busy), repeat=repeat), "s",
                        "cold state_at", cold))
        mid, late = T0 + n // 300, T0 + n // 150
        rows.append(Row(AREA, "diff(t1, t2) from files", measure(lambda: diff(path, mid, late), repeat=repeat), "s",
                        "cold state_at", cold))
        rows.append(Row(AREA, "TimeMachine.diff(t1, t2)", measure(lambda: tm.diff(mid, late), repeat=repeat), "s"))

        # Last, as it changes the directory: the engine's checkpoint of the whole log.
        # Finding the start reads the records it covers, once; the fold goes on from there.
        with ll.open_store(path) as store:
            store.snapshot()
        covered = measure(lambda: state_at(path), repeat=repeat)
        rows.append(Row(AREA, "cold state_at(head), a checkpoint covering the whole log", covered, "s",
                        "cold state_at, no checkpoint", cold))
    return rows


def _latencies(queries: list[dict[str, Any]], tm: TimeMachine) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each query (CPU time is steadier on a shared machine)."""
    wall, cpu = [], []
    for kwargs in queries:
        t, c = time.perf_counter(), time.process_time()
        tm.state_at(**kwargs)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_state", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30,000 events: checks the benchmark works")
    args = ap.parse_args(argv)
    rows = run(args.quick)
    print(markdown(rows))
    for r in rows:
        if r.notes:
            print(f"- {r.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.notes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

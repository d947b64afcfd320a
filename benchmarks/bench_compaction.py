"""Compaction benchmark: the simulator over a large log, and the engine's compaction under load.

``python -m benchmarks.bench_compaction [--quick] [--scale]``

- ``simulate`` of 5 policies over a 1,000,000-event log (``--quick``: 30,000):
  the time per policy and in total (target: 10 s in total), beside the anchor
  of one head-state fold of the same log (``state_at``);
- engine compaction of a 1,000,000-event journal (``--quick``: 30,000) with
  the smart policy's defaults: its duration, and the longest pause seen by a
  thread appending all along, beside that appender's longest pause over the
  same span without a compaction;
- the peak memory of one compaction, in a fresh process (``VmHWM`` reset
  after the open, so the open's own replay is not counted), beside the
  journal's size: ``SmartCompaction()`` (no payload read) and
  ``KeepLatestPerKey()`` (entity keys, then the kept records replayed to prove
  the state); also of a copy of the 10,000,000-event scale store when
  ``--scale`` is given and ``bench_scale`` has written it.

The log is written by the engine (fsync off) once per run: creations of
1,000 products, 200 users, orders with payments, then whole-object updates.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

from benchmarks.harness import MemoryLimitExceeded, Row, Timing, in_child, markdown, measure, proc_status_mib
from lithair_lab import read
from lithair_lab.compaction import simulate
from lithair_lab.engine import open_store
from lithair_lab.engine.policies import (
    KeepLatestPerKey,
    MaxCountMaxAge,
    NoCompaction,
    SmartCompaction,
    SnapshotThenTruncate,
)
from lithair_lab.state import state_at

AREA = "compaction"
MEMORY_LIMIT_MIB = 6_144.0  # a compaction resident above this is stopped: the machine is shared
SCALE_STORE = Path(__file__).resolve().parent / "out" / "scale-10000000" / "store"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def write_log(path: Path, n: int) -> None:
    """``n`` events in a seed-like shop mix, one second apart, written through the engine."""
    batch: list[dict] = []
    with open_store(path, fsync=False) as store:
        for i in range(n):
            if i < 1_000:
                et, key, payload = "ProductCreated", f"p{i}", {"id": f"p{i}", "name": f"Product {i}", "price": 400.0}
            elif i < 1_200:
                et, key, payload = "UserRegistered", f"u{i}", {"id": f"u{i}", "email": f"u{i}@example.com"}
            elif i % 50 == 0:
                et, key, payload = "OrderCreated", f"o{i}", {"id": f"o{i}", "product": f"p{i % 1000}", "qty": 1}
            elif i % 50 == 1:
                et, key, payload = "PaymentProcessed", f"o{i - 1}", {"order": f"o{i - 1}", "amount": 400.0}
            else:
                k = i % 1000
                et, key, payload = "ProductUpdated", f"p{k}", {"id": f"p{k}", "name": f"Product {k}", "price": 400 + i / 100}
            batch.append(
                {"event_type": et, "payload": payload, "event_id": f"e{i}", "aggregate_id": key, "timestamp": T0 + i}
            )
            if len(batch) == 10_000:
                store.append_many(batch)
                batch = []
        if batch:
            store.append_many(batch)


def policies(*, snapshots: bool = False) -> list:
    """The five policies; Kafka's and KurrentDB's take no snapshot unless ``snapshots``."""
    extra = {"snapshot": True} if snapshots else {}
    return [
        NoCompaction(),
        SmartCompaction(),
        SnapshotThenTruncate(),
        KeepLatestPerKey(active_segment=1_000, tombstone_retention=timedelta(days=1), **extra),
        MaxCountMaxAge(max_count=10, **extra),
    ]


def bench_simulate(log: pl.DataFrame, n: int) -> list[Row]:
    t0 = time.perf_counter()
    sim = simulate(log, policies(), startup=False)
    total = time.perf_counter() - t0
    fold = measure(lambda: state_at(log), repeat=3)
    rows = [
        Row(AREA, f"simulate 5 policies, {n:,} events (total)", total, "s", "one state_at fold", fold, target="≤ 10 s")
    ]
    t0 = time.perf_counter()
    simulate(log, policies(snapshots=True), startup=False)
    rows.append(
        Row(
            AREA, "simulate 5 policies, Kafka/KurrentDB with snapshot=True (total)", time.perf_counter() - t0, "s",
            "one state_at fold", fold, target="≤ 10 s",
        )  # fmt: skip
    )
    for r in sim.summary.iter_rows(named=True):
        rows.append(
            Row(
                AREA, f"simulate {r['policy']}", r["simulated_s"], "s", "one state_at fold", fold,
                notes={k: r[k] for k in ("compactions", "final_events", "integrity", "reconstructable")},
            )  # fmt: skip
        )
    return rows


def _appender(store, stop: threading.Event, pauses: list[float], start: int) -> None:
    i = start
    last = time.perf_counter()
    while not stop.is_set():
        store.append("ProductUpdated", {"id": "p1", "price": i}, aggregate_id="p1", event_id=f"live{i}")
        now = time.perf_counter()
        pauses.append(now - last)
        last = now
        i += 1


def bench_engine(src: Path, n: int) -> list[Row]:
    runs, worst, baseline, held = [], [], [], []
    for r in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "store"
            shutil.copytree(src, d)
            with open_store(d, fsync=False) as store:
                took = 0.0
                for with_compaction in (True, False):  # then the same span again without one
                    stop, pauses = threading.Event(), []
                    t = threading.Thread(target=_appender, args=(store, stop, pauses, (r * 2 + with_compaction) * 10**7))
                    t.start()
                    time.sleep(0.05)
                    t0 = time.perf_counter()
                    if with_compaction:
                        report = store.compact(SmartCompaction())
                    else:
                        time.sleep(took)
                    span = time.perf_counter() - t0
                    stop.set()
                    t.join()
                    (worst if with_compaction else baseline).append(max(pauses))
                    if with_compaction:
                        took = span
                        runs.append(span)
                        held.append(report.locked_seconds)
                        carried = report.carried
    return [
        Row(AREA, f"engine compaction of {n:,} events (smart defaults)", Timing(tuple(runs)), "s", notes={"carried": carried}),
        Row(
            AREA, "longest append pause during compaction", Timing(tuple(worst)), "s",
            "longest pause without compaction", Timing(tuple(baseline)),
        ),  # fmt: skip
        Row(AREA, "longest hold of the write lock by the compaction", Timing(tuple(held)), "s"),
    ]


def compact_task(path: str, policy: str) -> dict:
    """In a fresh process: open ``path``, then compact it; the compaction's seconds and peak MiB.

    The peak (``VmHWM``) is reset after the open (``/proc/self/clear_refs``), so
    it is the compaction's: the open's replay and the state it holds are the
    ``resident_after_open`` baseline every figure includes.
    """
    chosen = {"SmartCompaction()": SmartCompaction(), "KeepLatestPerKey()": KeepLatestPerKey()}[policy]
    with open_store(path, fsync=False) as store:
        opened = proc_status_mib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        t0 = time.perf_counter()
        report = store.compact(chosen)
        seconds = time.perf_counter() - t0
        peak = proc_status_mib("VmHWM")
    return {"seconds": seconds, "peak": peak, "opened": opened, "before": report.before, "retained": report.retained}


def bench_memory(src: Path, label: str, policies_: tuple[str, ...], repeat: int) -> list[Row]:
    """Peak resident memory and time of compacting copies of ``src``, beside its journal size."""
    journal_mib = sum(f.stat().st_size for f in src.iterdir() if f.name.startswith(("events.raftlog", "native-journal-"))) / 2**20
    rows = []
    for policy in policies_:
        runs = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(dir=src.parent) as tmp:
                d = Path(tmp) / "store"
                shutil.copytree(src, d)
                try:
                    runs.append(in_child("benchmarks.bench_compaction", "compact_task", str(d), policy, memory_limit_mib=MEMORY_LIMIT_MIB))
                except MemoryLimitExceeded as exc:
                    print(f"bench_compaction: {exc}", file=sys.stderr)
                    break
        if len(runs) < repeat:
            rows.append(Row(AREA, f"{policy} of {label}: stopped above {MEMORY_LIMIT_MIB:,.0f} MiB resident", float("nan"), "MiB",
                            "journal size", journal_mib))  # fmt: skip
            continue
        notes = {"records": runs[0]["before"], "retained": runs[0]["retained"], "resident_after_open_mib": round(runs[0]["opened"])}
        rows += [
            Row(AREA, f"{policy} of {label}: peak resident during the compaction", Timing(tuple(r["peak"] for r in runs)), "MiB",
                "journal size", journal_mib, notes=notes),
            Row(AREA, f"{policy} of {label}: time", Timing(tuple(r["seconds"] for r in runs)), "s"),
        ]  # fmt: skip
    return rows


def run(quick: bool, *, scale: bool = False) -> list[Row]:
    n = 30_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "log"
        t0 = time.perf_counter()
        write_log(src, n)
        wrote = time.perf_counter() - t0
        t0 = time.perf_counter()
        log = read(src)
        scanned = time.perf_counter() - t0
        rows = [
            Row(AREA, f"write {n:,}-event log through the engine (setup)", wrote, "s"),
            Row(AREA, f"ll.read of the {n:,}-event log (setup)", scanned, "s"),
        ]
        rows += bench_simulate(log, n)
        del log
        rows += bench_engine(src, n)
        rows += bench_memory(src, f"{n:,} events", ("SmartCompaction()", "KeepLatestPerKey()"), 1 if quick else 3)
    if scale and SCALE_STORE.is_dir():
        rows += bench_memory(SCALE_STORE, "the 10,000,000-event scale store", ("SmartCompaction()",), 1)
    return rows


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    rows = run(quick, scale="--scale" in sys.argv[1:])
    print(markdown(rows))
    for r in rows:
        if r.notes:
            print(f"- {r.name}: " + ", ".join(f"{k}={v}" for k, v in r.notes.items()))


if __name__ == "__main__":
    main()

"""Scalability at 1M and 10M events, and the seed's compaction table, each beside its anchor.

``python -m benchmarks.bench_scale [--quick] [--no-huge]``

For each size (full: 1,000,000 and 10,000,000 events, ``--no-huge`` only the
first; ``--quick``: 20,000 in a temporary directory) a CRUD log
(``bench_state.workload``: creates, whole and partial updates, deletes; 10,000
new entities per 500,000 events) is written once through the engine into
``benchmarks/out/scale-<n>/`` (git-ignored) with a plain NDJSON copy of its envelopes, and reused by later
runs. Each measurement runs in a fresh process, so its peak memory (``VmHWM``)
is its own:

- ``ll.read`` of the directory (CRC-checked envelope frame) beside raw
  ``pl.read_ndjson`` of the plain copy;
- ``ll.state_at`` at the head beside the naive Python fold
  (``bench_state.naive_fold``: ``orjson.loads`` per line into dicts);
- ``ll.open_store`` (full replay: CRC, hash chain, dedup, state), beside the
  same naive fold;
- ``SmartCompaction()`` of a copy, then ``open_store`` of it, beside the
  uncompacted open (the "no compaction" anchor; the seed's "1M+ events,
  compaction maintains performance").

A measurement whose process grows past ``MEMORY_LIMIT_MIB`` resident is
stopped and reported as not measured (the machine is shared).

Then the seed's "Compaction Metrics" table (``seed_compaction``: 3 products and
10,000 whole-object updates, compacted by the smart policy and by
snapshot-then-truncate): journal events, file size, startup and memory after,
each beside the same store before compaction.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lithair_lab as ll

from .harness import MemoryLimitExceeded, Row, Timing, in_child, markdown, proc_status_mib

AREA = "scale"
HERE = Path(__file__).resolve().parent
CACHE = HERE / "out"
ENTITIES = 10_000  # per chunk
CHUNK = 500_000  # events generated (and held in memory) at a time
MEMORY_LIMIT_MIB = 8_192.0  # a measurement resident above this is stopped: the machine is shared


# -- the logs, generated once -------------------------------------------------------------


def write_log(directory: Path, n: int, entities: int) -> None:
    """``n`` CRUD events through the engine, ``CHUNK`` at a time (each chunk a fresh ``workload``)."""
    from .bench_state import workload

    with ll.open_store(directory) as store:
        for c, start in enumerate(range(0, n, CHUNK)):
            events = workload(min(CHUNK, n - start), entities, seed=c)
            for e in events:  # each chunk: entities, event ids and times of its own, after the last chunk's
                e["timestamp"] += start // 100
                e["event_id"] = f"c{c}-{e['event_id']}"
                e["aggregate_id"] = f"c{c}-{e['aggregate_id']}"
                if "id" in e["payload"]:
                    e["payload"]["id"] = e["aggregate_id"]
            for i in range(0, len(events), 10_000):
                store.append_many(events[i : i + 10_000])


def write_plain(directory: Path, plain: Path) -> None:
    """The journal's envelopes as plain NDJSON (the ``<crc>:`` prefix cut), for ``pl.read_ndjson``."""
    from lithair_lab.formats import layout

    with plain.open("wb") as out:
        for journal in layout.journal_files(directory):
            with journal.open("rb") as f:
                out.writelines(line[9:] for line in f)


def log_of(n: int, entities: int, parent: Path) -> Path:
    """``parent/scale-<n>/`` with ``store/`` and ``plain.ndjson``, written unless already there.

    Built beside its final name and renamed into place, so an interrupted run
    never leaves a half-written log that a later run would take for whole.
    """
    final = parent / f"scale-{n}"
    if (final / "store").is_dir() and (final / "plain.ndjson").is_file():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"scale-{n}-building-", dir=parent))
    try:
        write_log(building / "store", n, entities)
        write_plain(building / "store", building / "plain.ndjson")
        os.rename(building, final)
    except OSError:
        if not (final / "store").is_dir():  # not another run's finished copy: a real failure
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


# -- each measurement in its own process ---------------------------------------------------


def task(name: str, path: str) -> dict[str, Any]:
    """Run one measurement (in a child process): seconds, its peak memory (MiB) and a check value."""
    import polars as pl

    from .bench_state import naive_fold

    t0 = time.perf_counter()
    if name == "pl.read_ndjson":
        check = pl.read_ndjson(path).height
    elif name == "ll.read":
        check = ll.read(path).height
    elif name == "naive fold":
        check = sum(len(entities) for entities in naive_fold(Path(path)).values())
    elif name == "state_at":
        check = sum(frame.height for frame in ll.state_at(path).values())
    elif name == "open_store":
        with ll.open_store(path) as store:
            check = store.event_count
    elif name == "compact":
        with ll.open_store(path) as store:
            check = store.event_count
            t0 = time.perf_counter()  # the compaction alone, not the open before it
            store.compact(ll.SmartCompaction())
    else:
        raise ValueError(f"unknown measurement `{name}`")
    return {"seconds": time.perf_counter() - t0, "peak": proc_status_mib("VmHWM"), "check": check}


@dataclass(frozen=True)
class Measured:
    """One measurement over several fresh processes."""

    seconds: Timing
    peak: Timing  # MiB
    checks: frozenset[int]


def measure_in_children(name: str, path: Path, repeat: int) -> Measured | None:
    """Seconds and peak MiB over ``repeat`` fresh processes; None when one passed ``MEMORY_LIMIT_MIB``."""
    try:
        runs = [in_child("benchmarks.bench_scale", "task", name, str(path), memory_limit_mib=MEMORY_LIMIT_MIB) for _ in range(repeat)]
    except MemoryLimitExceeded as exc:
        print(f"bench_scale: {exc}", file=sys.stderr)
        return None
    return Measured(Timing(tuple(r["seconds"] for r in runs)), Timing(tuple(r["peak"] for r in runs)), frozenset(r["check"] for r in runs))


def scale_rows(n: int, log: Path, entities: int, repeat: int) -> list[Row]:
    store, plain = log / "store", log / "plain.ndjson"
    got = {name: measure_in_children(name, src, repeat) for name, src in (
        ("pl.read_ndjson", plain), ("ll.read", store), ("naive fold", store), ("state_at", store), ("open_store", store),
    )}  # fmt: skip
    with tempfile.TemporaryDirectory(dir=log) as tmp:  # beside the log: same disk, and no second copy in /tmp
        compacted = Path(tmp) / "store"
        shutil.copytree(store, compacted)
        got["SmartCompaction()"] = measure_in_children("compact", compacted, 1)
        got["compacted open_store"] = measure_in_children("open_store", compacted, repeat) if got["SmartCompaction()"] else None
    for a, b in (("pl.read_ndjson", "ll.read"), ("naive fold", "state_at"), ("open_store", "compacted open_store")):
        x, y = got[a], got[b]
        if x is not None and y is not None and x.checks != y.checks:
            raise AssertionError(f"`{b}` gives {set(y.checks)} at {n:,} events, its anchor `{a}` {set(x.checks)}")
    size = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"
    mib = sum(p.stat().st_size for p in store.iterdir() if p.is_file()) / 2**20

    def pair(name: str, anchor: str | None, what: str, anchor_name: str = "", **kw: Any) -> list[Row]:
        m, a = got[name], got[anchor] if anchor else None
        if m is None:
            return [Row(AREA, f"{size} events: {what}: stopped above the memory limit, not measured", MEMORY_LIMIT_MIB, "MiB")]
        anchor_name = anchor_name or anchor or ""
        return [
            Row(AREA, f"{size} events: {what}", m.seconds, "s", anchor_name, a and a.seconds, **kw),
            Row(AREA, f"{size} events: {what}, peak memory", m.peak, "MiB", a and f"{anchor_name}, peak memory" or "", a and a.peak),
        ]

    return [
        Row(AREA, f"{size} events: journal size", mib, "MiB", notes={"entities": entities * -(-n // CHUNK)}),
        *pair("ll.read", "pl.read_ndjson", "ll.read (envelope frame, CRC checked)", target="≤ 2× anchor"),
        *pair("state_at", "naive fold", "state_at(head), cold from files"),
        *pair("open_store", "naive fold", "open_store (full replay)"),
        *pair("SmartCompaction()", None, "SmartCompaction() of the journal (once)"),
        *pair("compacted open_store", "open_store", "open_store after compaction", "no compaction (open_store)"),
    ]


def seed_compaction_rows() -> list[Row]:
    from .seed_compaction import compaction_metrics

    rows = []
    for policy, before, after, seconds, intact in compaction_metrics():
        name = f"seed compaction table, {policy}"
        rows += [
            Row(AREA, f"{name}: events in the journal", float(after["records"]), "events", "no compaction",
                float(before["records"]), target="seed: 10,000+ → ~100"),
            Row(AREA, f"{name}: journal + snapshot size", (after["journal"] + after["snapshot"]) / 1024, "KiB",
                "no compaction", (before["journal"] + before["snapshot"]) / 1024, target="seed: 25+ MB → 22 KB",
                notes={"backups_kib": after["backups"] / 1024}),
            Row(AREA, f"{name}: startup (open_store, median of 5)", after["startup"] * 1000, "ms", "no compaction",
                before["startup"] * 1000, target="seed: 2–5 s → 50 ms"),
            Row(AREA, f"{name}: memory (RSS growth on open)", after["memory"], "MiB", "no compaction",
                before["memory"], target="seed: 50+ MB → 2 MB"),
            Row(AREA, f"{name}: state identical after reopen", float(intact), "yes=1", target="1",
                notes={"compaction_ms": seconds * 1000}),
        ]  # fmt: skip
    return rows


def run(quick: bool, *, huge: bool = True) -> list[Row]:
    """Quick: 20,000 events in a temporary directory; full: 1M (and 10M unless ``huge=False``), cached."""
    rows: list[Row] = []
    with ExitStack() as stack:
        if quick:
            sizes, parent, entities, repeat = [20_000], Path(stack.enter_context(tempfile.TemporaryDirectory())), 300, 2
        else:
            sizes, parent, entities, repeat = [1_000_000, *([10_000_000] if huge else [])], CACHE, ENTITIES, 3
        for n in sizes:
            t0 = time.perf_counter()
            log = log_of(n, entities, parent)
            rows.append(Row(AREA, f"{n:,} events: log ready (written, or found in the cache)", time.perf_counter() - t0, "s"))
            rows += scale_rows(n, log, entities, repeat if n < 10_000_000 else 1)
    return rows + seed_compaction_rows()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events in a temporary directory")
    parser.add_argument("--no-huge", action="store_true", help="skip the 10,000,000-event log")
    args = parser.parse_args()
    rows = run(args.quick, huge=not args.no_huge)
    print(markdown(rows))
    for r in rows:
        if r.notes:
            print(f"- {r.name}: " + ", ".join(f"{k}={v}" for k, v in r.notes.items()))


if __name__ == "__main__":
    main()

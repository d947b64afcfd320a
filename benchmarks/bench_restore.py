"""Point-in-time restore: the engine's importer beside the append path it replaced.

``python -m benchmarks.bench_restore [--quick]``. The full run writes (once, in
a temporary directory, with the formats codec) a 1,000,000-event Era C log
over 10,000 entities and an Era B log of the same size whose ids repeat, then
measures, each run in a fresh child process (so peak memory is its own):

- ``ll.restore`` of the Era C log at the head: time and peak resident memory,
  beside the previous implementation (the source read into one frame, then
  ``Store.append_many`` in batches of 10,000; kept here as the anchor), beside
  reading the source's frame alone (``ll.read``), and beside the engine opening
  (a copy of) the source without a checkpoint, which reads and folds every
  record as a restore must (the floor: a restore adds the writing);
- peak memory of a restore of the first quarter of the same log (flat in
  history length: the difference is the state and the ids, not the records);
- ``ll.restore`` of the Era B log, which the append path refuses (its ids repeat).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import orjson

from .harness import Row, Timing, in_child, markdown, proc_status_mib

AREA = "restore"
T0 = 1_767_225_600
MODELS = ("Product", "Customer", "Order")
LIMIT_MIB = 6_000


def build(path: Path, n: int, entities: int, *, era: str) -> Path:
    """A CRUD log of ``n`` events written with the formats codec (Era C: unique ids, chained;
    Era B: ``Model:Op:key`` ids that repeat, full Rust type paths, no hashes)."""
    from lithair_lab.formats import layout
    from lithair_lab.formats.envelope import Envelope
    from lithair_lab.formats.jsonlines import frame_line

    rng = random.Random(0)
    path.mkdir(parents=True)
    prev = None
    live: set[int] = set()
    with open(path / layout.ACTIVE, "wb") as f:
        out = []
        for i in range(n):
            k = rng.randrange(entities) if i >= entities else i
            model, key = MODELS[k % 3], f"k{k}"
            if k not in live:
                op, payload = "Created", {"id": key, "name": f"n{k}", "price": rng.randint(1, 999), "stock": 10}
                live.add(k)
            elif rng.random() < 0.005:
                op, payload = "Deleted", {"id": key}
                live.discard(k)
            else:
                op, payload = "Updated", {"id": key, "name": f"n{k}.{i}", "price": rng.randint(1, 999), "stock": rng.randint(0, 50)}
            etype = f"{model}{op}" if era == "C" else f"my_app::models::{model}{op}"
            eid = f"{model}:{op}:{key}" if era == "B" else f"{model}:{op}:{key}:{i}"
            env = Envelope(etype, eid, T0 + i // 100, orjson.dumps(payload).decode(), key)
            if era == "C":
                env = env.chained(prev)
                prev = env.event_hash
            out.append(frame_line(env.to_json(era=era)))
            if len(out) == 10_000:
                f.write(b"".join(out))
                out = []
        f.write(b"".join(out))
    return path


def _child(kind: str, src: str, into: str, position: int | None) -> tuple[float, float]:
    """One measured run in this (child) process: (seconds, peak resident MiB)."""
    import lithair_lab as ll

    warnings.simplefilter("ignore")
    if kind == "open":
        shutil.copytree(src, into)  # opening writes into a directory (meta, dedup cache): a copy, outside the timing
    t = time.perf_counter()
    if kind == "importer":
        ll.restore(src, position=position, into=into)
    elif kind == "append":
        append_path(src, into)
    elif kind == "open":
        ll.open_store(into).close()
    else:
        ll.read(src)
    return time.perf_counter() - t, proc_status_mib("VmHWM")


def append_path(src: str, into: str) -> None:
    """The previous ``ll.restore``: the whole frame read, then re-appended through the engine."""
    import polars as pl

    import lithair_lab as ll

    events = ll.read(src).filter(pl.col("record_kind") == "envelope")
    with ll.open_store(into) as store:
        batch: list[dict[str, object]] = []
        for row in events.iter_rows(named=True):
            batch.append({
                "event_type": row["event_type"], "payload": ll.RawJSON(row["payload"]), "event_id": row["event_id"],
                "aggregate_id": row["aggregate_id"], "timestamp": int(row["timestamp"].timestamp()),
            })  # fmt: skip
            if len(batch) == 10_000:
                store.append_many(batch)
                batch = []
        if batch:
            store.append_many(batch)
        store.snapshot()


def runs(kind: str, src: Path, tmp: Path, repeat: int, position: int | None = None, *, child: bool = True) -> tuple[Timing, float]:
    """``repeat`` runs, each in a child process unless ``child`` is false (a quick smoke
    test: then the peak memory is this process's): their times, and the highest peak memory."""
    times, peak = [], 0.0
    for i in range(repeat):
        into = tmp / f"out-{kind}-{i}"
        args = (kind, str(src), str(into), position)
        s, mib = in_child("benchmarks.bench_restore", "_child", *args, memory_limit_mib=LIMIT_MIB) if child else _child(*args)
        shutil.rmtree(into, ignore_errors=True)
        times.append(s)
        peak = max(peak, mib)
    return Timing(tuple(times)), peak


def run(quick: bool) -> list[Row]:
    n, entities, repeat = (5_000, 100, 1) if quick else (1_000_000, 10_000, 3)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        era_c = build(tmp / "era-c", n, entities, era="C")
        era_b = build(tmp / "era-b", n, entities, era="B")
        size = f"{n:,} events"
        new, new_peak = runs("importer", era_c, tmp, repeat, child=not quick)
        old, old_peak = runs("append", era_c, tmp, repeat, child=not quick)
        read, read_peak = runs("read", era_c, tmp, repeat, child=not quick)
        replay, _ = runs("open", era_c, tmp, repeat, child=not quick)
        rows.append(Row(AREA, f"ll.restore, Era C log at the head ({size})", new, "s", "previous append path", old))
        rows.append(Row(AREA, f"ll.restore, Era C log at the head ({size})", new, "s", "ll.read of the source", read))
        rows.append(Row(AREA, f"ll.restore, Era C log at the head ({size})", new, "s",
                        "open_store replaying the source (read + fold, the floor)", replay))  # fmt: skip
        rows.append(Row(AREA, "ll.restore peak resident memory", new_peak, "MiB", "previous append path", old_peak))
        rows.append(Row(AREA, "ll.restore peak resident memory", new_peak, "MiB", "ll.read of the source", read_peak))
        _, quarter_peak = runs("importer", era_c, tmp, 1, position=n // 4, child=not quick)
        rows.append(Row(AREA, f"ll.restore peak memory, first {n // 4:,} events", quarter_peak, "MiB", f"all {size}", new_peak,
                        higher_is_better=True, target="flat in history length (ratio near 1)"))  # fmt: skip
        b, _ = runs("importer", era_b, tmp, repeat, child=not quick)
        rows.append(Row(AREA, f"ll.restore, Era B log with repeated ids ({size})", b, "s", "Era C log of the same size", new,
                        notes={"previous append path": "refused (DuplicateEventError)"}))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_restore", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 events, one run each, in this process (a smoke test)")
    args = ap.parse_args(argv)
    print(markdown(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The read path: ``scan(...).collect()`` on a CRC-framed journal, beside Polars' own NDJSON reader.

``python -m benchmarks.bench_read [--quick]``. In one run, on a generated
journal of 1,000,000 events (100,000 with ``--quick``), CRC-framed with the
hash chain on (Era C, what the engine writes):

- ``ll.read`` of the envelope frame, CRC verification on, next to the anchor
  ``pl.read_ndjson`` with an explicit schema on the same events written as
  plain NDJSON (no CRC prefix) — target within 2x;
- envelope + payload columns (``ll.decode_payloads``: schema inferred from all
  rows), next to ``pl.read_ndjson`` + ``str.json_decode`` with the payload's
  dtype given — target within 3x;
- the same envelope read next to a per-line ``orjson.loads`` loop (CRC checked
  with ``zlib.crc32``) — target at least 5x faster;
- the CPU time (all threads of the process) of the envelope read, of the
  anchor and of the orjson loop: steadier than wall time on a shared machine,
  and what a busy machine leaves to parallelism;
- the same envelope read on the pure-Python fallback (``LITHAIR_LAB_PURE_PYTHON=1``,
  what a machine without a C compiler gets), next to the same anchor;
- the same events as a binary journal (FORMATS.md section 3), natively and on
  the pure-Python fallback, next to the same anchor;
- peak memory of a streaming aggregate (counts per type per hour) over
  10,000,000 events in ten segments (full run only; 1,000,000 with
  ``--quick``), measured in a child process so that nothing else counts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import orjson
import polars as pl

import lithair_lab as ll
from lithair_lab.formats import native
from lithair_lab.formats.bincode import encode_frame
from lithair_lab.formats.envelope import Envelope
from lithair_lab.formats.jsonlines import frame_line

from .harness import Row, Timing, markdown, measure

AREA = "read"
T0 = 1_767_225_600
ENVELOPE_NDJSON = {
    "event_type": pl.String,
    "event_id": pl.String,
    "timestamp": pl.Int64,
    "payload": pl.String,
    "aggregate_id": pl.String,
    "event_hash": pl.String,
    "previous_hash": pl.String,
}
PAYLOAD = pl.Struct({"id": pl.String, "name": pl.String, "price": pl.Float64, "stock": pl.Int64})
TYPES = ("ProductCreated", "ProductUpdated", "OrderCreated", "OrderUpdated", "CustomerUpdated")


def write_journal(
    crc_path: Path, plain_path: Path | None, n: int, *, chain: bool = True, binary_path: Path | None = None
) -> None:
    """``n`` events as CRC-framed lines (and, when asked, the same events as plain NDJSON and as binary frames)."""
    prev = None
    with contextlib.ExitStack() as files:
        crc = files.enter_context(crc_path.open("wb"))
        plain = files.enter_context(plain_path.open("wb")) if plain_path else None
        binary = files.enter_context(binary_path.open("wb")) if binary_path else None
        for i in range(n):
            key = f"k{i % 10_000}"
            payload = orjson.dumps({"id": key, "name": f"item {i}", "price": 1.5 + i % 100, "stock": i % 50}).decode()
            env = Envelope(TYPES[i % len(TYPES)], f"e{i}", T0 + i // 20, payload, key)
            if chain:
                env = env.chained(prev)
                prev = env.event_hash
            body = env.to_json()
            crc.write(frame_line(body))
            if plain is not None:
                plain.write(body + b"\n")
            if binary is not None:
                binary.write(encode_frame(env))


def cpu_seconds(fn: Callable[[], object], *, repeat: int) -> Timing:
    """Like :func:`harness.measure`, in CPU seconds of this process (every thread) instead of wall time."""
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        runs.append(time.process_time() - t0)
    return Timing(tuple(runs))


def pure_python_read(store: Path) -> None:
    """``ll.read`` with the native pass switched off."""
    os.environ[native.PURE_PYTHON_ENV] = "1"
    try:
        ll.read(store)
    finally:
        del os.environ[native.PURE_PYTHON_ENV]


def orjson_loop(path: Path) -> list[dict[str, object]]:
    """The comparison: one ``orjson.loads`` per line, CRC checked with ``zlib.crc32``."""
    out = []
    with path.open("rb") as f:
        for line in f:
            body = line[9:-1]
            if int(line[:8], 16) != zlib.crc32(body):
                raise ValueError("bad crc")
            out.append(orjson.loads(body))
    return out


# Peak memory is read from the kernel's high-water mark of this address space
# (VmHWM): ru_maxrss of a forked child starts at its parent's size at the fork.
AGGREGATE = """
import resource, sys, polars as pl, lithair_lab as ll
out = (
    ll.scan(sys.argv[1])
    .group_by("short_type", pl.col("timestamp").dt.truncate("1h").alias("hour"))
    .len()
    .collect(engine="streaming")
)
try:
    status = open("/proc/self/status").read()
    peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(out["len"].sum(), peak)
"""


def streaming_peak(directory: Path) -> tuple[int, float]:
    """Run the streaming aggregate in a fresh process; (events counted, peak RSS MiB)."""
    res = subprocess.run([sys.executable, "-c", AGGREGATE, str(directory)], capture_output=True, text=True, check=True)
    count, peak = res.stdout.split()
    return int(count), float(peak)


def run(quick: bool, *, huge: bool = True) -> list[Row]:
    """The rows above; ``huge=False`` measures the streaming peak on the 1,000,000 events instead of 10,000,000."""
    n = 100_000 if quick else 1_000_000
    repeat = 3
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        binary_store = Path(tmp) / "binary"
        binary_store.mkdir()
        journal, plain = store / "events.raftlog", Path(tmp) / "plain.ndjson"
        write_journal(journal, plain, n, binary_path=binary_store / "events.raftlog")
        size_mb = journal.stat().st_size / 2**20

        ours = measure(lambda: ll.read(store), repeat=repeat)
        anchor = measure(lambda: pl.read_ndjson(plain, schema=ENVELOPE_NDJSON), repeat=repeat)
        rows.append(Row(AREA, f"read envelope frame, CRC on ({n:,} events, {size_mb:,.0f} MiB)", ours, "s",
                        "pl.read_ndjson, explicit schema, plain NDJSON", anchor, target="≤ 2× anchor (ratio ≥ 0.5)",
                        notes={"native": "built" if native.load() is not None else "missing"}))  # fmt: skip

        ours_p = measure(lambda: ll.decode_payloads(store), repeat=repeat)
        anchor_p = measure(
            lambda: pl.read_ndjson(plain, schema=ENVELOPE_NDJSON).with_columns(pl.col("payload").str.json_decode(PAYLOAD)),
            repeat=repeat,
        )
        rows.append(Row(AREA, "envelope + payload columns (schema from all rows)", ours_p, "s",
                        "pl.read_ndjson + str.json_decode(dtype)", anchor_p, target="≤ 3× anchor (ratio ≥ 0.33)"))  # fmt: skip

        loop = measure(lambda: orjson_loop(journal), repeat=repeat)
        rows.append(Row(AREA, "read envelope frame, CRC on", ours, "s", "per-line orjson.loads + zlib.crc32 loop",
                        loop, target="≥ 5× faster (ratio ≥ 5)"))  # fmt: skip

        cpu = cpu_seconds(lambda: ll.read(store), repeat=repeat)
        cpu_anchor = cpu_seconds(lambda: pl.read_ndjson(plain, schema=ENVELOPE_NDJSON), repeat=repeat)
        rows.append(Row(AREA, "read envelope frame, CRC on: CPU time, all threads", cpu, "s",
                        "pl.read_ndjson, explicit schema, plain NDJSON: CPU time", cpu_anchor))  # fmt: skip
        cpu_loop = cpu_seconds(lambda: orjson_loop(journal), repeat=repeat)
        rows.append(Row(AREA, "read envelope frame, CRC on: CPU time, all threads", cpu, "s",
                        "per-line orjson.loads + zlib.crc32 loop: CPU time", cpu_loop))  # fmt: skip

        slow_repeat = 1 if quick else repeat  # the fallbacks take seconds even on --quick's events
        pure = measure(lambda: pure_python_read(store), repeat=slow_repeat)
        rows.append(Row(AREA, "read envelope frame, CRC on, pure-Python fallback (no C extension)", pure, "s",
                        "pl.read_ndjson, explicit schema, plain NDJSON", anchor))  # fmt: skip

        binary = measure(lambda: ll.read(binary_store), repeat=repeat)
        rows.append(Row(AREA, "read envelope frame, binary journal (same events)", binary, "s",
                        "pl.read_ndjson, explicit schema, plain NDJSON", anchor, target="≤ 2× anchor (ratio ≥ 0.5)"))  # fmt: skip
        binary_pure = measure(lambda: pure_python_read(binary_store), repeat=slow_repeat)
        rows.append(Row(AREA, "read envelope frame, binary journal, pure-Python fallback", binary_pure, "s",
                        "pl.read_ndjson, explicit schema, plain NDJSON", anchor))  # fmt: skip

        if quick or not huge:
            count, peak = streaming_peak(store)
            label = f"streaming aggregate peak memory ({count:,} events)"
        else:
            big = Path(tmp) / "big"
            big.mkdir()
            one = Path(tmp) / "one.raftlog"
            write_journal(one, None, 1_000_000, chain=False)
            for k in range(1, 10):
                shutil.copyfile(one, big / f"events.raftlog.{k}")
            one.rename(big / "events.raftlog")
            gib = sum(p.stat().st_size for p in big.iterdir()) / 2**30
            count, peak = streaming_peak(big)
            label = f"streaming aggregate peak memory ({count:,} events, {gib:.1f} GiB, 10 segments)"
        rows.append(Row(AREA, label, peak, "MiB", target="< 1024 MiB", notes={"events": count}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 events; streaming peak on those")
    parser.add_argument("--no-huge", action="store_true", help="skip the 10,000,000-event streaming run")
    args = parser.parse_args()
    print(markdown(run(args.quick, huge=not args.no_huge)))


if __name__ == "__main__":
    main()

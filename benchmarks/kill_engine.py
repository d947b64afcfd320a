"""Kill test for the engine: SIGKILL a writer at random moments, then check what survived.

Each round starts a child process (forked from a fresh fork server, not from
this process: the store reads its journal with Polars, whose thread pool does
not survive a fork) that opens the store and appends from one or more threads, reporting every acknowledged ``event_id`` as a line of a file; the parent
SIGKILLs it at a random moment (often mid-write, mid-rotation or
mid-checkpoint: the child rotates and snapshots often), reopens the directory
and checks:

- every acknowledged event is present exactly once (durable modes);
- no partial record is visible (the reopen cut any torn tail aside);
- each writer thread's events are a gap-free prefix, in order;
- the hash chain verifies across all segments;
- the reopened state equals a naive fold of the records on disk.

The test suite runs a few dozen rounds; for a long run::

    python -m benchmarks.kill_engine --rounds 300 [--mode group]
"""

from __future__ import annotations

import argparse
import os
import random
import multiprocessing
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lithair_lab.engine import open_store
from lithair_lab.formats import bincode, jsonlines, layout
from lithair_lab.formats.envelope import Envelope, envelope_from_obj, event_hash

DURABLE = {
    "sync": {"mode": "sync", "fsync": True},
    "group": {"mode": "group"},
    "binary": {"mode": "group", "binary": True},
}
MODES: dict[str, dict[str, Any]] = {**DURABLE, "async": {"mode": "async", "flush_interval_ms": 2}}


@dataclass(frozen=True)
class RoundResult:
    acked: int
    stored: int
    torn_tails: int


_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["benchmarks.kill_engine"])


def spawn(target: Callable[..., None], *args: Any, acks: Path) -> multiprocessing.process.BaseProcess:
    """Start ``target(*args, acks)`` in a child forked from a fresh server process, which has
    imported the library but never run Polars (its thread pool does not survive a fork, and
    this process has used it). The child appends each acknowledgement as a line to ``acks``."""
    proc = _CTX.Process(target=target, args=(*args, str(acks)), daemon=True)
    proc.start()
    return proc


def collect(proc: multiprocessing.process.BaseProcess, acks: Path, rng: random.Random, window: float) -> bytes:
    """Wait for the child's first acknowledgement, SIGKILL it at a random moment within
    ``window`` seconds after it, and return the whole acknowledgement lines it wrote."""
    try:
        give_up = time.monotonic() + 60
        while not (acks.exists() and acks.stat().st_size):
            assert proc.is_alive(), f"the child ended with exit code {proc.exitcode} before acknowledging anything"
            assert time.monotonic() < give_up, "the child acknowledged nothing within 60 s"
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, window))
    finally:
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    data = acks.read_bytes()
    acks.unlink()
    return data[: data.rfind(b"\n") + 1]  # a write(2) is whole or absent after a SIGKILL; be safe anyway


def _ack_file(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def _child(directory: str, opts: dict[str, Any], threads: int, token: str, acks: str) -> None:
    fd = _ack_file(acks)
    store = open_store(directory, max_log_file_size=6000, **opts)

    def work(t: int) -> None:
        i = 0
        while True:
            eid = f"{token}-{t}-{i}"
            store.append("CounterUpdated", {"id": f"c{t}", "token": token, "n": i}, event_id=eid)
            os.write(fd, eid.encode() + b"\n")
            i += 1
            if t == 0 and i % 40 == 0:
                store.snapshot()

    pool = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


def batch_child(directory: str, opts: dict[str, Any], token: str, seed: int, acks: str) -> None:
    """The killed writer of the batch kill test: ``append_many`` batches of random sizes."""
    fd = _ack_file(acks)
    rng = random.Random(seed)
    store = open_store(directory, max_log_file_size=20_000, **opts)
    b = 0
    while True:
        n = rng.randint(2, 40)
        store.append_many(
            {"event_type": "CounterUpdated", "payload": {"id": f"c{i % 3}", "b": b, "pad": "x" * rng.randint(0, 300)}, "event_id": f"{token}-{b}-{i}-{n}"}
            for i in range(n)
        )
        os.write(fd, f"{token}-{b}-{n}\n".encode())
        b += 1
        if b % 25 == 0:
            store.snapshot()


def kill_round(directory: Path, mode: str, *, threads: int, rng: random.Random) -> RoundResult:
    """One spawn / append / SIGKILL / reopen / check round; raises AssertionError on any broken promise."""
    opts = MODES[mode]
    token = os.urandom(4).hex()
    acks = directory.parent / f"acks-{token}"
    buf = collect(spawn(_child, str(directory), opts, threads, token, acks=acks), acks, rng, 0.06)
    acked = [line.decode() for line in bytes(buf).split(b"\n") if line]

    with open_store(directory, max_log_file_size=6000, **opts) as store:
        torn = len(store.torn_tails)
        state = {k: dict(v) for k, v in store.state.get("Counter", {}).items()}
        count = store.event_count
    envs = read_journal(directory)
    assert len(envs) == count, f"the store counts {count} events, the journal holds {len(envs)}"
    ids = Counter(e.event_id for e in envs)
    assert max(ids.values(), default=1) == 1, f"duplicated ids: {[k for k, v in ids.items() if v > 1][:5]}"
    if mode in DURABLE:
        lost = [a for a in acked if a not in ids]
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:3]}"
    for t in range(threads):
        mine = [int(e.event_id.rsplit("-", 1)[1]) for e in envs if e.event_id.startswith(f"{token}-{t}-")]
        assert mine == list(range(len(mine))), f"thread {t}: events out of order or with gaps"
    verify_chain(envs)
    naive: dict[str, Any] = {}
    for e in envs:
        obj = orjson.loads(e.payload)
        naive[obj["id"]] = obj
    assert state == naive, "the reopened state differs from a fold of the journal"
    return RoundResult(len(acked), len([e for e in envs if e.event_id.startswith(token)]), torn)


def read_journal(directory: Path) -> list[Envelope]:
    """All records of the history, via the shared codec; fails on any partial or damaged record."""
    out: list[Envelope] = []
    for f in layout.journal_files(directory):
        data = f.read_bytes() if f.exists() else b""
        if data[:8].count(0):
            pos = 0
            while pos < len(data):
                (n,) = bincode.LEN.unpack_from(data, pos)
                assert pos + 8 + n <= len(data), f"{f.name}: partial frame at {pos}"
                out.append(bincode.decode_body(data[pos + 8 : pos + 8 + n]))
                pos += 8 + n
            continue
        assert not data or data.endswith(b"\n"), f"{f.name}: partial last line"
        for line in data.split(b"\n")[:-1]:
            kind, body, ok = jsonlines.split_line(line)
            assert ok, f"{f.name}: bad CRC"
            env = envelope_from_obj(orjson.loads(body))
            assert env is not None
            out.append(env)
    return out


def verify_chain(envs: list[Envelope]) -> None:
    prev = None
    for i, e in enumerate(envs):
        assert e.previous_hash == prev, f"record {i}: broken link"
        assert e.event_hash == event_hash(e.event_type, e.event_id, e.timestamp, e.payload, e.aggregate_id, prev), (
            f"record {i}: wrong hash"
        )
        prev = e.event_hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--mode", choices=sorted(MODES), default=None, help="default: cycle through all")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    modes = [args.mode] if args.mode else sorted(MODES)
    totals: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            mode = modes[i % len(modes)]
            res = kill_round(Path(tmp) / mode, mode, threads=args.threads, rng=rng)
            totals["acked"] += res.acked
            totals["stored"] += res.stored
            totals["torn_tails"] += res.torn_tails
            totals[f"rounds_{mode}"] += 1
        segments = {m: len(layout.segments(Path(tmp) / m)) for m in modes}
    print(f"seed {seed}: {args.rounds} rounds passed; {dict(totals)}; segments {segments}")


if __name__ == "__main__":
    main()

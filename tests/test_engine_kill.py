"""Kill test: a writer SIGKILLed at random moments loses nothing it acknowledged.

The harness lives in benchmarks/kill_engine.py (also a stress script with many
more rounds); here it runs 32 rounds in durable modes (sync+fsync, group,
binary group) plus 8 in async mode, each on a directory that carries over
every earlier round's damage.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks.kill_engine import kill_round


@pytest.mark.parametrize(("mode", "threads", "rounds"), [("sync", 1, 12), ("group", 4, 12), ("binary", 2, 8), ("async", 2, 8)])
def test_sigkill_rounds_lose_no_acknowledged_event(tmp_path: Path, mode: str, threads: int, rounds: int) -> None:
    rng = random.Random(f"kill-{mode}")
    acked = stored = 0
    for _ in range(rounds):
        res = kill_round(tmp_path / "store", mode, threads=threads, rng=rng)
        acked += res.acked
        stored += res.stored
    assert stored > 0, "the child never got to append: the rounds proved nothing"
    if mode != "async":
        assert stored >= acked

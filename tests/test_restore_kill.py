"""Kill test: a restore SIGKILLed at random moments leaves its target absent or whole, its source untouched."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders import era_b_dir

import lithair_lab as ll

KEPT = ["record_kind", "event_type", "event_id", "timestamp", "aggregate_id", "payload"]
CHILD = (
    "import sys, warnings; warnings.simplefilter('ignore'); import lithair_lab as ll;"
    "print('ready', flush=True); ll.restore(sys.argv[1], into=sys.argv[2]); print('done', flush=True)"
)


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_sigkill_during_restore_leaves_target_absent_or_whole(tmp_path: Path) -> None:
    src = tmp_path / "src"
    era_b_dir(src, n=20_000, segments=2)  # repeated ids: the importer path, not appends
    before = files(src)
    want = ll.read(src).select(KEPT)
    t = time.perf_counter()
    ll.restore(src, into=tmp_path / "reference")
    took = time.perf_counter() - t
    reference = ll.state_at(tmp_path / "reference")
    rng = random.Random(4)
    outcomes = {"absent": 0, "whole": 0}
    for i in range(8):
        into = tmp_path / "work" / f"r{i % 2}"  # two targets reused: leftovers of earlier kills lie beside them
        if into.exists():
            continue
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(src), str(into)], stdout=subprocess.PIPE, env={**os.environ})
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, took * 1.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if not into.exists():
            outcomes["absent"] += 1
            continue
        outcomes["whole"] += 1
        assert ll.read(into).select(KEPT).equals(want)
        got = ll.state_at(into)
        assert all(got[m].equals(reference[m]) for m in reference)
        with ll.open_store(into) as store:
            assert store.event_count == want.height
    assert outcomes["absent"] > 0, outcomes  # some kills landed mid-restore
    for target in ("r0", "r1"):  # a new restore into a target a kill left absent works, and clears the leftovers
        into = tmp_path / "work" / target
        if not into.exists():
            ll.restore(src, into=into)
        assert ll.read(into).select(KEPT).equals(want)
    leftovers = [p.name for p in (tmp_path / "work").iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    assert files(src) == before

"""The benchmark entry point works end to end: ``python -m benchmarks --quick`` and the scale log cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import lithair_lab as ll
from benchmarks import bench_scale
from benchmarks.__main__ import areas
from benchmarks.harness import MemoryLimitExceeded, in_child

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(480)  # nine areas, each in its own child; about two minutes on a busy 2-core machine
def test_quick_run_prints_rows_of_every_area(tmp_path: Path) -> None:
    table = tmp_path / "bench.md"
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--markdown", str(table)],
        cwd=ROOT, capture_output=True, text=True, timeout=420, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("Measured on ") and "mode quick" in out.stdout
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| ") and not line.startswith("| area")]
    seen = {cells[0].removeprefix("| ") for cells in rows}
    assert seen == set(areas()), f"areas without rows: {set(areas()) - seen}"
    assert {"seed", "scale"} <= seen
    assert all(cells[2].strip() for cells in rows), "a row without a value"
    assert table.read_text().strip() == out.stdout.strip()


def test_scale_log_is_written_once_and_matches_its_plain_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_scale, "CHUNK", 1_000)  # two chunks: entities and times of their own, no anomaly
    log = bench_scale.log_of(2_000, 50, tmp_path)
    stamp = (log / "store" / "events.raftlog").stat().st_mtime_ns
    assert bench_scale.log_of(2_000, 50, tmp_path) == log
    assert (log / "store" / "events.raftlog").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["scale-2000"]  # no building directory left behind
    plain = pl.read_ndjson(log / "plain.ndjson")
    frame = ll.read(log / "store")
    assert plain.height == frame.height == 2_000
    assert plain["event_id"].to_list() == frame["event_id"].to_list()
    state = ll.state_at(log / "store")
    assert state.anomalies.height == 0
    assert frame["timestamp"].is_sorted()
    assert sum(f.height for f in state.values()) > 50  # both chunks' entities are live


def test_in_child_returns_results_reports_failures_and_stops_a_child_above_its_memory_limit() -> None:
    assert in_child("operator", "add", 2, 3) == 5
    with pytest.raises(RuntimeError, match="exit code 3"):
        in_child("builtins", "exec", "raise SystemExit(3)")
    grow = "import time; ballast = b'x' * (300 * 2**20); time.sleep(30)"
    with pytest.raises(MemoryLimitExceeded, match="150 MiB"):
        in_child("builtins", "exec", grow, memory_limit_mib=150)

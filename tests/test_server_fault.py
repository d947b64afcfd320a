"""Bounded load against the real CLI server, and SIGKILL mid-load: no acknowledged write is lost or doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load_http import ServerProcess, check_log, run_load


@pytest.mark.slow
def test_load_then_every_acknowledged_write_is_in_the_log_once(tmp_path: Path) -> None:
    path = tmp_path / "shop"
    with ServerProcess(path) as server:
        result = run_load(server.url, requests=600, concurrency=20, write_ratio=0.5, run_id="a")
        assert server.stop() == 0
    assert result.errors == 0 and result.requests == 600
    assert result.unacked == [] and len(result.acked) > 250  # about half were writes, all acknowledged
    checked = check_log(path, result.acked, result.unacked)
    assert checked["acked_found"] == len(result.acked) and checked["unacked_written"] == 0


@pytest.mark.slow
def test_sigkill_mid_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shop"
    server = ServerProcess(path)
    with server:
        result = run_load(server.url, requests=1_500, concurrency=20, write_ratio=0.8, run_id="k", kill_after_acks=300, kill=server.kill)
    assert server.proc.returncode == -9
    assert 300 <= len(result.acked) < 1_200  # killed mid-load: some writes were refused at the door
    assert result.failures > 0
    checked = check_log(path, result.acked, result.unacked)  # reopen: torn tail repaired, replay, indexes
    assert checked["acked_found"] == len(result.acked)
    # The restarted server takes the same keys as duplicates and new keys as new writes.
    with ServerProcess(path) as again:
        retry = run_load(again.url, requests=300, concurrency=10, write_ratio=1.0, run_id="k")
        fresh = run_load(again.url, requests=200, concurrency=10, write_ratio=1.0, run_id="after")
        assert again.stop() == 0
    # retried keys already written are refused (409), the others are written now
    assert retry.failures == 0 and set(retry.statuses) <= {200, 201, 409}
    assert retry.statuses.get(409, 0) >= sum(1 for k in result.acked if int(k.removeprefix("k-")) < 300)
    assert not set(retry.acked) & set(result.acked)
    assert fresh.errors == 0
    check_log(path, result.acked + retry.acked + fresh.acked)

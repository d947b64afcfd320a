"""`state`, `history`, `diff`, `restore` and `simulate`: thin over the library, same answers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import lithair_lab as ll
from lithair_lab.cli import main
from lithair_lab.cli.policy_spec import parse_policy
from lithair_lab.state import diff, state_at

SHOP = ll.datasets.path("shop")
DAMAGED = ll.datasets.path("damaged")
MAILBOX = ll.datasets.path("mailbox-binary")
NOON = "2026-01-12T12:00:00Z"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_state_at_a_moment_matches_the_library() -> None:
    code, out = run("state", str(SHOP), "--at", NOON, "--json")
    assert code == 0
    doc = json.loads(out)
    expected = state_at(SHOP, NOON)
    assert doc["events"] == expected.events
    assert {m: len(rows) for m, rows in doc["models"].items()} == {m: f.height for m, f in expected.items()}
    keys = sorted(r["_key"] for r in doc["models"]["Product"])
    assert keys == sorted(expected["Product"]["_key"])


def test_state_by_position_and_one_model() -> None:
    code, out = run("state", str(SHOP), "--position", "10", "--model", "Product")
    assert code == 0
    assert out.splitlines()[0].endswith("(10 records)")
    assert "Product: 10 live" in out  # the shop opens with its catalogue


def test_state_unknown_model_is_one_line() -> None:
    code, out = run("state", str(SHOP), "--model", "Invoice")
    assert code == 1
    assert out.startswith("Error: unknown model `Invoice`") and out.count("\n") == 1


def test_history_lists_every_version_and_saves_the_timeline(tmp_path: Path) -> None:
    chart = tmp_path / "p1.svg"
    code, out = run("history", str(SHOP), "Product", "p1", "--json", "--chart", str(chart), "--field", "price")
    assert code == 0
    versions = json.loads(out)
    events = ll.read(SHOP).filter((pl.col("model") == "Product") & (pl.col("aggregate_id") == "p1"))
    assert [v["seq"] for v in versions] == events["seq"].to_list()
    assert chart.read_text().startswith("<svg")


def test_diff_between_two_days_matches_the_library(tmp_path: Path) -> None:
    code, out = run("diff", str(SHOP), "2026-01-12", "2026-01-13", "--json", "--chart", str(tmp_path / "d.png"))
    assert code == 0
    rows = json.loads(out)
    expected = diff(SHOP, "2026-01-12", "2026-01-13")
    assert len(rows) == expected.height > 0
    assert {r["change"] for r in rows} == set(expected["change"])
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_restore_before_the_damage_gives_a_sound_store(tmp_path: Path) -> None:
    into = tmp_path / "recovered"
    code, out = run("restore", str(DAMAGED), "--position", "100", "--into", str(into))
    assert code == 1 and "bad_crc" in out  # the damaged source is refused by default...
    assert not (into / "events.raftlog").exists()
    result = CliRunner().invoke(
        main, ["restore", str(DAMAGED), "--position", "100", "--into", str(into), "--on-damage", "report"]
    )  # ...and read around its damage when asked
    assert result.exit_code == 0, result.output
    assert result.stdout == f"restored 100 records into {into}\n"
    assert "2 damaged record(s)" in result.stderr
    assert run("verify", str(into))[0] == 0
    assert state_at(into)["Product"].sort("_key")["_key"].to_list() == (
        state_at(ll.read(DAMAGED, on_damage="report"), position=100)["Product"].sort("_key")["_key"].to_list()
    )


def test_restore_needs_a_moment(tmp_path: Path) -> None:
    code, out = run("restore", str(SHOP), "--into", str(tmp_path / "x"))
    assert code == 2 and "give the moment to restore: --at or --position" in out


def test_simulate_prints_the_summary_with_the_baseline_and_saves_the_chart(tmp_path: Path) -> None:
    chart = tmp_path / "growth.png"
    code, out = run(
        "simulate", str(MAILBOX), "-p", "smart:threshold=500,keep_recent=100",
        "-p", "latest:threshold=500,active_segment=50", "--chart", str(chart), "--json",
    )  # fmt: skip
    assert code == 0, out
    summary = json.loads(out)["summary"]
    assert [r["policy"] for r in summary] == ["NoCompaction", "SmartCompaction", "KeepLatestPerKey"]
    assert summary[0]["final_events"] == 2500 and summary[0]["compactions"] == 0
    assert all(r["final_events"] < 2500 for r in summary[1:])
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_simulate_rejects_bad_policies_as_usage_errors() -> None:
    code, out = run("simulate", str(MAILBOX), "-p", "latest:threshold=500")
    assert code == 2
    assert "`active_segment` (1000) must be below `threshold` (500)" in out
    code, out = run("simulate", str(MAILBOX), "-p", "smart:treshold=5")
    assert code == 2 and "`smart` has no parameter `treshold`" in out


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("none", ll.NoCompaction()),
        ("smart:threshold=1000,keep_recent=10,snapshot_interval=none", ll.SmartCompaction(threshold=1000, keep_recent=10, snapshot_interval=None)),
        ("smart:critical_types=OrderCreated|PaymentCreated", ll.SmartCompaction(critical_types=("OrderCreated", "PaymentCreated"))),
        ("truncate:threshold=50,snapshot=false", ll.SnapshotThenTruncate(threshold=50, snapshot=False)),
        ("maxcount:max_count=2,max_age=36h,threshold=10", ll.MaxCountMaxAge(max_count=2, max_age=timedelta(hours=36), threshold=10)),
    ],
)
def test_policy_specs(spec: str, expected: object) -> None:
    assert parse_policy(spec) == expected

"""`inspect`, `verify` and `export` on the bundled directories: exact numbers, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import lithair_lab as ll
from lithair_lab.cli import main
from lithair_lab.datasets.bundled import FLIPPED_LINE

SHOP = ll.datasets.path("shop")
DAMAGED = ll.datasets.path("damaged")
ERA_B = ll.datasets.path("upstream-era-b")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_inspect_summarizes_files_records_types_and_range() -> None:
    code, out = run("inspect", str(SHOP))
    assert code == 0
    files = [p for p in SHOP.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    assert out.splitlines()[0] == f"{SHOP}: 4,000 records in 5 journal file(s), {size:,} bytes in {len(files)} file(s)"
    assert "time range: 2026-01-05 00:00:00 → " in out
    assert "hash chain: intact over 4,000 records" in out


def test_inspect_json_is_machine_readable_and_lists_files_in_replay_order() -> None:
    code, out = run("inspect", str(SHOP), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["records"] == 4000
    journals = [f["file"] for f in doc["files"] if f["in_history"]]
    assert journals == [f"events.raftlog.{i}" for i in range(1, 5)] + ["events.raftlog"]
    assert sum(f["records"] for f in doc["files"] if f["in_history"]) == 4000
    assert sum(t["events"] for t in doc["types"]) == 4000
    assert doc["first"].startswith("2026-01-05T00:00:00")


def test_inspect_era_b_reports_no_chain_and_keeps_raw_lines() -> None:
    doc = json.loads(run("inspect", str(ERA_B), "--json")[1])
    assert doc["chain"]["chained_records"] == 0
    types = {t["type"]: t["events"] for t in doc["types"]}
    assert types["(raw record)"] == 10  # the old session store's lines are data, not damage
    assert sum(types.values()) == 1200


def test_verify_exits_zero_on_a_sound_store() -> None:
    assert run("verify", str(SHOP)) == (0, "ok: 4,000 records, no damage, hash chain intact over 4,000 records\n")


def test_verify_names_each_problem_and_exits_one() -> None:
    code, out = run("verify", str(DAMAGED), "--json")
    assert code == 1
    doc = json.loads(out)
    damage = [(d["file"], d["line"], d["kind"]) for d in doc["damage"]]
    whole_lines = (DAMAGED / "events.raftlog").read_bytes().count(b"\n")
    assert damage == [("events.raftlog.1", FLIPPED_LINE, "bad_crc"), ("events.raftlog", whole_lines + 1, "torn_tail")]
    # the record after the flipped one no longer links to what the reader saw before it
    assert [(p["file"], p["line"], p["problem"]) for p in doc["chain"]["problems"]] == [
        ("events.raftlog.1", FLIPPED_LINE + 1, "broken_link")
    ]
    code, out = run("verify", str(DAMAGED))
    assert code == 1 and "bad_crc" in out and "torn_tail" in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".ndjson"])
def test_export_round_trips_every_record(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"events{suffix}"
    code, text = run("export", str(SHOP), str(out))
    assert code == 0 and text.startswith(f"wrote {out} (")
    back = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".ndjson": pl.read_ndjson}[suffix](out)
    expected = ll.read(SHOP)
    assert back.height == expected.height
    assert back["event_id"].to_list() == expected["event_id"].to_list()


def test_export_fails_on_damage_in_one_line_unless_asked_to_report(tmp_path: Path) -> None:
    code, out = run("export", str(DAMAGED), str(tmp_path / "e.parquet"))
    assert code == 1
    first = ll.read_damage(DAMAGED).row(0, named=True)
    where = f"line {first['line']}, byte offset {first['offset']}"
    assert out == f"Error: {DAMAGED}/{first['file']}: {where}: bad_crc ({first['detail']})\n"
    code, _ = run("export", str(DAMAGED), str(tmp_path / "e.parquet"), "--on-damage", "report")
    assert code == 0
    assert pl.read_parquet(tmp_path / "e.parquet").height == 799


def test_export_needs_a_known_format(tmp_path: Path) -> None:
    code, out = run("export", str(SHOP), str(tmp_path / "events.xlsx"))
    assert code == 2 and "cannot tell the format of `events.xlsx`" in out


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    code, out = run("inspect", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in out

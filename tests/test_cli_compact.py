"""`compact`, `backups` and `restore-backup`: thin over the engine's compaction and its backups."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import lithair_lab as ll
from lithair_lab.cli import main

SHOP = ll.datasets.path("shop")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    shutil.copytree(SHOP, d)
    return d


def test_compact_keeps_the_state_and_reports_like_the_library(shop: Path) -> None:
    with ll.open_store(shop) as store:
        state, before = store.state, store.event_count
    records = ll.read(shop).height
    code, out = run("compact", str(shop), "-p", "latest:active_segment=0,backups=2", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["policy"] == "KeepLatestPerKey" and report["before"] == records
    assert 0 < report["retained"] < report["before"] and report["bytes_after"] < report["bytes_before"]
    assert (shop / report["journal"]).is_file() and Path(report["backup"]).is_dir()
    with ll.open_store(shop) as store:
        assert store.state == state and store.event_count == before
    code, out = run("compact", str(shop))  # the seed's smart policy by default, as a line of text
    assert code == 0 and out.startswith(f"compacted {shop} with `SmartCompaction`: kept ")


def test_compact_refuses_a_bad_policy_and_a_locked_store(shop: Path) -> None:
    code, out = run("compact", str(shop), "-p", "smart:keep=1")
    assert code == 2 and "`smart` has no parameter `keep`" in out
    with ll.open_store(shop):
        code, out = run("compact", str(shop))
    assert code == 1 and "Error:" in out and len(out.strip().splitlines()) == 1


def test_backups_list_and_restore_backup_rolls_back(shop: Path) -> None:
    code, out = run("backups", str(shop), "--json")
    assert code == 0 and json.loads(out) == {"backups": []}
    assert run("backups", str(shop))[1] == f"{shop} has no compaction backups\n"
    original = ll.read(shop)
    assert run("compact", str(shop), "-p", "latest:active_segment=0")[0] == 0
    assert ll.read(shop).height < original.height
    code, out = run("backups", str(shop), "--json")
    listed = json.loads(out)["backups"]
    assert [b["name"] for b in listed] == [b.name for b in ll.list_backups(shop)]
    assert listed[0]["records"] == original.height and listed[0]["policy"] == "KeepLatestPerKey"
    code, out = run("backups", str(shop))
    assert code == 0 and listed[0]["name"] in out
    code, out = run("restore-backup", str(shop), "--backup", "nope")
    assert code == 1 and "no backup `nope`" in out
    code, out = run("restore-backup", str(shop), "--backup", listed[0]["name"], "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["restored"] == listed[0]["name"]
    assert ll.read(shop).select("event_id", "payload").equals(original.select("event_id", "payload"))
    assert doc["previous_generation"] in [b.name for b in ll.list_backups(shop)]  # the rollback can be undone
    code, out = run("restore-backup", str(shop))  # the newest: the generation just replaced
    assert code == 0 and out.startswith(f"rolled {shop} back to backup {doc['previous_generation']}")
    assert ll.read(shop).height < original.height

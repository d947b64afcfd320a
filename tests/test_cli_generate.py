"""`lithair-lab generate`: a workload through the engine, from the command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lithair_lab.cli import main
from lithair_lab.datasets import generate
from lithair_lab.formats import layout


def test_generate_writes_the_same_bytes_as_the_library(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["generate", "shop", str(tmp_path / "cli"), "--events", "300", "--seed", "4", "--quiet",
               "--max-log-file-size", "40000"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 300 shop events to {tmp_path / 'cli'}\n"
    generate("shop", tmp_path / "lib", events=300, seed=4, max_log_file_size=40_000, progress=False)
    cli = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert "events.raftlog.1" in cli
    assert cli == sorted(p.name for p in (tmp_path / "lib").iterdir())
    for name in cli:
        if name.startswith("events.raftlog"):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()


def test_generate_binary_mailbox(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "mailbox", str(tmp_path / "m"), "--events", "50", "--binary", "--quiet"])
    assert result.exit_code == 0, result.output
    head = (tmp_path / "m" / layout.ACTIVE).read_bytes()[:8]
    assert int.from_bytes(head, "little") < 10_000  # a bincode length prefix, not a JSON line


def test_generate_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["generate", "shop", str(tmp_path / "d"), "--events", "5", "--quiet"])
    assert result.exit_code == 1
    assert result.output == f"Error: `{tmp_path / 'd'}` already exists and is not empty\n"
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"


def test_generate_rejects_unknown_kind_and_negative_sizes(tmp_path: Path) -> None:
    bad_kind = CliRunner().invoke(main, ["generate", "bank", str(tmp_path / "x")])
    assert bad_kind.exit_code == 2 and "'bank' is not one of 'mailbox', 'shop'" in bad_kind.output
    negative = CliRunner().invoke(main, ["generate", "shop", str(tmp_path / "x"), "--events", "-1"])
    assert negative.exit_code == 2 and "--events" in negative.output
    assert not (tmp_path / "x").exists()

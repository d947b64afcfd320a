"""Every command has help with an example, and the README shows it beside its Python call."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lithair_lab.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
COMMANDS = sorted(main.commands)


def test_the_workbench_commands_are_all_there() -> None:
    expected = {"inspect", "verify", "export", "state", "history", "diff", "restore", "simulate", "generate", "lab",
                "compact", "backups", "restore-backup"}
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_has_an_example_and_the_readme_shows_it(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output, f"`lithair-lab {name} --help` has no example"
    assert f"lithair-lab {name}" in README, f"README does not show `lithair-lab {name}`"

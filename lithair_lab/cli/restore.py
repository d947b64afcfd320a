"""`lithair-lab restore`: point-in-time recovery into a new data directory."""

from __future__ import annotations

from pathlib import Path

import click

from .options import on_damage_option, source_argument


@click.command()
@source_argument
@click.option("--at", default=None, help="The moment: ISO 8601 (UTC unless it says otherwise), a date, or Unix seconds.")
@click.option("--position", type=click.IntRange(min=0), default=None, help="Instead of --at: the first N records.")
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), required=True, help="The new data directory.")
@on_damage_option
def restore(source: Path, at: str | None, position: int | None, into: Path, on_damage: str) -> None:
    """Write a new data directory INTO holding SOURCE's history up to a moment.

    Every record is written with its original type, id, timestamp and payload
    bytes (ids an Era B log repeats included), with a fresh hash chain and a
    checkpoint; INTO appears only once complete. SOURCE is only read. With
    `--on-damage report` a damaged SOURCE is read around its damaged records
    (list them with `lithair-lab verify`).

    Example: lithair-lab restore datasets/damaged --at 2026-01-06T10:00:00Z --into recovered --on-damage report
    """
    from ..frames import read_damage
    from ..state import restore as restore_history
    from ..widgets.report import inspect_store

    if at is None and position is None:
        raise click.UsageError("give the moment to restore: --at or --position")
    out = restore_history(source, at, into=into, position=position, on_damage=on_damage)
    click.echo(f"restored {inspect_store(out).records:,} records into {out}")
    damaged = read_damage(source).height if on_damage == "report" else 0
    if damaged:
        msg = f"warning: {damaged} damaged record(s) of {source} are not in it (see `lithair-lab verify {source}`)"
        click.echo(msg, err=True)

"""`lithair-lab compact`, `backups` and `restore-backup`: the engine's compaction and its backups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..errors import LithairLabError
from .options import json_option, print_frame, print_json, source_argument
from .policy_spec import PolicyType


@click.command()
@source_argument
@click.option(
    "-p", "--policy", type=PolicyType(), default="smart", show_default=True, metavar="NAME[:k=v,...]",
    help="The policy, as for `simulate`: none, smart, truncate, latest or maxcount, with parameters.",
)  # fmt: skip
@json_option
def compact(source: Path, policy: object, as_json: bool) -> None:
    """Compact SOURCE's journal now with a policy, safely.

    The store's state is unchanged: a checkpoint holds it and the kept records
    stay as history. The replaced files go to a backup (see `backups`), which
    `restore-backup` rolls back to. SOURCE must not be open by another writer.

    Example: lithair-lab compact data/shop -p smart:keep_recent=1000,backups=3
    """
    from ..engine import open_store

    with open_store(source) as store:
        report = store.compact(policy)  # type: ignore[arg-type]
    fields = dataclasses.asdict(report)
    if as_json:
        print_json(fields)
        return
    saved = 1 - report.bytes_after / report.bytes_before if report.bytes_before else 0.0
    click.echo(
        f"compacted {source} with `{report.policy}`: kept {report.retained:,} of {report.before:,} records"
        f" ({report.carried:,} appended meanwhile), {report.bytes_before:,} -> {report.bytes_after:,} bytes"
        f" ({saved:.0%} smaller) in {report.seconds:.2f} s"
    )
    click.echo(f"new journal: {report.journal}")
    click.echo(f"backup: {report.backup}" if report.backup else "no backup kept (the policy keeps none)")


@click.command()
@source_argument
@json_option
def backups(source: Path, as_json: bool) -> None:
    """List SOURCE's compaction backups, oldest first.

    Each one holds a replaced generation (journal files, `state.raftsnap`,
    `dedup.raftids`); give its name to `restore-backup`.

    Example: lithair-lab backups data/shop --json
    """
    import polars as pl

    from ..engine.compaction import list_backups

    rows = [
        {"name": b.name, "created_at": b.created_at, "policy": b.policy, "records": b.records, "files": list(b.files)}
        for b in list_backups(source)
    ]
    if as_json:
        print_json({"backups": rows})
        return
    if not rows:
        click.echo(f"{source} has no compaction backups")
        return
    frame = pl.DataFrame(rows).with_columns(pl.col("files").list.join(", "))
    print_frame(frame, rows=len(frame))


@click.command("restore-backup")
@source_argument
@click.option("--backup", "name", default=None, metavar="NAME", help="The backup's name (see `backups`); default: the newest.")
@json_option
def restore_backup(source: Path, name: str | None, as_json: bool) -> None:
    """Roll SOURCE back to one of its compaction backups.

    Nothing is lost: the current generation is kept as a new backup first, so
    the rollback can itself be undone. SOURCE must not be open by a store.

    Example: lithair-lab restore-backup data/shop --backup 20260101T120000000000Z-1a2b3c4d
    """
    from ..engine.compaction import list_backups
    from ..engine.compaction import restore_backup as roll_back

    known = list_backups(source)
    chosen = name or (known[-1].name if known else None)
    try:
        kept = roll_back(source, name)
    except FileNotFoundError as e:
        raise LithairLabError(str(e)) from None
    if as_json:
        print_json({"restored": chosen, "previous_generation": kept.name, "path": kept})
        return
    click.echo(f"rolled {source} back to backup {chosen}; the generation it replaced is kept as backup {kept.name}")

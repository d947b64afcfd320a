"""`lithair-lab verify`: CRCs and the hash chain; a non-zero exit on any problem."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import json_option, print_frame, print_json, source_argument

EXIT_DAMAGED = 1


@click.command()
@source_argument
@json_option
def verify(source: Path, as_json: bool) -> None:
    """Check every record of SOURCE: CRC, framing, checkpoint and hash chain.

    Exits 0 when everything holds and 1 when anything is damaged or the chain
    is broken, listing each problem with its file, line and byte offset.

    Example: lithair-lab verify datasets/damaged || echo damaged
    """
    from ..widgets.report import inspect_store

    report = inspect_store(source)
    if as_json:
        print_json(
            {"source": str(source), "ok": report.ok, "records": report.records, "damage": report.damage.to_dicts(),
             "chain": {"chained_records": report.chained, "problems": report.chain.to_dicts()}}
        )  # fmt: skip
    else:
        if report.ok:
            chain = f"hash chain intact over {report.chained:,} records" if report.chained else "no hash chain to check"
            click.echo(f"ok: {report.records:,} records, no damage, {chain}")
        if not report.damage.is_empty():
            click.echo(f"{len(report.damage)} damaged record(s) or problem(s):")
            print_frame(report.damage.select("store", "file", "line", "offset", "kind", "detail"), rows=100)
        if not report.chain.is_empty():
            click.echo(f"{len(report.chain)} hash-chain problem(s):")
            print_frame(report.chain.select("store", "file", "line", "offset", "event_id", "problem"), rows=100)
    if not report.ok:
        sys.exit(EXIT_DAMAGED)

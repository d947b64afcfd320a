"""`lithair-lab inspect`: what a data directory holds."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, print_frame, print_json, source_argument


@click.command()
@source_argument
@json_option
def inspect(source: Path, as_json: bool) -> None:
    """Summarize SOURCE: files and sizes, records, event types, time range, damage, hash chain.

    Damage does not stop the summary (see `lithair-lab verify` for an exit code).

    Example: lithair-lab inspect datasets/shop
    """
    from ..widgets.report import inspect_store

    report = inspect_store(source)
    if as_json:
        print_json(report.to_dict())
        return
    click.echo("\n".join(report.summary_lines()))
    click.echo()
    print_frame(report.files, rows=60)
    print_frame(report.types, rows=30)

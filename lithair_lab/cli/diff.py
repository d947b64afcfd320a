"""`lithair-lab diff`: what changed between two moments."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, print_frame, print_json, source_argument


@click.command()
@source_argument
@click.argument("since")
@click.argument("until", required=False)
@click.option("--rows", type=click.IntRange(min=1), default=40, show_default=True, help="Changes shown (tables only).")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save the diff chart (.png or .svg).")
@json_option
def diff(source: Path, since: str, until: str | None, rows: int, chart: Path | None, as_json: bool) -> None:
    """What changed in SOURCE between SINCE and UNTIL (default: now), one row per changed field.

    Moments are ISO 8601 times (UTC unless they say otherwise), dates or Unix seconds.

    Example: lithair-lab diff datasets/shop 2026-01-12 2026-01-13
    """
    from ..state import diff as state_diff

    changes = state_diff(source, since, until)
    if chart is not None:
        from ..viz import save
        from ..viz import state_diff as diff_chart

        save(diff_chart(changes, title=f"Changes {since} → {until or 'now'}"), chart)
    if as_json:
        print_json(changes)
        return
    summary = changes.select("model", "_key", "change").unique().group_by("model", "change").len().sort("model", "change")
    click.echo(f"{changes.height:,} changed fields")
    print_frame(summary, rows=30)
    print_frame(changes, rows=rows)
    if chart is not None:
        click.echo(f"diff chart saved to {chart}")

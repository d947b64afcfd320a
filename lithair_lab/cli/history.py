"""`lithair-lab history`: every version of one entity."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, print_frame, print_json, source_argument


@click.command()
@source_argument
@click.argument("model")
@click.argument("key")
@click.option("--rows", type=click.IntRange(min=1), default=50, show_default=True, help="Versions shown (tables only).")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save its timeline chart (.png or .svg).")
@click.option("--field", default=None, help="With --chart: plot this payload field over time.")
@json_option
def history(source: Path, model: str, key: str, rows: int, chart: Path | None, field: str | None, as_json: bool) -> None:
    """Every version of entity KEY of MODEL in SOURCE, oldest first.

    Example: lithair-lab history datasets/shop Product p1 --chart p1.png --field price
    """
    from ..state import history as entity_history

    versions = entity_history(source, model, key)
    if chart is not None:
        from ..viz import entity_timeline, save

        save(entity_timeline(source, key, model=model, field=field), chart)
    if as_json:
        print_json(versions)
        return
    click.echo(f"{model} {key}: {versions.height:,} versions")
    print_frame(versions.tail(rows) if versions.height > rows else versions, rows=rows)
    if chart is not None:
        click.echo(f"timeline saved to {chart}")

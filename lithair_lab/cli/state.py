"""`lithair-lab state`: the live entities at a moment."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, print_frame, print_json, source_argument


@click.command()
@source_argument
@click.option("--at", default=None, help="A moment: ISO 8601 (UTC unless it says otherwise), a date, or Unix seconds. Default: now.")
@click.option("--position", type=click.IntRange(min=0), default=None, help="Instead of --at: after the first N records.")
@click.option("--model", default=None, help="Only this model (default: every model).")
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True, help="Rows shown per model (tables only).")
@json_option
def state(source: Path, at: str | None, position: int | None, model: str | None, rows: int, as_json: bool) -> None:
    """The state of SOURCE at a moment: one table per model, one row per live entity.

    Example: lithair-lab state datasets/shop --at 2026-01-12T12:00:00Z --model Product
    """
    from ..state import state_at

    result = state_at(source, at, position=position)
    models = [model] if model is not None else sorted(result)
    frames = {m: result[m] for m in models}
    if as_json:
        print_json({"moment": str(result.moment), "events": result.events, "models": frames})
        return
    click.echo(f"state at {result.moment} ({result.events:,} records)")
    for name, frame in frames.items():
        click.echo(f"\n{name}: {frame.height:,} live")
        print_frame(frame, rows=rows)

"""`lithair-lab generate`: write a realistic workload through the engine."""

from __future__ import annotations

from pathlib import Path

import click

from ..datasets import generate as generate_dataset
from ..datasets.workloads import WORKLOADS


@click.command()
@click.argument("kind", type=click.Choice(sorted(WORKLOADS)))
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--events", type=click.IntRange(min=0), default=10_000, show_default=True, help="Number of events.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same events.")
@click.option("--weeks", type=click.FloatRange(min=0, min_open=True), default=4, show_default=True, help="Time span.")
@click.option("--binary", is_flag=True, help="Write binary (bincode) frames instead of JSON lines.")
@click.option("--max-log-file-size", type=click.IntRange(min=0), default=None, help="Rotate segments at this many bytes.")
@click.option("--snapshot-every", type=click.IntRange(min=1), default=None, help="Publish a checkpoint every N events.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(
    kind: str,
    path: Path,
    events: int,
    seed: int,
    weeks: float,
    binary: bool,
    max_log_file_size: int | None,
    snapshot_every: int | None,
    quiet: bool,
) -> None:
    """Generate a `shop` or `mailbox` workload into a new data directory PATH.

    Events are appended through the engine, deterministic by --seed.

    Example: lithair-lab generate shop data/shop --events 1000000 --max-log-file-size 50000000
    """
    options = {"binary": binary} if binary else {}
    if max_log_file_size is not None:
        options["max_log_file_size"] = max_log_file_size
    out = generate_dataset(
        kind, path, events=events, seed=seed, weeks=weeks, snapshot_every=snapshot_every, progress=not quiet, **options
    )
    click.echo(f"wrote {events:,} {kind} events to {out}")

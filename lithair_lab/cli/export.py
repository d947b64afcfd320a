"""`lithair-lab export`: the event frame to Parquet, CSV or NDJSON."""

from __future__ import annotations

from pathlib import Path

import click

from .options import on_damage_option, source_argument

FORMATS = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}


@click.command()
@source_argument
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "ndjson"]),
    default=None,
    help="Output format (default: from OUT's suffix).",
)
@on_damage_option
def export(source: Path, out: Path, fmt: str | None, on_damage: str) -> None:
    """Export every record of SOURCE (one row per event, in replay order) to OUT.

    By default the command fails on the first damaged record, naming it; with
    `--on-damage report` damaged records are left out (list them with
    `lithair-lab verify`).

    Example: lithair-lab export datasets/shop events.parquet
    """
    from .. import scan

    fmt = fmt or FORMATS.get(out.suffix.lower())
    if fmt is None:
        msg = f"cannot tell the format of `{out.name}`; pass --format or use .parquet, .csv or .ndjson"
        raise click.UsageError(msg)
    lf = scan(source, on_damage=on_damage)  # type: ignore[arg-type]
    if fmt == "parquet":
        lf.sink_parquet(out)
    elif fmt == "csv":
        lf.sink_csv(out)
    else:
        lf.sink_ndjson(out)
    click.echo(f"wrote {out} ({fmt}, {out.stat().st_size:,} bytes)")

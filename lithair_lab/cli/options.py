"""Options shared by several commands, spelled like the library's keywords."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import polars as pl

F = TypeVar("F", bound=Callable[..., Any])

source_argument = click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
on_damage_option = click.option(
    "--on-damage",
    type=click.Choice(["raise", "report"]),
    default="raise",
    show_default=True,
    help="`raise`: stop at the first damaged record. `report`: leave damaged records out (see `verify`).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, pl.DataFrame):
        return o.to_dicts()
    raise TypeError


def print_json(obj: Any) -> None:
    """One JSON document on stdout (datetimes in ISO 8601, frames as lists of rows)."""
    click.echo(orjson.dumps(obj, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def print_frame(frame: pl.DataFrame, *, rows: int = 40) -> None:
    """A frame as a readable table, wide enough for the terminal."""
    with pl.Config(tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200, tbl_hide_dataframe_shape=False):
        click.echo(str(frame))

"""`lithair-lab lab`: JupyterLab on the bundled notebooks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
QUICKSTART = "00_quickstart.ipynb"


@click.command()
@click.option("--port", type=int, default=None, help="Port for JupyterLab (default: its own choice).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def lab(port: int | None, no_browser: bool) -> None:
    """Start JupyterLab on the bundled notebooks, opening the quickstart.

    Example: lithair-lab lab --no-browser
    """
    args = [
        sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={NOTEBOOKS}",
        f"--LabApp.default_url=/lab/tree/{QUICKSTART}",  # a newcomer lands on the tour
    ]  # fmt: skip
    if os.geteuid() == 0:  # JupyterLab refuses root unless told
        args.append("--allow-root")
    if port is not None:
        args.append(f"--port={port}")
    if no_browser:
        args.append("--no-browser")
    os.execv(sys.executable, args)

"""Run every benchmark: ``python -m benchmarks [--quick] [--only AREA] [--markdown FILE]``.

Each ``benchmarks/bench_<area>.py`` exposes ``run(quick: bool) -> list[Row]``;
this entry point runs them in turn, each in its own child process so that peak
memory and warm caches do not leak from one area into the next, and prints one
table (medians with [min–max], each figure beside its anchor, as a ratio).
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import platform
import subprocess
import sys
import time
from pathlib import Path

from .harness import Row, markdown

HERE = Path(__file__).resolve().parent


def areas() -> list[str]:
    """Every ``bench_<area>.py`` beside this file, in name order."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run_area(area: str, quick: bool) -> list[Row]:
    """Run one area in a child process and return its rows."""
    code = (
        "import pickle, sys; from benchmarks import bench_{a} as m;"
        "sys.stdout.buffer.write(b'\\n@@ROWS@@' + pickle.dumps(m.run({q})))"
    ).format(a=area, q=quick)
    out = subprocess.run([sys.executable, "-c", code], cwd=HERE.parent, capture_output=True, check=False)
    sys.stderr.write(out.stderr.decode(errors="replace"))
    if out.returncode != 0 or b"\n@@ROWS@@" not in out.stdout:
        raise RuntimeError(f"benchmark `{area}` failed with exit code {out.returncode}")
    head, _, rows = out.stdout.rpartition(b"\n@@ROWS@@")
    sys.stderr.write(head.decode(errors="replace"))
    return pickle.loads(rows)  # noqa: S301 - our own child process


def machine() -> str:
    """One line describing where the figures were measured."""
    import os

    import polars as pl

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()},"
        f" Python {platform.python_version()}, polars {pl.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats: checks the harness works")
    ap.add_argument("--only", action="append", choices=areas(), help="run only this area (repeatable)")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    rows: list[Row] = []
    t0 = time.perf_counter()
    for area in args.only or areas():
        print(f"# {area} ...", file=sys.stderr, flush=True)
        rows.extend(run_area(area, args.quick))
    table = markdown(rows)
    mode = "quick" if args.quick else "full"
    header = f"Measured on {machine()}; mode {mode}; {time.perf_counter() - t0:.0f} s in all.\n\n"
    print(header + table)
    if args.markdown:
        args.markdown.write_text(header + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

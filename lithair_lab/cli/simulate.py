"""`lithair-lab simulate`: compaction policies replayed through a log, side by side."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, print_frame, print_json, source_argument
from .policy_spec import PolicyType

SHOWN = ("policy", "compactions", "final_events", "final_bytes", "peak_bytes", "reduction", "startup_s",
         "integrity", "differing_entities", "audit_completeness", "reconstructable")  # fmt: skip


@click.command()
@source_argument
@click.option(
    "-p", "--policy", "policies", type=PolicyType(), multiple=True, metavar="NAME[:k=v,...]",
    help="A policy: none, smart, truncate, latest or maxcount, with parameters (repeatable). "
    "Default: the seed's smart compaction. `none` is always added as the baseline.",
)  # fmt: skip
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save the growth chart (.png or .svg).")
@click.option("--startup/--no-startup", default=False, show_default=True, help="Estimate startup times (calibrates a few seconds).")
@json_option
def simulate(source: Path, policies: tuple[object, ...], chart: Path | None, startup: bool, as_json: bool) -> None:
    """Replay SOURCE's history as if each policy had compacted it from the first event.

    Prints one row per policy: compactions, final size, integrity of the final
    state, audit completeness and how much of the past stays reconstructable.

    Example: lithair-lab simulate datasets/mailbox-binary -p smart:threshold=500,keep_recent=100 -p latest:threshold=500 --chart growth.png
    """
    from ..compaction import simulate as run
    from ..engine.policies import NoCompaction, SmartCompaction

    chosen = list(policies) or [SmartCompaction()]
    if not any(isinstance(p, NoCompaction) for p in chosen):
        chosen.insert(0, NoCompaction())
    sim = run(source, chosen, startup=startup)  # type: ignore[arg-type]
    summary = sim.summary.select([c for c in SHOWN if c in sim.summary.columns])
    if chart is not None:
        from ..viz import save
        from ..viz.compaction import compaction_growth

        save(compaction_growth(sim), chart)
    if as_json:
        print_json({"summary": summary, "chart": str(chart) if chart else None})
        return
    print_frame(summary, rows=len(summary))
    if chart is not None:
        click.echo(f"growth chart saved to {chart}")

"""The workbench: the explorer's step, charts on big logs, generators and the inspector.

``python -m benchmarks.bench_workbench [--quick]``. The full run generates (once,
in a temporary directory, through the engine) a 1,000,000-event shop; ``--quick``
uses 20,000. Measured in the same process, each beside its anchor:

- one step of the time-travel explorer (state at a position through the time
  machine, header, entity table, chart spec), against a cold ``state_at`` at the
  same positions (target: <= 100 ms per step on 1M events);
- building the event-rate, type-mix and log-growth charts from the event frame,
  against the bare Polars aggregation the event-rate chart runs;
- generating the shop through the engine, against appending the same events
  already built, one ``append`` each as the generator does (so the ratio is the
  workload's own cost);
- ``inspect_store`` (read, damage, chain), against ``ll.read`` alone.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import polars as pl

import lithair_lab as ll
from lithair_lab.datasets import generate
from lithair_lab.datasets.workloads import shop
from lithair_lab.state import TimeMachine, state_at
from lithair_lab.widgets import TimeTravelExplorer, inspect_store

from .harness import Row, Timing, markdown, measure, peak_rss_mib, percentile

AREA = "workbench"


def _steps(explorer: TimeTravelExplorer, positions: list[int]) -> list[float]:
    out = []
    for p in positions:
        explorer.slider.value = p  # one step: what a user's slider move costs in the kernel
        out.append(explorer.last_step_s)
    return out


def run(quick: bool) -> list[Row]:
    n = 20_000 if quick else 1_000_000
    rows: list[Row] = []
    warnings.simplefilter("ignore")  # history anomalies are reported by the state layer, not timed here
    with tempfile.TemporaryDirectory(prefix="bench-workbench-") as tmp:
        path = Path(tmp) / "shop"
        t0 = time.perf_counter()
        generate("shop", path, events=n, seed=1, weeks=8, progress=False)
        gen = time.perf_counter() - t0
        events = list(shop(n, seed=1, weeks=8))
        batch = [
            {"event_type": e.event_type, "payload": e.payload, "event_id": e.event_id,
             "aggregate_id": e.aggregate_id, "timestamp": e.timestamp}
            for e in events
        ]  # fmt: skip
        t0 = time.perf_counter()
        with ll.open_store(Path(tmp) / "anchor") as store:
            for e in batch:
                store.append(**e)
        append = time.perf_counter() - t0
        del events, batch
        rows.append(
            Row(AREA, f"generate shop ({n:,} events) through the engine", Timing((gen,)).rate(n), "events/s",
                "append of the same events, pre-built", Timing((append,)).rate(n), higher_is_better=True)
        )  # fmt: skip

        frame = ll.read(path)
        t0 = time.perf_counter()
        machine = TimeMachine(path)
        build = time.perf_counter() - t0
        explorer = TimeTravelExplorer(frame, model="Product", machine=machine)
        rng = random.Random(0)
        positions = [rng.randrange(n + 1) for _ in range(30 if quick else 60)]
        steps = _steps(explorer, positions)
        cold = measure(lambda: state_at(frame, position=positions[0]), repeat=3)
        rows.append(
            Row(AREA, f"explorer step on {n:,} events (median of {len(steps)})", Timing(tuple(steps)), "s",
                "cold state_at at one position", cold, target="<= 0.100 s on 1M events",
                notes={"p99_s": percentile(steps, 0.99), "time_machine_build_s": build})
        )  # fmt: skip
        rows.append(Row(AREA, "explorer step p99", percentile(steps, 0.99), "s", target="<= 0.100 s on 1M events"))

        agg = measure(
            lambda: frame.lazy().group_by_dynamic("timestamp", every="6h", group_by="short_type").agg(pl.len()).collect(),
            setup=lambda: None,
        )
        for name, chart in (
            ("event_rate chart", lambda: ll.viz.event_rate(frame).to_dict()),
            ("type_mix chart", lambda: ll.viz.type_mix(frame).to_dict()),
            ("log_growth chart", lambda: ll.viz.log_growth(frame).to_dict()),
        ):
            rows.append(Row(AREA, f"{name} from {n:,} rows", measure(chart), "s", "bare Polars 6h/type count", agg))

        inspect = measure(lambda: inspect_store(path), repeat=1 if not quick else 2)
        read = measure(lambda: ll.read(path), repeat=3)
        rows.append(Row(AREA, f"inspect_store ({n:,} events, with chain check)", inspect, "s", "ll.read alone", read))
    rows.append(Row(AREA, "peak memory", peak_rss_mib(), "MiB"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events instead of 1,000,000")
    args = parser.parse_args()
    print(markdown(run(args.quick)))
    sys.exit(0)

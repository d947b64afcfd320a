"""Write a workload into a data directory through the engine, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import LithairLabError
from .workloads import START, WORKLOADS

PROGRESS_EVERY = 1024  # events between two progress-bar updates


def generate(
    kind: str,
    path: str | Path,
    *,
    events: int = 10_000,
    seed: int = 0,
    weeks: float = 4,
    snapshot_every: int | None = None,
    progress: bool = True,
    **store_options: Any,
) -> Path:
    """Generate a workload into a new data directory, appending through ``ll.open_store``.

    Parameters
    ----------
    kind
        ``"shop"`` or ``"mailbox"`` (see :mod:`lithair_lab.datasets.workloads`).
    path
        The data directory to create; it must not already hold a Lithair file.
    events
        Number of events to append.
    seed
        Same seed, same events (and, with the same store options, the same journal bytes).
    weeks
        Time span covered by the events' timestamps.
    snapshot_every
        Publish a checkpoint after every this many events; None for none.
    progress
        Show a tqdm progress bar.
    **store_options
        Passed to ``ll.open_store`` (``binary=True``, ``max_log_file_size=...``, ...).

    Returns
    -------
    Path
        The data directory.

    Examples
    --------
    >>> ll.datasets.generate("shop", tmp / "shop", events=1_000, max_log_file_size=64_000)  # doctest: +SKIP
    """
    from ..engine import open_store  # the one writer of data directories

    if kind not in WORKLOADS:
        msg = f"unknown workload `{kind}`\n\nChoose one of: {', '.join(f'`{k}`' for k in WORKLOADS)}."
        raise LithairLabError(msg)
    if events < 0:
        msg = f"`events` should be zero or more, got {events}"
        raise LithairLabError(msg)
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        msg = f"`{path}` already exists and is not empty\n\nGenerate into a new directory; nothing was written."
        raise LithairLabError(msg)
    stream = WORKLOADS[kind](events, seed=seed, weeks=weeks, start=START)
    with open_store(path, **store_options) as store, tqdm(
        total=events, desc=f"{kind} → {path.name}", unit="ev", disable=not progress, leave=False
    ) as bar:
        # One append per event, as a live application writes them: a batch would be
        # written as one unit (never split by a rotation) and marked as a batch.
        for i, ev in enumerate(stream, 1):
            store.append(
                ev.event_type, ev.payload, event_id=ev.event_id, aggregate_id=ev.aggregate_id, timestamp=ev.timestamp
            )
            if snapshot_every and i % snapshot_every == 0:
                store.snapshot()
            if i % PROGRESS_EVERY == 0:
                bar.update(PROGRESS_EVERY)
        bar.update(events - bar.n)
    return path

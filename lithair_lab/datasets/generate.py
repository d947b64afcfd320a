"""Write a workload into a data directory through the engine, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import LithairLabError
from .workloads import START, WORKLOADS

BATCH = 1024  # events per `append_many` call


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
    batch: list[dict[str, Any]] = []
    with open_store(path, **store_options) as store, tqdm(
        total=events, desc=f"{kind} → {path.name}", unit="ev", disable=not progress, leave=False
    ) as bar:
        for i, ev in enumerate(stream, 1):
            batch.append(
                {"event_type": ev.event_type, "payload": ev.payload, "event_id": ev.event_id,
                 "aggregate_id": ev.aggregate_id, "timestamp": ev.timestamp}
            )  # fmt: skip
            at_snapshot = bool(snapshot_every) and i % snapshot_every == 0
            if len(batch) == BATCH or at_snapshot or i == events:
                store.append_many(batch)  # the same records as one append each, written in fewer calls
                bar.update(len(batch))
                batch = []
            if at_snapshot:
                store.snapshot()
    return path

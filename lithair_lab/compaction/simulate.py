"""``simulate``: every policy replayed through a log's history, side by side."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..engine.policies import CompactionPolicy, SmartCompaction, check_critical_types, check_policy
from ..engine.reducers import ReducerRegistry
from ..formats.schema import EVENT_SCHEMA
from . import metrics, sizes, timeline
from .startup import StartupModel, default_startup_model

SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "policy": pl.String(),
    "compactions": pl.Int64(),
    "final_events": pl.Int64(),  # records in the journal at the end
    "final_bytes": pl.Int64(),  # journal + snapshot + backups at the end
    "peak_bytes": pl.Int64(),  # largest journal + snapshot + backups at any moment
    "journal_bytes": pl.Int64(),
    "snapshot_bytes": pl.Int64(),
    "backup_bytes": pl.Int64(),
    "reduction": pl.Float64(),  # 1 - final_bytes / the uncompacted journal's bytes
    "startup_s": pl.Float64(),  # estimated seconds to open the final directory
    "startup_error": pl.Float64(),  # the cost model's typical relative error
    "integrity": pl.Boolean(),  # head state equals the uncompacted head state
    "differing_entities": pl.Int64(),
    "audit_completeness": pl.Float64(),  # share of critical records still in the journal
    "horizon": pl.Datetime("us", "UTC"),  # earliest moment from which state_at is exact (null: none)
    "horizon_position": pl.Int64(),
    "reconstructable": pl.Float64(),  # share of past moments state_at reconstructs exactly
    "simulated_s": pl.Float64(),  # wall-clock seconds this policy's simulation took
}


@dataclass(frozen=True)
class Simulation:
    """The result of :func:`simulate`.

    Attributes
    ----------
    series
        Per policy and moment: journal records and bytes, snapshot and backup
        bytes, compactions so far (``timeline.SERIES_SCHEMA``).
    summary
        One row per policy (:data:`SUMMARY_SCHEMA`).
    compactions
        One row per compaction of each policy.
    differences
        For policies without integrity: ``policy``, ``model``, ``key``,
        ``what`` (``missing``/``extra``/``changed``) of each differing entity.
    kept
        ``policy`` and ``seq``: the records of the log each policy's journal
        holds at the end.
    startup
        The startup-cost model used (None when not estimated).
    """

    series: pl.DataFrame
    summary: pl.DataFrame
    compactions: pl.DataFrame
    differences: pl.DataFrame
    kept: pl.DataFrame = field(repr=False)
    startup: StartupModel | None = field(default=None, repr=False)

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()


def _events(source: Any) -> pl.DataFrame:
    if isinstance(source, pl.LazyFrame):
        source = source.collect()
    elif isinstance(source, (str, Path)):
        from ..frames import scan  # the read path

        source = scan(source).collect()
    if not isinstance(source, pl.DataFrame):
        msg = f"`source` should be a data directory or an event frame, got {type(source).__name__}"
        raise TypeError(msg)
    missing = [c for c in EVENT_SCHEMA if c not in source.columns]
    if missing:
        names = ", ".join(f"`{c}`" for c in missing)
        msg = f"`source` lacks the event-frame columns {names}\n\nhint: pass `ll.scan(path)` or a data directory"
        raise ValueError(msg)
    return source


def _unique_names(policies: list[CompactionPolicy]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in policies:
        seen[p.name] = seen.get(p.name, 0) + 1
        out.append(p.name if seen[p.name] == 1 else f"{p.name} #{seen[p.name]}")
    return out


def simulate(
    source: Any,
    policies: CompactionPolicy | Iterable[CompactionPolicy],
    *,
    reducers: ReducerRegistry | dict[str, Any] | None = None,
    critical: pl.Expr | None = None,
    startup: StartupModel | bool = True,
    resolution: int = 2_000,
) -> Simulation:
    """Replay a log's history as if each policy had run in production from its first event.

    Each policy compacts whenever its trigger fires (the engine's own rule,
    :func:`lithair_lab.engine.policies.next_trigger`) and keeps what its
    ``retain`` expression keeps, evaluated as the engine evaluates it.

    Parameters
    ----------
    source
        A data directory (str or Path) or an event frame (``ll.scan`` / ``ll.read``).
    policies
        One policy or several (:mod:`lithair_lab.engine.policies`, or your own).
    reducers
        Custom reducers of the application, as given to ``ll.open_store``: a
        dropped record of such a type is assumed to break time travel from
        there on, and they are used to fold the head state.
    critical
        Which records an audit needs (a boolean expression over the event
        frame); default: what the given smart policies call critical (the
        seed's four types and every ``<Model>Created`` when none is given).
    startup
        A :class:`~lithair_lab.compaction.StartupModel`; True calibrates one
        on this machine (once per process, a few seconds); False skips the
        estimate.
    resolution
        About how many moments per policy the series samples, besides both
        sides of every compaction.

    Returns
    -------
    Simulation
        ``series``, ``summary``, ``compactions`` and ``differences``.

    Raises
    ------
    PolicyError
        When a policy is malformed, or names critical types the log never has.

    Notes
    -----
    Integrity: a policy that publishes a checkpoint keeps the state by
    construction. One that does not (``snapshot=False``) is still simulated,
    and its head state, folded from the records it kept, is compared with
    the uncompacted one: the entities that differ are listed.

    Examples
    --------
    >>> import lithair_lab as ll
    >>> sim = ll.simulate(events, [ll.NoCompaction(), ll.SmartCompaction(threshold=100, keep_recent=50)],
    ...                   startup=False)  # doctest: +SKIP
    >>> sim.summary.select("policy", "final_events", "integrity")  # doctest: +SKIP
    """
    log = _events(source)
    items = [policies] if isinstance(policies, CompactionPolicy) or hasattr(policies, "retain") else list(policies)
    checked = [check_policy(p) for p in items]  # type: ignore[arg-type]
    if not checked:
        raise ValueError("`policies` is empty\n\nhint: pass at least one policy, e.g. `ll.NoCompaction()`")
    registry = ReducerRegistry.coerce(reducers)
    custom = [t for t in log["short_type"].unique().drop_nulls().to_list() if t in registry]
    known = log["event_type"].unique().drop_nulls().to_list()
    for p in checked:
        check_critical_types(p, known)
    if critical is None:  # one yardstick for every policy: what the smart policies given call critical
        smart = [p for p in checked if isinstance(p, SmartCompaction)] or [SmartCompaction()]
        critical = pl.any_horizontal(*(p.is_critical() for p in smart))
    model = (default_startup_model() if startup is True else startup) or None

    log = log.select(list(EVENT_SCHEMA))  # only the documented columns, in order
    rb = sizes.record_bytes(log)
    sb = sizes.state_bytes(log)
    uncompacted_bytes = int(rb.sum())
    breaks = metrics.breakage(log, custom_types=custom)
    head_check: metrics.HeadCheck | None = None

    series, summaries, comps, diffs, kept_rows = [], [], [], [], []
    for name, policy in zip(_unique_names(checked), checked, strict=True):
        t0 = time.perf_counter()
        tl = timeline.run(policy, log, rb)
        s = timeline.sample(tl, log["timestamp"], rb, sb, resolution=resolution).with_columns(policy=pl.lit(name))
        last = s.row(-1, named=True) if s.height else dict.fromkeys(timeline.SERIES_SCHEMA, 0)
        exact_from = int(tl.snapshot_at[-1]) if tl.snapshot_at.len() else None
        hz = metrics.horizon(log, tl.retained, exact_from=exact_from, breaks=breaks)
        if policy.snapshot or tl.compactions.height == 0:
            differing = pl.DataFrame(schema={"model": pl.String(), "key": pl.String(), "what": pl.String()})
        else:
            if head_check is None:
                head_check = metrics.HeadCheck(log, breaks, reducers=registry, custom_types=custom)
            differing = head_check.differences(tl.retained)
        # opening replays what the last checkpoint does not cover: the records appended after it
        replayed = log.height - 1 - exact_from if exact_from is not None else int(last["journal_events"])
        startup_s = model.predict(last["journal_bytes"], replayed, last["snapshot_bytes"]) if model else None
        horizon_at, horizon_position = hz.timestamp, hz.position
        if horizon_position is None and differing.height == 0 and log.height:
            # the guarantee covers no moment, but the head was compared and is exact
            horizon_position, horizon_at = log.height - 1, log["timestamp"][-1]
        summaries.append(
            {
                "policy": name,
                "compactions": tl.compactions.height,
                "final_events": last["journal_events"],
                "final_bytes": last["total_bytes"],
                "peak_bytes": int(s["total_bytes"].max() or 0),
                "journal_bytes": last["journal_bytes"],
                "snapshot_bytes": last["snapshot_bytes"],
                "backup_bytes": last["backup_bytes"],
                "reduction": 1 - last["total_bytes"] / uncompacted_bytes if uncompacted_bytes else 0.0,
                "startup_s": startup_s,
                "startup_error": model.error if model else None,
                "integrity": differing.height == 0,
                "differing_entities": differing.height,
                "audit_completeness": metrics.audit_completeness(log, tl.retained, critical),
                "horizon": horizon_at,
                "horizon_position": horizon_position,
                "reconstructable": hz.share,
                "simulated_s": time.perf_counter() - t0,
            }
        )
        series.append(s)
        comps.append(tl.compactions.with_columns(policy=pl.lit(name)).select("policy", *timeline.COMPACTION_SCHEMA))
        kept_rows.append(pl.DataFrame({"policy": name, "seq": log["seq"].gather(tl.retained)}))
        diffs.append(differing.with_columns(policy=pl.lit(name)).select("policy", "model", "key", "what"))
    return Simulation(
        series=pl.concat(series),
        summary=pl.DataFrame(summaries, schema=SUMMARY_SCHEMA),
        compactions=pl.concat(comps),
        differences=pl.concat(diffs),
        kept=pl.concat(kept_rows),
        startup=model,
    )

"""What a policy gives up: integrity at the head, audit completeness, time-travel horizon.

Each takes the uncompacted log (EVENT_SCHEMA rows in order) and the rows a
policy left in the journal, and is vectorized over the whole log.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from ..engine.policies import STREAM
from ..formats.crud import ACTIONS

_RESETS = [op for op, action in ACTIONS.items() if action in ("upsert", "delete")]


@dataclass(frozen=True)
class Horizon:
    """How far back ``state_at`` is still exact on a compacted journal.

    ``position`` is the first row from which every later moment is exact
    (``None`` when not even the head is), ``timestamp`` its time, and
    ``share`` the fraction of the history's moments (one per record) that
    can still be reconstructed exactly.
    """

    position: int | None
    timestamp: datetime | None
    share: float


def breakage(log: pl.DataFrame, *, custom_types: Collection[str] = ()) -> pl.Series:
    """For each record, the first moment its loss stops mattering (null: losing it never does).

    Losing a CRUD record breaks its entity from that record until the
    entity's next ``Created``/``Replicated``/``Deleted`` (the end of the log
    when there is none). Losing a record of a type with a custom reducer
    breaks everything after it (a reducer may do anything). Other records
    leave the state unchanged. Policy-independent: computed once per log.
    """
    n = log.height
    row = pl.col("_row")
    reset = pl.col("op").is_in(_RESETS).fill_null(False)
    next_reset = pl.when(reset).then(row).shift(-1).backward_fill().over(STREAM)
    is_crud = pl.col("model").is_not_null() & STREAM.is_not_null()
    is_custom = pl.col("short_type").is_in(list(custom_types)).fill_null(False)
    end = pl.when(is_custom).then(pl.lit(n, pl.Int64)).when(is_crud).then(next_reset.fill_null(n)).otherwise(None)
    return log.with_columns(pl.int_range(n, dtype=pl.Int64).alias("_row")).select(end.alias("end"))["end"]


def horizon(
    log: pl.DataFrame,
    retained: pl.Series,
    *,
    exact_from: int | None,
    breaks: pl.Series | None = None,
    custom_types: Collection[str] = (),
) -> Horizon:
    """The time-travel horizon of a journal that kept the rows ``retained`` of ``log``.

    A moment (the state after row ``m``) is counted exact when, for every
    entity, its history from its last ``Created``/``Replicated``/``Deleted``
    up to ``m`` is fully retained: folding the retained records then gives
    the same entity (see :func:`breakage`, passed as ``breaks`` when already
    computed). Moments from ``exact_from`` on (a checkpoint's row) are exact
    by construction.

    The count is a guarantee, not an estimate: a policy that keeps only the
    newest whole-object update may reconstruct more moments than counted.
    """
    n = log.height
    if n == 0:
        return Horizon(0, None, 1.0)
    if breaks is None:
        breaks = breakage(log, custom_types=custom_types)
    kept = pl.zeros(n, pl.Boolean, eager=True)
    if retained.len():
        kept = kept.scatter(retained, True)
    limit = n if exact_from is None else exact_from
    broken = (
        pl.DataFrame({"end": breaks, "kept": kept})
        .with_row_index("start")
        .filter(~pl.col("kept") & pl.col("end").is_not_null())
        .select(pl.col("start").cast(pl.Int64), pl.col("end").clip(upper_bound=limit))
        .filter(pl.col("start") < pl.col("end"))  # rows are in start order already
        .with_columns(reach=pl.col("end").cum_max().shift(1).fill_null(0))
        .select(
            covered=(pl.col("end") - pl.max_horizontal("start", "reach")).clip(lower_bound=0).sum(),
            last=pl.col("end").max(),
        )
    )
    covered = int(broken["covered"][0] or 0)
    first_exact = int(broken["last"][0]) if broken["last"][0] is not None else 0
    if first_exact >= n:
        return Horizon(None, None, 1 - covered / n)
    return Horizon(first_exact, log["timestamp"][first_exact], 1 - covered / n)


def audit_completeness(log: pl.DataFrame, retained: pl.Series, critical: pl.Expr) -> float | None:
    """Share of the log's critical records still in the journal (None when it has none)."""
    flags = log.select(critical.fill_null(False).alias("c"))["c"]
    total = int(flags.sum())
    if total == 0:
        return None
    return int(flags.gather(retained).sum()) / total if retained.len() else 0.0


def differing_entities(expected: dict[str, pl.DataFrame], actual: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Entities whose value differs between two states (``ll.state_at`` results).

    Compares the entities' fields (not their version counters, which a
    compaction legitimately changes); an entity present on one side only
    differs. Returns ``model``, ``key`` and ``what`` (``missing``, ``extra``
    or ``changed``).
    """
    from ..state.columns import KEY, VALUE

    out: list[pl.DataFrame] = []
    for model in sorted(set(expected) | set(actual)):
        sides = []
        for side, states in ((0, expected), (1, actual)):
            frame = states.get(model)
            if frame is None or frame.height == 0:
                continue
            fields = [c for c in frame.columns if not c.startswith("_") or c in (KEY, VALUE)]
            sides.append(frame.select(fields).with_columns(pl.lit(side, pl.Int8).alias("__side")))
        if not sides:
            continue
        both = pl.concat(sides, how="diagonal_relaxed")
        fields = [c for c in both.columns if c not in (KEY, "__side")]
        summary = both.group_by(KEY).agg(
            sides=pl.col("__side").sort(),
            variants=pl.struct(fields).n_unique() if fields else pl.lit(1),
        )
        diff = summary.filter((pl.col("sides").list.len() != 2) | (pl.col("variants") != 1)).select(
            pl.lit(model).alias("model"),
            pl.col(KEY).alias("key"),
            pl.when(pl.col("sides").list.len() == 2)
            .then(pl.lit("changed"))
            .when(pl.col("sides").list.first() == 0)
            .then(pl.lit("missing"))
            .otherwise(pl.lit("extra"))
            .alias("what"),
        )
        out.append(diff)
    schema = {"model": pl.String(), "key": pl.String(), "what": pl.String()}
    return pl.concat(out).sort("model", "key") if out else pl.DataFrame(schema=schema)


def head_state(frame: pl.DataFrame, reducers: Any = None) -> dict[str, pl.DataFrame]:
    """The state at the end of ``frame`` (``ll.state_at``), the one fold of the package.

    A compacted history is expected to hold anomalies (updates whose create was
    dropped); the comparison, not a warning, reports what they change.
    """
    from ..errors import HistoryWarning
    from ..state import state_at

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        return state_at(frame, reducers=reducers)


class HeadCheck:
    """Whether the records a policy kept rebuild the log's head state, folding only what can differ.

    An entity whose history since its last create/delete was kept whole
    cannot differ (see :func:`breakage`); only the others ("suspects") are
    folded, from their last create/delete on, and compared. The fold of the
    whole log, when a check needs most of it, is computed once and shared.
    """

    def __init__(self, log: pl.DataFrame, breaks: pl.Series, *, reducers: Any = None, custom_types: Collection[str] = ()) -> None:
        n = log.height
        self.log = log.with_columns(STREAM.alias("_stream"), pl.int_range(n, dtype=pl.Int64).alias("_row"))
        last_reset = pl.when(pl.col("op").is_in(_RESETS)).then(pl.col("_row")).max().over("_stream")
        self.since_reset = self.log.select((pl.col("_row") >= last_reset.fill_null(-1)).alias("s"))["s"]
        self.breaks = breaks
        self.reducers = reducers
        self.custom = pl.Series(log["short_type"]).is_in(list(custom_types)).fill_null(False)
        self._full: dict[str, pl.DataFrame] | None = None

    def _full_head(self) -> dict[str, pl.DataFrame]:
        if self._full is None:
            self._full = head_state(self.log.drop("_stream", "_row"), self.reducers)
        return self._full

    def differences(self, retained: pl.Series) -> pl.DataFrame:
        """``model``, ``key``, ``what`` of each entity whose head state the kept records change."""
        n = self.log.height
        kept = pl.zeros(n, pl.Boolean, eager=True)
        if retained.len():
            kept = kept.scatter(retained, True)
        empty = pl.DataFrame(schema={"model": pl.String(), "key": pl.String(), "what": pl.String()})
        if (~kept & self.custom).any():  # a custom reducer may touch anything: compare everything
            kept_head = head_state(self.log.filter(kept).drop("_stream", "_row"), self.reducers)
            return differing_entities(self._full_head(), kept_head)
        to_head = ~kept & (self.breaks == n).fill_null(False)
        if not to_head.any():
            return empty
        suspects = self.log.filter(to_head)["_stream"].unique()
        of_suspects = self.log["_stream"].is_in(suspects.implode())
        if int(of_suspects.sum()) > n // 2:
            full = self._full_head()
        else:
            full = head_state(self.log.filter(of_suspects & self.since_reset).drop("_stream", "_row"), self.reducers)
        kept_head = head_state(self.log.filter(of_suspects & kept).drop("_stream", "_row"), self.reducers)
        diff = differing_entities(full, kept_head)
        named = diff.select((pl.col("model") + "/" + pl.col("key")).is_in(suspects.implode()).alias("s"))["s"]
        return diff.filter(named)

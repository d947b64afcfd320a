"""Compaction policies: one definition, used by the engine and by the simulator.

A policy states *what a compaction retains* as a Polars boolean expression over
the journal's event frame (columns of :data:`lithair_lab.formats.schema.EVENT_SCHEMA`,
rows in replay order), plus *when* it runs (``threshold``), whether it publishes
a checkpoint of the state at the compaction (``snapshot``) and how many
generations of replaced files it keeps (``backups``).

Guarantees, stated the way Kafka's log cleaner states its own:

- With ``snapshot=True`` (the default of every policy that drops events), the
  state after a compaction is the state before it, whatever the policy keeps:
  the checkpoint holds the state, and retained records are history for audit
  and time travel, never applied twice.
- With ``snapshot=False`` the retained records alone must rebuild the state.
  The engine refuses such a compaction when they do not
  (:class:`~lithair_lab.errors.PolicyError`); the simulator runs it and reports
  the entities that differ.
- The newest records appended while a compaction runs are never dropped.

Write your own policy in a notebook cell: any object with the attributes and
the ``retain`` method of :class:`CompactionPolicy` will do.

>>> import polars as pl
>>> class KeepOrders:
...     name = "orders only"
...     threshold = 1_000
...     snapshot = True
...     backups = 5
...     def retain(self, *, now):
...         return pl.col("model") == "Order"
>>> isinstance(KeepOrders(), CompactionPolicy)
True
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import polars as pl

from ..errors import PolicyError
from ..formats.envelope import short_type

SEED_THRESHOLD = 10_000
SEED_KEEP_RECENT = 1_000
SEED_SNAPSHOT_INTERVAL = 1_000
SEED_BACKUPS = 5
SEED_CRITICAL_TYPES = ("ProductCreated", "UserRegistered", "OrderCreated", "PaymentProcessed")


@runtime_checkable
class CompactionPolicy(Protocol):
    """What a compaction retains, and when it runs.

    Attributes
    ----------
    name
        A label for tables and charts.
    threshold
        Compact when the journal holds this many records (see :func:`next_trigger`);
        ``None`` never triggers automatically.
    snapshot
        Publish a checkpoint of the state at the compaction, so that retained
        records are history only. ``False`` means the retained records alone
        must rebuild the state.
    backups
        How many generations of replaced files to keep (0 keeps none).
    """

    name: str
    threshold: int | None
    snapshot: bool
    backups: int

    def retain(self, *, now: datetime) -> pl.Expr:
        """A boolean expression over the journal frame: True keeps the record.

        ``now`` is the moment of the compaction (UTC): the wall clock in the
        engine, the triggering event's timestamp in the simulator.
        """
        ...


# -- the one trigger rule ----------------------------------------------------------


def next_trigger(threshold: int | None, retained: int) -> int | None:
    """Journal size (records) at which the next compaction runs.

    ``retained`` is the number of records the last compaction kept (0 before
    the first). A compaction that could not bring the journal below half the
    threshold would otherwise run again on every append; as Kafka's
    ``min.cleanable.dirty.ratio`` of 0.5 does, the next one then waits until
    at least as many new records as retained ones have arrived.

    >>> next_trigger(100, 0), next_trigger(100, 55), next_trigger(100, 80), next_trigger(None, 0)
    (100, 110, 160, None)
    """
    if threshold is None:
        return None
    return max(threshold, 2 * retained)


# -- shared expressions ------------------------------------------------------------

#: The entity key: ``aggregate_id``, else the payload's ``id`` (formats/crud.py's rule, vectorized).
ENTITY_KEY = pl.coalesce(
    pl.col("aggregate_id"),
    pl.when(pl.col("aggregate_id").is_null()).then(pl.col("payload").str.json_path_match("$.id")),
)

#: One stream per entity: ``<Model>/<key>`` for CRUD events, ``/<key>`` otherwise; null without a key.
STREAM = pl.concat_str([pl.col("model").fill_null(""), ENTITY_KEY], separator="/")
#: The same partition as two keys, for windows (no string is built: about 3x faster).
_STREAM_KEYS = (pl.col("model").fill_null(""), ENTITY_KEY)

#: Deleted events are tombstones.
TOMBSTONE = pl.col("op") == "Deleted"


def _newest(n: int) -> pl.Expr:
    """True for the last ``n`` rows of the journal."""
    return pl.int_range(pl.len()) >= pl.len().cast(pl.Int64) - n  # pl.len() is unsigned


def _rank_from_newest_in_stream() -> pl.Expr:
    """0 for a stream's newest record, 1 for the one before, ..."""
    return pl.int_range(pl.len(), dtype=pl.Int64).reverse().over(*_STREAM_KEYS)


# -- validation helpers ------------------------------------------------------------


def _count(name: str, value: object, *, minimum: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive" if minimum == 1 else "a non-negative"
        msg = f"`{name}` must be {what} number of events, got {value!r}"
        if name == "threshold" and value == 0:
            msg += "\n\nhint: use `NoCompaction()` (or `threshold=None`) to never compact automatically"
        raise PolicyError(msg)


def _duration(name: str, value: object, *, optional: bool = False, allow_zero: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, timedelta) or value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        raise PolicyError(f"`{name}` must be a positive `datetime.timedelta`, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class _Base:
    threshold: int | None = SEED_THRESHOLD
    snapshot: bool = True
    backups: int = SEED_BACKUPS

    def __post_init__(self) -> None:
        _count("threshold", self.threshold, minimum=1, optional=True)
        _count("backups", self.backups, minimum=0)
        if not isinstance(self.snapshot, bool):
            raise PolicyError(f"`snapshot` must be True or False, got {self.snapshot!r}")

    @property
    def name(self) -> str:
        return type(self).__name__


# -- the policies ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NoCompaction(_Base):
    """Never compact: the journal keeps every record (the baseline)."""

    threshold: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold is not None:
            raise PolicyError(f"`NoCompaction` never triggers; `threshold` must be None, got {self.threshold!r}")

    def retain(self, *, now: datetime) -> pl.Expr:
        """Keep everything."""
        return pl.lit(True)


@dataclass(frozen=True, kw_only=True)
class SmartCompaction(_Base):
    """The seed document's "smart" compaction, made safe.

    Keeps every critical record (types in ``critical_types``, and every CRUD
    ``<Model><op>`` whose op is in ``critical_ops``) plus the newest
    ``keep_recent`` records. The seed replayed the kept records to rebuild the
    state, which resurrects stale objects (a kept ``ProductCreated`` whose
    ``ProductDeleted`` was dropped); here the checkpoint holds the state and
    the kept records are history only. ``snapshot=False`` reproduces the
    seed's flaw, for the simulator to show.

    Parameters
    ----------
    threshold
        Compact at this many records (seed: 10,000).
    keep_recent
        Newest records always kept (seed: 1,000); must be below ``threshold``.
    snapshot_interval
        Also refresh the checkpoint every this many appends (seed: 1,000), which
        bounds the replay at startup; ``None`` refreshes it only at compactions.
    backups
        Generations of replaced files kept (seed: 5).
    critical_types
        Event types always kept, compared on the short type (after ``::``).
        Types given explicitly must occur in the log (or be registered with
        the store), see :func:`check_critical_types`.
    critical_ops
        CRUD operations always kept, for every model (default: ``Created``).
    """

    keep_recent: int = SEED_KEEP_RECENT
    snapshot_interval: int | None = SEED_SNAPSHOT_INTERVAL
    critical_types: Sequence[str] | None = None
    critical_ops: Sequence[str] = ("Created",)

    def __post_init__(self) -> None:
        super().__post_init__()
        _count("keep_recent", self.keep_recent, minimum=0)
        _count("snapshot_interval", self.snapshot_interval, minimum=1, optional=True)
        if self.threshold is not None and self.keep_recent >= self.threshold:
            raise PolicyError(
                f"`keep_recent` ({self.keep_recent}) must be below `threshold` ({self.threshold}):"
                " a compaction would never shrink the journal"
            )
        for name, values in (("critical_types", self.critical_types or ()), ("critical_ops", self.critical_ops)):
            if isinstance(values, str):
                raise PolicyError(f"`{name}` must be a list of names, got the string {values!r}")
            for t in values:
                if not isinstance(t, str) or not t or not short_type(t).isidentifier():
                    raise PolicyError(f"`{name}` holds {t!r}, which is not an event type name")

    @property
    def criticals(self) -> tuple[str, ...]:
        """The critical short types (the seed's four when none were given)."""
        return tuple(short_type(t) for t in (self.critical_types or SEED_CRITICAL_TYPES))

    def is_critical(self) -> pl.Expr:
        """True for the records this policy always keeps."""
        by_type = pl.col("short_type").is_in(self.criticals)
        by_op = pl.col("op").is_in(list(self.critical_ops))
        return (by_type | by_op).fill_null(False)

    def retain(self, *, now: datetime) -> pl.Expr:
        """Keep critical records and the newest ``keep_recent``."""
        return self.is_critical() | _newest(self.keep_recent)


@dataclass(frozen=True, kw_only=True)
class SnapshotThenTruncate(_Base):
    """Upstream's compaction: checkpoint the state, then start an empty journal.

    With ``snapshot=False`` this is plain truncation, which loses the state:
    the engine refuses it and the simulator flags it.
    """

    def retain(self, *, now: datetime) -> pl.Expr:
        """Keep nothing (the checkpoint holds the state)."""
        return pl.lit(False)


@dataclass(frozen=True, kw_only=True)
class KeepLatestPerKey(_Base):
    """Kafka-style log compaction: the newest record per entity key.

    A stream is an entity (``<Model>/<key>``, key = ``aggregate_id`` else the
    payload's ``id``). Its newest record is kept; when that record is a
    ``Deleted`` tombstone it is kept for ``tombstone_retention`` after its
    timestamp, then dropped with the whole stream. The newest
    ``active_segment`` records are never compacted, and records without a key
    are always kept. Like Kafka, it takes no snapshot by default: the kept
    records must rebuild the state (true when payloads are whole objects, as
    upstream's CRUD writes them).
    """

    snapshot: bool = False
    active_segment: int = SEED_KEEP_RECENT
    tombstone_retention: timedelta = timedelta(days=1)  # Kafka's delete.retention.ms default

    def __post_init__(self) -> None:
        super().__post_init__()
        _count("active_segment", self.active_segment, minimum=0)
        _duration("tombstone_retention", self.tombstone_retention, allow_zero=True)
        if self.threshold is not None and self.active_segment >= self.threshold:
            raise PolicyError(
                f"`active_segment` ({self.active_segment}) must be below `threshold` ({self.threshold}):"
                " a compaction would never shrink the journal"
            )

    def retain(self, *, now: datetime) -> pl.Expr:
        """Keep the newest record of each key, live tombstones, keyless records and the active segment."""
        newest = _rank_from_newest_in_stream() == 0
        tomb_alive = pl.col("timestamp") >= pl.lit(now - self.tombstone_retention)
        keep = newest & (~TOMBSTONE.fill_null(False) | tomb_alive)
        return keep | ENTITY_KEY.is_null() | _newest(self.active_segment)


@dataclass(frozen=True, kw_only=True)
class MaxCountMaxAge(_Base):
    """KurrentDB-style scavenging: per-entity ``$maxCount`` and ``$maxAge``.

    A record is kept when it is among its stream's newest ``max_count`` and
    no older than ``max_age`` at the compaction (either limit may be None, not
    both). Records without a key are always kept. Like KurrentDB, no snapshot
    by default.
    """

    snapshot: bool = False
    max_count: int | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _count("max_count", self.max_count, minimum=1, optional=True)
        _duration("max_age", self.max_age, optional=True)
        if self.max_count is None and self.max_age is None:
            raise PolicyError("`MaxCountMaxAge` needs `max_count`, `max_age` or both\n\nhint: `MaxCountMaxAge(max_count=1)`")

    def retain(self, *, now: datetime) -> pl.Expr:
        """Keep each stream's newest ``max_count`` records younger than ``max_age``."""
        keep = pl.lit(True)
        if self.max_count is not None:
            keep = keep & (_rank_from_newest_in_stream() < self.max_count)
        if self.max_age is not None:
            keep = keep & (pl.col("timestamp") >= pl.lit(now - self.max_age))
        return keep | ENTITY_KEY.is_null()


# -- applying a policy -------------------------------------------------------------


def check_policy(policy: object) -> CompactionPolicy:
    """Validate an object (a built-in or a user's) as a policy; return it.

    Raises
    ------
    PolicyError
        When an attribute is missing or has the wrong type.
    """
    missing = [a for a in ("name", "threshold", "snapshot", "backups", "retain") if not hasattr(policy, a)]
    if missing:
        names = ", ".join(f"`{a}`" for a in missing)
        raise PolicyError(
            f"{type(policy).__name__} is not a compaction policy: it lacks {names}\n\n"
            "hint: a policy has `name`, `threshold`, `snapshot`, `backups` and `retain(*, now) -> pl.Expr`"
        )
    p: CompactionPolicy = policy  # type: ignore[assignment]
    _count("threshold", p.threshold, minimum=1, optional=True)
    _count("backups", p.backups, minimum=0)
    if not isinstance(p.snapshot, bool):
        raise PolicyError(f"`snapshot` of policy `{p.name}` must be True or False, got {p.snapshot!r}")
    _count("snapshot_interval", getattr(p, "snapshot_interval", None), minimum=1, optional=True)
    return p


def retention_mask(policy: CompactionPolicy, events: pl.DataFrame, *, now: datetime) -> pl.Series:
    """Evaluate ``policy.retain`` over a journal frame; one boolean per row, no nulls.

    Raises
    ------
    PolicyError
        When the expression fails or does not give one boolean per row.
    """
    try:
        expr = policy.retain(now=now)
        mask = events.select(expr.alias("retain")).to_series()
    except PolicyError:
        raise
    except Exception as e:  # a user's expression: say whose it was
        raise PolicyError(f"`retain` of policy `{policy.name}` failed: {e}") from e
    if mask.len() == 1 and events.height != 1:
        mask = pl.repeat(mask[0], events.height, eager=True).alias("retain")
    if mask.dtype != pl.Boolean or mask.len() != events.height:
        raise PolicyError(
            f"`retain` of policy `{policy.name}` must give one boolean per record,"
            f" got {mask.len()} values of type {mask.dtype} for {events.height} records"
        )
    if mask.null_count():
        raise PolicyError(
            f"`retain` of policy `{policy.name}` gave {mask.null_count()} nulls\n\n"
            "hint: use `.fill_null(True)` to keep records whose columns are null"
        )
    return mask


def check_critical_types(policy: object, known: Iterable[str]) -> None:
    """Refuse explicitly given critical types that name no known event type.

    ``known`` holds the event types seen in the log (and those registered with
    the store). The seed's default list is not checked: it names types that a
    given application may simply not have.

    Raises
    ------
    PolicyError
        Naming each unknown type, with the closest known ones.
    """
    given = getattr(policy, "critical_types", None)
    if not given:
        return
    known_short = sorted({short_type(t) for t in known if t})
    unknown = [t for t in given if short_type(t) not in known_short]
    if unknown:
        hints = []
        for t in unknown:
            close = difflib.get_close_matches(short_type(t), known_short, n=1)
            hints.append(f"`{t}`" + (f" (did you mean {', '.join(f'`{c}`' for c in close)}?)" if close else ""))
        raise PolicyError(
            f"unknown event type in `critical_types` of policy `{getattr(policy, 'name', policy)}`: "
            + ", ".join(hints)
            + "\n\nhint: name types that occur in the log or are registered with the store"
        )


__all__ = [
    "ENTITY_KEY",
    "SEED_CRITICAL_TYPES",
    "STREAM",
    "CompactionPolicy",
    "KeepLatestPerKey",
    "MaxCountMaxAge",
    "NoCompaction",
    "SmartCompaction",
    "SnapshotThenTruncate",
    "check_critical_types",
    "check_policy",
    "next_trigger",
    "retention_mask",
]

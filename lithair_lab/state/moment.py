"""A moment in a history: a time (every event stamped at or before it) or a position.

One parser for every ``at=`` / ``position=`` / ``seq=`` argument of the package.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import polars as pl

from lithair_lab.errors import MomentError

UTC = dt.timezone.utc
_UNIX = re.compile(r"-?\d+(\.\d*)?")


@dataclass(frozen=True, slots=True)
class Moment:
    """Which events a query includes.

    ``time``: every event whose timestamp is at or before it (``None``: no time
    limit). ``position``: only the first ``position`` records of the history
    (``None``: no position limit). At most one of them is set; with neither,
    the moment is the head of the history.
    """

    time: dt.datetime | None = None
    position: int | None = None

    @property
    def is_head(self) -> bool:
        return self.time is None and self.position is None

    def mask(self, seq: str = "seq", timestamp: str = "timestamp") -> pl.Expr:
        """A boolean expression selecting the events this moment includes."""
        if self.position is not None:
            return pl.col(seq) < self.position
        if self.time is not None:
            return pl.col(timestamp) <= self.time
        return pl.lit(value=True)

    def __str__(self) -> str:
        if self.position is not None:
            return f"position {self.position}"
        if self.time is not None:
            return self.time.isoformat()
        return "head"


def to_utc(at: object, *, name: str = "at") -> dt.datetime:
    """A UTC datetime from a datetime, a date, an ISO string or Unix seconds.

    A datetime (or ISO string) without a timezone is taken as UTC, the zone of
    every Lithair timestamp; a date means its midnight, UTC. A string that is
    not ISO 8601 but a number (``"1767225600"``) is Unix seconds.
    """
    if isinstance(at, bool):
        msg = f"`{name}` must be a datetime, an ISO string or Unix seconds, got a bool"
        raise MomentError(msg)
    if isinstance(at, dt.datetime):
        value = at
    elif isinstance(at, dt.date):
        value = dt.datetime(at.year, at.month, at.day)
    elif isinstance(at, int | float):
        try:
            value = dt.datetime.fromtimestamp(at, UTC)
        except (OverflowError, OSError, ValueError) as e:
            msg = f"`{name}`={at!r} is not a representable Unix time in seconds ({e})"
            raise MomentError(msg) from e
    elif isinstance(at, str):
        try:
            value = dt.datetime.fromisoformat(at.strip())
        except ValueError as e:
            if _UNIX.fullmatch(at.strip()):  # a command line's Unix seconds
                return to_utc(float(at), name=name)
            msg = (
                f"`{name}`={at!r} is not an ISO 8601 date or time\n\n"
                "write it like '2026-01-01T14:03:00Z', '2026-01-01 14:03' (UTC) or '2026-01-01'"
            )
            raise MomentError(msg) from e
    else:
        msg = f"`{name}` must be a datetime, an ISO string or Unix seconds, got {type(at).__name__}"
        raise MomentError(msg)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def moment(at: object = None, *, position: int | None = None, seq: int | None = None) -> Moment:
    """Parse the moment arguments shared by ``state_at``, ``restore``, the time machine ...

    Parameters
    ----------
    at
        A datetime, date, ISO string or Unix seconds: every event stamped at
        or before it (timezone-less means UTC). ``None`` with no other
        argument means the head of the history.
    position
        The state after the first ``position`` records (0: empty state).
    seq
        The state right after the record at position ``seq`` (``position=seq + 1``).
    """
    given = [n for n, v in (("at", at), ("position", position), ("seq", seq)) if v is not None]
    if len(given) > 1:
        names = ", ".join(f"`{n}`" for n in given)
        msg = f"give one moment, got {names}\n\npass `at=` for a time or `position=`/`seq=` for a log position"
        raise MomentError(msg)
    if at is not None:
        if isinstance(at, Moment):
            return at
        return Moment(time=to_utc(at))
    for name, value, shift in (("position", position, 0), ("seq", seq, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            msg = f"`{name}` must be a non-negative integer, got {value!r}"
            raise MomentError(msg)
        return Moment(position=value + shift)
    return Moment()

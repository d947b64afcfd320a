"""A startup-cost model, calibrated by really opening stores on this machine.

Opening a store reads the checkpoint (its state JSON), hashes the journal
prefix the checkpoint covers, and replays the records after it. The model is
linear in those three quantities::

    seconds = base + a * journal MiB + b * replayed records + c * snapshot MiB

:func:`calibrate_startup` builds a handful of stores with the engine, times
``open_store`` on each, fits the coefficients by least squares (dropping any
that come out negative) and states the model's error by leave-one-out: each
store's time predicted by a model fitted without it.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

MIB = float(1 << 20)
FEATURES = ("base", "journal_mib", "replayed", "snapshot_mib")


@dataclass(frozen=True)
class StartupModel:
    """Seconds to open a store, from its journal size, replayed records and snapshot size.

    Attributes
    ----------
    coefficients
        Seconds per unit of each of :data:`FEATURES` (``base`` is a constant).
    error
        Median relative error of a prediction, by leave-one-out over the
        calibration stores (0.1 means predictions are typically within 10 %).
    max_error
        The worst relative error seen in the same leave-one-out.
    samples
        The calibration measurements: one row per store with its features,
        ``seconds`` measured and ``predicted`` (leave-one-out).
    """

    coefficients: dict[str, float]
    error: float
    max_error: float
    samples: pl.DataFrame = field(repr=False, compare=False)

    def predict(self, journal_bytes: float, replayed: float, snapshot_bytes: float) -> float:
        """Seconds to open a store of these dimensions."""
        x = (1.0, journal_bytes / MIB, float(replayed), snapshot_bytes / MIB)
        return sum(self.coefficients.get(f, 0.0) * v for f, v in zip(FEATURES, x, strict=True))

    def expr(self, journal_bytes: str, replayed: str, snapshot_bytes: str) -> pl.Expr:
        """:meth:`predict` as a Polars expression over three columns."""
        c = self.coefficients
        return (
            pl.lit(c.get("base", 0.0))
            + c.get("journal_mib", 0.0) * pl.col(journal_bytes) / MIB
            + c.get("replayed", 0.0) * pl.col(replayed)
            + c.get("snapshot_mib", 0.0) * pl.col(snapshot_bytes) / MIB
        )


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve the small square system ``a x = b`` by Gaussian elimination with pivoting."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        if abs(m[col][col]) < 1e-300:
            return [0.0] * n
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit(rows: Sequence[Sequence[float]], seconds: Sequence[float]) -> dict[str, float]:
    """Least squares of relative errors over :data:`FEATURES` (rows hold the features), no negative coefficients.

    Each store weighs by the inverse of its time, so a 3 ms open counts as
    much as a 3 s one (the error stated is relative too). Features are
    scaled to unit size before solving, so MiB and record counts do not
    make the system ill-conditioned; a feature whose coefficient comes out
    negative is dropped and the rest refitted.
    """
    active = list(range(len(FEATURES)))
    scale = [max((abs(r[j]) for r in rows), default=1.0) or 1.0 for j in range(len(FEATURES))]
    weight = [1.0 / y if y > 0 else 1.0 for y in seconds]
    while True:
        xs = [[r[j] / scale[j] * w for j in active] for r, w in zip(rows, weight, strict=True)]
        ys = [y * w for y, w in zip(seconds, weight, strict=True)]
        ata = [[sum(x[i] * x[j] for x in xs) for j in range(len(active))] for i in range(len(active))]
        aty = [sum(x[i] * y for x, y in zip(xs, ys, strict=True)) for i in range(len(active))]
        for i in range(len(active)):
            ata[i][i] += 1e-12  # keeps a column of zeros (e.g. no snapshot measured) solvable
        coef = _solve(ata, aty)
        negative = [k for k, c in enumerate(coef) if c < 0]
        if not negative:
            out = dict.fromkeys(FEATURES, 0.0)
            for k, j in enumerate(active):
                out[FEATURES[j]] = max(coef[k], 0.0) / scale[j]
            return out
        active.pop(min(negative, key=lambda k: coef[k]))


def _build(path: Path, events: int, snapshot_at: int | None) -> None:
    """A product store of ``events`` whole-object writes over ``events // 4`` entities (at least 100).

    The number of entities grows with the store so that snapshot sizes vary
    independently of the replayed records across the calibration plan.
    """
    entities = max(100, events // 4)
    from ..engine import open_store  # the engine writes every store

    def batch(lo: int, hi: int) -> list[dict[str, object]]:
        return [
            {
                "event_type": "ProductCreated" if i < entities else "ProductUpdated",
                "payload": {"id": f"p{i % entities}", "name": f"Product {i % entities}", "price": 400 + i * 0.01, "stock": i},
                "aggregate_id": f"p{i % entities}",
                "event_id": f"e{i}",
            }
            for i in range(lo, hi)
        ]

    with open_store(path, fsync=False) as store:
        cut = events if snapshot_at is None else snapshot_at
        for lo in range(0, cut, 5_000):
            store.append_many(batch(lo, min(cut, lo + 5_000)))
        if snapshot_at is not None:
            store.snapshot()
        for lo in range(cut, events, 5_000):
            store.append_many(batch(lo, min(events, lo + 5_000)))


def _dimensions(path: Path) -> tuple[float, float, float]:
    """Journal bytes, records replayed after the checkpoint, snapshot bytes, read from the directory."""
    import orjson

    from ..formats import checkpoint as cp
    from ..formats import layout

    snap = path / layout.SNAPSHOT
    covered, snap_bytes, journal = 0, 0, None
    if snap.exists():
        snap_bytes = snap.stat().st_size
        obj = orjson.loads(snap.read_bytes())
        if cp.is_manifest(obj):
            manifest = cp.parse_manifest(obj)
            covered, journal = manifest.covered_events, manifest.journal
    files = [f for f in layout.journal_files(path, journal) if f.exists()]
    journal_bytes = sum(f.stat().st_size for f in files)
    records = sum(f.read_bytes().count(b"\n") for f in files)  # the engine writes JSON lines here
    return float(journal_bytes), float(records - covered), float(snap_bytes)


DEFAULT_PLAN: tuple[tuple[int, int | None], ...] = (
    (0, None),
    (500, None),
    (1_000, 1_000),
    (2_000, None),
    (8_000, None),
    (20_000, None),
    (8_000, 8_000),
    (20_000, 20_000),
    (20_000, 10_000),
    (40_000, 38_000),
)
"""(records, checkpoint after this many records or None) of each calibration store."""


def calibrate_startup(
    plan: Sequence[tuple[int, int | None]] = DEFAULT_PLAN, *, repeat: int = 3, directory: Path | None = None
) -> StartupModel:
    """Fit a :class:`StartupModel` by opening real stores on this machine.

    Parameters
    ----------
    plan
        One ``(records, checkpoint_after)`` pair per calibration store.
    repeat
        Opens timed per store; the median is kept.
    directory
        Where to build the stores (a temporary directory, removed after, when None).

    Returns
    -------
    StartupModel
        With its leave-one-out error.
    """
    if len(plan) < 3:
        raise ValueError(f"`plan` needs at least 3 stores to fit and state an error, got {len(plan)}")
    from ..engine import open_store

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        rows, seconds = [], []
        for i, (events, snapshot_at) in enumerate(plan):
            path = Path(tmp) / f"store{i}"
            _build(path, events, snapshot_at)
            journal_bytes, replayed, snap_bytes = _dimensions(path)
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                open_store(path).close()
                runs.append(time.perf_counter() - t0)
            rows.append((1.0, journal_bytes / MIB, replayed, snap_bytes / MIB))
            seconds.append(statistics.median(runs))
    coefficients = fit(rows, seconds)
    loo = []
    for i in range(len(rows)):
        c = fit(rows[:i] + rows[i + 1 :], seconds[:i] + seconds[i + 1 :])
        loo.append(sum(c[f] * x for f, x in zip(FEATURES, rows[i], strict=True)))
    errors = [abs(p - s) / s for p, s in zip(loo, seconds, strict=True) if s > 0]
    samples = pl.DataFrame(
        {
            "journal_mib": [r[1] for r in rows],
            "replayed": [r[2] for r in rows],
            "snapshot_mib": [r[3] for r in rows],
            "seconds": seconds,
            "predicted": loo,
        }
    )
    return StartupModel(coefficients, statistics.median(errors), max(errors), samples)


@functools.cache
def default_startup_model() -> StartupModel:
    """:func:`calibrate_startup` with the default plan, measured once per process."""
    return calibrate_startup()

"""The policy simulator: growth, integrity, audit, horizon, sizes against real stores, the cost model."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest
from compaction_frames import frame, product_updates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lithair_lab.compaction import SERIES_SCHEMA, SUMMARY_SCHEMA, calibrate_startup, simulate
from lithair_lab.compaction.metrics import differing_entities
from lithair_lab.compaction.startup import FEATURES, StartupModel, fit
from lithair_lab.engine import open_store
from lithair_lab.engine.policies import (
    KeepLatestPerKey,
    MaxCountMaxAge,
    NoCompaction,
    SmartCompaction,
    SnapshotThenTruncate,
)
from lithair_lab.errors import HistoryWarning, PolicyError
from lithair_lab.formats import layout
from lithair_lab.state import state_at

SEED_INITIAL = [
    ("ProductCreated", "p1", {"id": "p1", "price": 400}),
    ("ProductCreated", "p2", {"id": "p2", "price": 10}),
    ("UserRegistered", "u1", {"id": "u1"}),
    ("OrderCreated", "o1", {"id": "o1", "product": "p1"}),
    ("PaymentProcessed", "o1", {"order": "o1", "amount": 400}),
]


def seed_smart_log() -> pl.DataFrame:
    """The seed's "smart compaction test": 5 critical events, then 110 updates of one product."""
    updates = [("ProductUpdated", "p1", {"id": "p1", "price": 400 + i}) for i in range(1, 111)]
    return frame([*SEED_INITIAL, *updates])


def summary(sim, policy: str) -> dict:
    return sim.summary.filter(pl.col("policy") == policy).row(0, named=True)


def test_seed_smart_compaction_test_is_reproduced() -> None:
    sim = simulate(seed_smart_log(), [NoCompaction(), SmartCompaction(threshold=100, keep_recent=50)], startup=False)
    assert sim.summary.schema == pl.Schema(SUMMARY_SCHEMA)
    smart = summary(sim, "SmartCompaction")
    # the seed reports 70 final events with its 5 critical events preserved: so do we
    assert (smart["compactions"], smart["final_events"], smart["audit_completeness"]) == (1, 70, 1.0)
    assert smart["integrity"] and summary(sim, "NoCompaction")["final_events"] == 115
    kept = sim.kept.filter(pl.col("policy") == "SmartCompaction")["seq"].to_list()
    assert kept == [0, 1, 2, 3, 4, *range(50, 115)]


def test_sawtooth_series_has_every_peak_and_trough() -> None:
    sim = simulate(product_updates(3, 1000), [SnapshotThenTruncate(threshold=100)], startup=False, resolution=50)
    s = sim.series
    assert s.schema == pl.Schema(SERIES_SCHEMA)
    assert s.height <= 60 + 2 * 10
    c = sim.compactions
    assert c.height == 10 and c["journal_before"].to_list() == [100] * 10 and c["retained"].sum() == 0
    at = s.filter(pl.col("position").is_in((c["at"] + 1).implode()))
    assert sorted(at["journal_events"].to_list()) == [0] * 10 + [100] * 10  # both sides of each compaction
    assert s["compactions"].is_sorted() and s["compactions"][-1] == 10
    # bytes never fall below what the journal holds, and backups are capped at 5 replaced generations
    assert (s["total_bytes"] >= s["journal_bytes"]).all()
    assert s["backup_bytes"].max() <= 5 * (c["journal_bytes_before"].max() + s["snapshot_bytes"].max())


def test_truncation_without_snapshot_is_flagged_with_the_lost_entities() -> None:
    rows = [("OrderCreated", f"o{k}", {"id": f"o{k}"}) for k in range(3)]
    rows += [("ProductUpdated", "p0", {"price": i}) for i in range(150)]
    policies = [SnapshotThenTruncate(threshold=100, snapshot=False), SnapshotThenTruncate(threshold=100)]
    sim = simulate(frame(rows), policies, startup=False)
    lost, safe = summary(sim, "SnapshotThenTruncate"), summary(sim, "SnapshotThenTruncate #2")
    assert not lost["integrity"] and lost["differing_entities"] == 3
    assert sim.differences.select("model", "key", "what").rows() == [("Order", f"o{k}", "missing") for k in range(3)]
    assert safe["integrity"] and safe["horizon_position"] == 99  # the checkpoint at the compaction


def test_seed_smart_policy_without_snapshot_resurrects_stale_objects() -> None:
    rows = [("ProductCreated", "p1", {"id": "p1", "price": 1}), ("ProductDeleted", "p1", {"id": "p1"})]
    rows += [("ProductUpdated", "p2", {"id": "p2", "price": i}) for i in range(120)]
    sim = simulate(frame(rows), [SmartCompaction(threshold=100, keep_recent=10, snapshot=False)], startup=False)
    assert sim.differences.select("model", "key", "what").rows() == [("Product", "p1", "extra")]


def test_no_compaction_is_exact_everywhere_and_the_baseline() -> None:
    sim = simulate(product_updates(2, 50), NoCompaction(), startup=False)
    row = summary(sim, "NoCompaction")
    assert (row["horizon_position"], row["reconstructable"], row["reduction"], row["compactions"]) == (0, 1.0, 0.0, 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["Created", "Updated", "Deleted"]), st.integers(0, 3), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    which=st.integers(0, 2),
    keep=st.integers(0, 9),
)
def test_moments_counted_exact_really_are(ops, which, keep) -> None:
    """From the horizon on, folding the kept records gives the uncompacted state (checked with state_at)."""
    rows = [(f"Item{op}", f"k{k}", {"id": f"k{k}", "v": i} if whole else {"v": i}) for i, (op, k, whole) in enumerate(ops)]
    log = frame(rows)
    policy = [
        SmartCompaction(threshold=10, keep_recent=keep, snapshot=False),
        KeepLatestPerKey(threshold=10, active_segment=keep),
        MaxCountMaxAge(threshold=10, max_count=1 + keep % 3),
    ][which]
    sim = simulate(log, policy, startup=False)
    row = sim.summary.row(0, named=True)
    kept = log.filter(pl.col("seq").is_in(sim.kept["seq"].implode()))
    with warnings.catch_warnings():  # integrity as reported equals a comparison of both whole folds
        warnings.simplefilter("ignore", HistoryWarning)
        whole = differing_entities(state_at(log), dict(state_at(kept)) if kept.height else {})
    assert sim.differences.select("model", "key", "what").sort("model", "key").rows() == whole.rows()
    h = row["horizon_position"]
    if h is None:
        assert row["differing_entities"] > 0
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        for m in sorted({h, (h + log.height - 1) // 2, log.height - 1}):
            full = state_at(log, seq=m)
            part = state_at(kept.filter(pl.col("seq") <= m)) if kept.filter(pl.col("seq") <= m).height else {}
            assert differing_entities(full, dict(part)).height == 0, f"moment {m} counted exact but differs"


def test_simulated_journal_matches_the_engine_byte_for_byte(tmp_path: Path) -> None:
    """Same workload through a real store compacting with the same policy: same records, same bytes."""
    policy = SmartCompaction(threshold=100, keep_recent=30, snapshot_interval=None)

    def workload(store) -> None:
        for i in range(350):
            k = i % 7
            op = "ProductCreated" if i < 7 else "ProductUpdated"
            store.append(op, {"id": f"p{k}", "price": i}, aggregate_id=f"p{k}", event_id=f"e{i}", timestamp=1_700_000_000 + i)

    with open_store(tmp_path / "plain") as s:
        workload(s)
    with open_store(tmp_path / "compacted") as s:
        auto = s.auto_compact(policy)
        for i in range(350):  # one append at a time, waiting for each compaction, as the simulator assumes
            k = i % 7
            op = "ProductCreated" if i < 7 else "ProductUpdated"
            s.append(op, {"id": f"p{k}", "price": i}, aggregate_id=f"p{k}", event_id=f"e{i}", timestamp=1_700_000_000 + i)
            auto.wait()
        journal = s.path / s._active_name
        real_records = journal.read_bytes().count(b"\n")
        real_bytes = journal.stat().st_size
        real_compactions = len(auto.reports)
    sim = simulate(tmp_path / "plain", policy, startup=False)
    row = sim.summary.row(0, named=True)
    assert (row["compactions"], row["final_events"], row["journal_bytes"]) == (real_compactions, real_records, real_bytes)
    snap = (tmp_path / "compacted" / layout.SNAPSHOT).stat().st_size
    assert abs(row["snapshot_bytes"] - snap) / snap < 0.15  # the snapshot size is an estimate


def test_bad_input_is_refused_clearly() -> None:
    log = seed_smart_log()
    with pytest.raises(PolicyError, match=r"`PaymentProcesed` \(did you mean `PaymentProcessed`\?\)"):
        simulate(log, SmartCompaction(threshold=100, keep_recent=5, critical_types=["PaymentProcesed"]), startup=False)
    with pytest.raises(ValueError, match="`policies` is empty"):
        simulate(log, [], startup=False)
    with pytest.raises(ValueError, match="lacks the event-frame columns `seq`"):
        simulate(log.drop("seq"), NoCompaction(), startup=False)
    with pytest.raises(TypeError, match="should be a data directory or an event frame"):
        simulate(42, NoCompaction(), startup=False)


def test_fit_recovers_known_coefficients_and_never_goes_negative() -> None:
    truth = {"base": 0.01, "journal_mib": 0.02, "replayed": 3e-6, "snapshot_mib": 0.05}
    rows = [(1.0, j, r, s) for j, r, s in [(0, 0, 0), (1, 100, 0), (5, 0, 1), (10, 20000, 2), (3, 5000, 0.5), (8, 1000, 4)]]
    secs = [sum(truth[f] * x for f, x in zip(FEATURES, r, strict=True)) for r in rows]
    got = fit(rows, secs)
    for f in FEATURES:
        assert got[f] == pytest.approx(truth[f], rel=1e-6)
    # a feature that only adds noise cannot get a negative price
    noisy = fit(rows, [s - 0.001 * r[3] for s, r in zip(secs, rows, strict=True)])
    assert all(v >= 0 for v in noisy.values())


def test_startup_model_is_calibrated_on_real_stores_and_states_its_error(tmp_path: Path) -> None:
    model = calibrate_startup([(0, None), (1500, None), (3000, None), (3000, 3000), (4000, 2000)], repeat=1, directory=tmp_path)
    assert isinstance(model, StartupModel) and model.samples.height == 5
    assert all(v >= 0 for v in model.coefficients.values())
    assert 0 <= model.error <= model.max_error
    assert model.predict(10 << 20, 100_000, 0) > model.predict(0, 0, 0)
    sim = simulate(product_updates(3, 300), [NoCompaction(), SnapshotThenTruncate(threshold=100)], startup=model)
    est = dict(sim.summary.select("policy", "startup_s").rows())
    assert est["SnapshotThenTruncate"] < est["NoCompaction"]
    assert sim.summary["startup_error"].to_list() == [model.error, model.error]

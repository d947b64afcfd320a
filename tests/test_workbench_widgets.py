"""Widgets: each step shows the right state; every widget also renders as static HTML."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest

import lithair_lab as ll
from lithair_lab.datasets import generate
from lithair_lab.errors import LithairLabError
from lithair_lab.state import TimeMachine, state_at
from lithair_lab.widgets import CompactionLab, StoreInspector, TimeTravelExplorer
from lithair_lab.widgets.explorer import TABLE_CLASS

SHOP = ll.datasets.path("shop")


@pytest.fixture(scope="module")
def machine() -> TimeMachine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # history anomalies are the state layer's report, tested there
        return TimeMachine(SHOP)


def test_explorer_steps_show_the_state_at_each_position(machine: TimeMachine) -> None:
    ex = TimeTravelExplorer(SHOP, model="Product", machine=machine)
    assert ex.slider.max == 4000 and ex.slider.value == 4000
    seen = set()
    for position in (0, 1, 37, 1500, 3999):
        ex.slider.value = position
        expected = state_at(SHOP, position=position)["Product"]
        assert f"<b>{expected.height:,}</b> live <code>Product</code>" in ex.header.value
        assert f"after <b>{position:,}</b> of 4,000 records" in ex.header.value
        shown = ex.state()
        assert sorted(shown["_key"]) == sorted(expected["_key"])
        if expected.height:
            assert shown.select(expected.columns).sort("_key").equals(expected.sort("_key"))
        seen.add(ex.table.value)
    assert len(seen) == 5  # the table changed at every step
    chart = ex.chart.outputs[0]["data"]["application/vnd.vegalite.v5+json"]
    assert chart["layer"][1]["mark"]["type"] == "rule"  # the moment, marked on the event-rate chart
    assert TABLE_CLASS in ex.table.value


def test_explorer_model_choice_and_time_slider(machine: TimeMachine) -> None:
    ex = TimeTravelExplorer(SHOP, by="time", steps=20, machine=machine)
    assert ex.model.value == "Product"  # the model with the most events comes first
    ex.model.value = "Order"
    ex.slider.index = 10
    moment = ex.slider.value
    expected = state_at(SHOP, moment)["Order"]
    assert f"<b>{expected.height:,}</b> live <code>Order</code>" in ex.header.value
    included = int((ll.read(SHOP)["timestamp"] <= moment).sum())
    assert f"after <b>{included:,}</b> of 4,000" in ex.header.value


def test_explorer_renders_statically_too(machine: TimeMachine) -> None:
    ex = TimeTravelExplorer(SHOP, model="User", machine=machine, rows=5)
    html = ex.static_html()
    assert TABLE_CLASS in html and "live <code>User</code>" in html
    assert html.count("<tr>") == 2 + 5  # names and dtypes, then the 5 most recently changed users


def test_explorer_rejects_bad_arguments(machine: TimeMachine) -> None:
    with pytest.raises(LithairLabError, match="`by` should be `position` or `time`, got `seq`"):
        TimeTravelExplorer(SHOP, by="seq", machine=machine)  # type: ignore[arg-type]


def test_compaction_lab_follows_its_controls() -> None:
    lab = CompactionLab(ll.datasets.path("mailbox-binary"), policy="latest", threshold=500)
    summary = lab.simulation.summary
    assert summary["policy"].to_list() == ["NoCompaction", "KeepLatestPerKey"]
    assert summary.filter(pl.col("policy") == "NoCompaction")["final_events"].item() == 2500
    before = lab.simulation
    lab.policy.value = "smart"
    assert lab.simulation is not before
    assert lab.simulation.summary["policy"].to_list() == ["NoCompaction", "SmartCompaction"]
    assert lab.keep_recent.layout.display is None and lab.max_count.layout.display == "none"
    # contradictory controls: a clear message, and the last good simulation stays
    good = lab.simulation
    lab.keep_recent.value = 600
    assert "`keep_recent` (600) must be below `threshold` (500)" in lab.status.value
    assert lab.simulation is good
    lab.keep_recent.value = 50
    assert lab.status.value == ""
    html = lab.static_html()
    assert "<svg" in html and "ll-compaction-summary" in html and "SmartCompaction" in html


def test_inspector_reports_damage_and_sees_new_records(tmp_path: Path) -> None:
    damaged = StoreInspector(ll.datasets.path("damaged"))
    assert not damaged.report.ok
    titles = [damaged.tabs.get_title(i) for i in range(len(damaged.tabs.children))]
    assert titles == ["Files", "Types", "Damage (2)", "Chain (1)"]
    assert "PROBLEMS FOUND" in damaged.summary.value
    assert "bad_crc" in damaged.static_html() and "torn_tail" in damaged.static_html()

    path = generate("shop", tmp_path / "live", events=50, progress=False)
    inspector = StoreInspector(path)
    assert inspector.report.ok and inspector.report.records == 50
    with ll.open_store(path) as store:
        store.append("ProductUpdated", {"id": "p1", "price": 9.5}, aggregate_id="p1")
    inspector.button.click()  # "Check again"
    assert inspector.report.records == 51
    assert "51 records" in inspector.summary.value


def test_explorer_on_a_compacted_log_starts_at_its_horizon(tmp_path: Path) -> None:
    path = generate("shop", tmp_path / "shop", events=1500, progress=False)
    with ll.open_store(path) as store:
        store.compact(ll.SmartCompaction(threshold=1000, keep_recent=100))
        store.append("ProductUpdated", {"id": "p1", "price": 1.0}, aggregate_id="p1", timestamp=1_900_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex = TimeTravelExplorer(path, model="Product")
    assert (ex.slider.min, ex.slider.max) == (1500, 1501)  # earlier moments are gone with the compaction
    assert "2030-03-17 17:46:40 UTC" in ex.header.value  # the appended record's time, not a retained one's
    ex.slider.value = 1500
    assert f"after <b>1,500</b> of 1,501 records" in ex.header.value
    assert state_at(path, position=1500)["Product"].height == len(ex.state())

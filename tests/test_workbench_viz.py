"""Charts: aggregated before drawing, exact totals, offline export."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import polars as pl
import pytest

from lithair_lab import viz
from lithair_lab.errors import NotFoundError
from lithair_lab.formats.schema import EVENT_SCHEMA
from lithair_lab.viz.style import MAX_MARKS, OTHER, OTHER_COLOUR

T0 = 1_767_225_600  # 2026-01-01 UTC
TYPES = ["ProductCreated", "ProductUpdated", "ProductDeleted", "OrderCreated", "UserCreated", "PaymentCreated"]


def frame(n: int, *, every_s: int = 3, types: list[str] = TYPES, keys: int = 50, split: int | None = None) -> pl.DataFrame:
    """An event frame of ``n`` CRUD records (EVENT_SCHEMA), built vectorized.

    Records up to ``split`` live in `events.raftlog.1`, the rest in `events.raftlog`;
    every record is 100 bytes long.
    """
    split = n if split is None else split
    seq = pl.int_range(0, n, eager=True).cast(pl.UInt64).alias("seq")
    t = pl.Series(types)
    in_seg = pl.col("seq") < split
    return (
        pl.DataFrame(seq)
        .with_columns(
            store=pl.lit("s"),
            file=pl.when(in_seg).then(pl.lit("events.raftlog.1")).otherwise(pl.lit("events.raftlog")),
            offset=(pl.when(in_seg).then(pl.col("seq")).otherwise(pl.col("seq") - split) * 100).cast(pl.UInt64),
            line=None,
            encoding=pl.lit("crc"),
            record_kind=pl.lit("envelope"),
            short_type=pl.lit(t).gather(pl.col("seq") % len(types)),
            event_id=pl.col("seq").cast(pl.String),
            timestamp=((T0 + pl.col("seq").cast(pl.Int64) * every_s) * 1_000_000).cast(pl.Datetime("us", "UTC")),
            aggregate_id=(pl.col("seq") % keys).cast(pl.String),
            payload=pl.format('{{"id":"{}","price":{}}}', pl.col("seq") % keys, pl.col("seq")),
            event_hash=None,
            previous_hash=None,
        )
        .with_columns(
            event_type=pl.col("short_type"),
            model=pl.col("short_type").str.extract(r"^(Product|Order|User|Payment)"),
            op=pl.col("short_type").str.extract(r"(Created|Updated|Deleted)$"),
        )
        .select(list(EVENT_SCHEMA))
        .cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    )


def data_of(chart: alt.TopLevelMixin) -> pl.DataFrame:
    data = chart.data
    if isinstance(chart, alt.LayerChart) and not isinstance(data, pl.DataFrame):
        data = chart.layer[0].data
    assert isinstance(data, pl.DataFrame)
    return data


def test_event_rate_aggregates_a_million_rows_and_keeps_every_event() -> None:
    n = 999_996  # a million, divisible by the 6 types so their counts tie
    chart = viz.event_rate(frame(n), top=3)
    data = data_of(chart)
    assert len(data) <= MAX_MARKS
    assert data["events"].sum() == n
    assert set(data["type"]) == {*sorted(TYPES)[:3], OTHER}  # 6 equally frequent types: ties go by name
    spec = chart.to_dict()  # serializable, so no MaxRowsError
    colours = dict(zip(spec["encoding"]["color"]["scale"]["domain"], spec["encoding"]["color"]["scale"]["range"]))
    assert colours[OTHER] == OTHER_COLOUR
    assert len(set(colours.values())) == len(colours)


def test_event_rate_with_explicit_bucket_counts_per_hour() -> None:
    chart = viz.event_rate(frame(7200, every_s=1, types=["A"]), every="1h")
    data = data_of(chart)
    assert data["events"].to_list() == [3600, 3600]
    assert chart.to_dict()["encoding"]["y"]["title"] == "events per hour"


def test_type_mix_counts_and_shares() -> None:
    f = frame(600).with_columns(short_type=pl.when(pl.col("seq") < 5).then(None).otherwise(pl.col("short_type")))
    data = data_of(viz.type_mix(f))
    counts = dict(zip(data["type"], data["events"]))
    assert counts["(raw record)"] == 5
    assert sum(counts.values()) == 600
    assert data["share"].sum() == pytest.approx(1.0)
    assert data["events"].to_list() == sorted(data["events"].to_list(), reverse=True)


def test_log_growth_adds_earlier_files_to_the_offset() -> None:
    n, split = 10_000, 4_000
    data = data_of(viz.log_growth(frame(n, split=split)))
    assert len(data) <= MAX_MARKS
    last = data.sort("seq").row(-1, named=True)
    assert last["seq"] == n - 1
    # the segment (4,000 records of 100 bytes) plus the last record's offset in the active file
    assert last["mib"] == pytest.approx((split * 100 + (n - 1 - split) * 100) / 2**20)
    assert set(data["file"]) == {"events.raftlog.1", "events.raftlog"}


def test_entity_timeline_shows_every_version_then_buckets() -> None:
    f = frame(5000, keys=10)
    chart = viz.entity_timeline(f, "3", field="price")
    data = data_of(chart)
    assert data["version"].to_list() == list(range(1, 501))
    assert data["value"].to_list() == [float(3 + 10 * i) for i in range(500)]
    bucketed = data_of(viz.entity_timeline(f, "3", field="price", max_points=50))
    assert len(bucketed) <= 50
    assert bucketed["versions"].sum() == 500
    ops = data_of(viz.entity_timeline(f, "3", max_points=50))
    assert ops["versions"].sum() == 500


def test_entity_timeline_unknown_key_is_a_clear_error() -> None:
    with pytest.raises(NotFoundError, match="no record has key `nope` in model `Product`"):
        viz.entity_timeline(frame(10), "nope", model="Product")


def test_export_png_and_svg_offline(tmp_path: Path) -> None:
    chart = viz.type_mix(frame(100))
    assert viz.save(chart, tmp_path / "mix.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = viz.save(chart, tmp_path / "mix.svg").read_text()
    assert svg.startswith("<svg") and "Event type mix" in svg
    with pytest.raises(ValueError, match="cannot save a chart as `.pdf`"):
        viz.save(chart, tmp_path / "mix.pdf")


def test_state_diff_counts_entities_and_fields() -> None:
    diff = pl.DataFrame(
        {
            "model": ["Product", "Product", "Product", "Product", "Order", "User"],
            "_key": ["p1", "p1", "p2", "p3", "o1", "u1"],
            "change": ["updated", "updated", "updated", "deleted", "created", "updated"],
            "field": ["price", "stock", "price", None, None, "email"],
            "old": ["1", "2", "3", None, None, '"a"'],
            "new": ["2", "3", "4", None, None, '"b"'],
        }
    )
    chart = viz.state_diff(diff, top_fields=2)
    entities, fields = chart.vconcat[0].data, chart.vconcat[1].data
    counts = {(r["model"], r["change"]): r["entities"] for r in entities.to_dicts()}
    assert counts == {("Product", "updated"): 2, ("Product", "deleted"): 1, ("Order", "created"): 1, ("User", "updated"): 1}
    assert fields["name"].to_list() == ["Product.price", "Product.stock"]
    assert fields["entities"].to_list() == [2, 1]
    with pytest.raises(ValueError, match="`diff` lacks the columns `change`"):
        viz.state_diff(diff.drop("change"))


def test_charts_render_offline_in_jupyterlab_and_as_png() -> None:
    # JupyterLab renders this mimetype itself (no CDN); every other frontend gets the PNG.
    bundle = viz.type_mix(frame(50))._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert set(bundle) == {"application/vnd.vegalite.v5+json", "image/png", "text/plain"}
    spec = bundle["application/vnd.vegalite.v5+json"]
    assert spec["$schema"].endswith("/v5.json") and spec["title"]["text"] == "Event type mix"
    import base64

    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


def test_log_growth_of_a_directory_uses_the_sizes_on_disk() -> None:
    import lithair_lab as ll

    shop = ll.datasets.path("shop")
    chart = viz.log_growth(shop)
    journals = [p for p in shop.iterdir() if p.name.startswith("events.raftlog")]
    total = sum(p.stat().st_size for p in journals) / 2**20
    assert chart.to_dict()["title"]["subtitle"] == f"{len(journals)} journal file(s), {total:,.2f} MiB in all"
    data = data_of(chart)
    # the last point: every earlier segment whole, plus the active file up to its last record
    last_record_offset = ll.read(shop)["offset"][-1]
    expected = (sum(p.stat().st_size for p in journals if p.name != "events.raftlog") + last_record_offset) / 2**20
    assert data.sort("seq")["mib"][-1] == pytest.approx(expected)

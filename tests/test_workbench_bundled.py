"""The bundled data directories are exactly what their recipes build."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from lithair_lab import datasets
from lithair_lab.datasets.bundled import BUILDERS
from lithair_lab.errors import NotFoundError
from lithair_lab.formats import layout


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_bundled_directory_matches_its_recipe(name: str, tmp_path: Path) -> None:
    committed = datasets.path(name)
    rebuilt = BUILDERS[name](tmp_path / name)
    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(p.name for p in committed.iterdir())
    for fresh in rebuilt.iterdir():
        old = committed / fresh.name
        if fresh.name == layout.META:  # the engine stamps the real creation time
            a, b = orjson.loads(fresh.read_bytes()), orjson.loads(old.read_bytes())
            a.pop("created_at"), b.pop("created_at")
            assert a == b
        else:
            assert fresh.read_bytes() == old.read_bytes(), f"{name}/{fresh.name} differs from its recipe"


def test_bundled_data_stays_small() -> None:
    total = sum(f.stat().st_size for f in datasets.ROOT.rglob("*") if f.is_file())
    assert total < 5 * 2**20


def test_unknown_bundled_name_is_a_clear_error() -> None:
    with pytest.raises(NotFoundError, match="no bundled dataset `shoe`"):
        datasets.path("shoe")


def test_era_b_directory_looks_like_upstream_left_it() -> None:
    import polars as pl

    import lithair_lab as ll

    path = datasets.path("upstream-era-b")
    events = ll.read(path)
    envelopes = events.filter(pl.col("record_kind") == "envelope")
    assert envelopes["event_type"].str.starts_with("my_app::models::").all()
    assert envelopes["event_hash"].is_null().all()
    # Era B CRUD ids are Model:Op:pk, so every update of a key repeats its id
    assert envelopes.filter(pl.col("op") == "Updated")["event_id"].is_duplicated().any()
    assert set(events["encoding"]) == {"crc", "legacy"}
    assert events.filter(pl.col("record_kind") == "raw").height == 10
    line = (path / "events.raftlog").read_bytes().splitlines()[0]
    assert b'"event_hash"' not in line and b'"previous_hash"' not in line  # omitted, not null
    assert sorted(p.name for p in path.iterdir()) == ["events.raftlog", "events.raftlog.1", "meta.raftmeta", "state.raftsnap"]
    assert ll.read_meta(path)["created_at"] == "2024-01-01T00:00:00Z"


def test_damaged_directory_has_exactly_the_documented_damage() -> None:
    import lithair_lab as ll
    from lithair_lab.datasets.bundled import FLIPPED_LINE, TORN_BYTES

    path = datasets.path("damaged")
    damage = ll.read_damage(path)
    whole_lines = (path / "events.raftlog").read_bytes().count(b"\n")
    assert damage.select("file", "line", "kind").rows() == [
        ("events.raftlog.1", FLIPPED_LINE, "bad_crc"),
        ("events.raftlog", whole_lines + 1, "torn_tail"),  # the half-written record after the last whole one
    ]
    assert f"the last {TORN_BYTES} bytes" in damage["detail"][1]

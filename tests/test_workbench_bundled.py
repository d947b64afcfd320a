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

"""Every notebook runs top to bottom on the bundled data, in under a minute; a failing cell fails the suite."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy in tmp_path, and the kernel's temporary directory there too: what the
    # notebooks write (a new store, a restored one) goes away with the test.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    work = tmp_path / path.name
    shutil.copy(path, work)
    nb = nbformat.read(work, as_version=4)
    started = time.monotonic()
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.monotonic() - started < 60
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    if path.stem == "00_quickstart":
        # A plain HTML export (no widget state, no network) still shows the explorer's table and the charts.
        from nbconvert import HTMLExporter

        html, _ = HTMLExporter().from_notebook_node(nb)
        assert 'class="ll-static"' in html and "ll-entity-table" in html and "live <code>Product</code>" in html
        assert html.count("data:image/png;base64") >= 2


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: clear the outputs"


def test_every_notebook_is_here() -> None:
    names = {p.stem.split("_", 1)[1] for p in PATHS}
    assert {"quickstart", "time_travel", "compaction", "write_and_read", "damage_and_recovery"} <= names

"""End to end, as a new user meets it: JupyterLab in a real browser, the quickstart run, the slider moved.

Needs Debian's Chromium (``apt-get install chromium``; CI installs it): Playwright
is pointed at it because it cannot download its own browser here. Without it the
test is skipped with that reason.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "00_quickstart.ipynb"
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab, headless, on a copy of the notebooks (so the run never touches the committed ones)."""
    notebooks = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    token = secrets.token_hex(16)
    port = _free_port()
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
            f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--notebook-dir={notebooks}", f"--LabServerApp.workspaces_dir={tmp_path / 'workspaces'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=notebooks,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.2)
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_for_change(page: object, before: str) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        "before => document.querySelector('.jp-OutputArea .widget-box .ll-entity-table').innerText !== before",
        arg=before, timeout=30_000,
    )  # fmt: skip


def test_quickstart_runs_and_the_time_travel_slider_changes_the_table(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(lab)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            # "Run All" before the kernel is connected runs nothing: wait for it to be idle
            page.locator("#jp-main-statusbar", has_text="Idle").wait_for(timeout=90_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
            table = page.locator(".jp-OutputArea .widget-box .ll-entity-table").first
            try:
                table.wait_for(timeout=120_000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "browser_quickstart_failed.png"))
                raise
            errors = page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Traceback"
            )
            before = table.inner_text()
            assert "after 4,000 of 4,000 records" in page.locator(".jp-OutputArea .widget-box .ll-explorer-header").first.inner_text()
            # Move the slider as a user does: grab the handle and go back to the start of the log...
            handle = page.locator(".jp-OutputArea .widget-slider .noUi-handle").first
            handle.scroll_into_view_if_needed()
            handle.focus()
            handle.press("Home")
            _wait_for_change(page, before)
            assert table.inner_text() != before
            empty = table.inner_text()
            # ...then type a position into the slider's readout.
            readout = page.locator(".jp-OutputArea .widget-slider .widget-readout").first
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("1000")
            page.keyboard.press("Enter")
            _wait_for_change(page, empty)
            header = page.locator(".jp-OutputArea .widget-box .ll-explorer-header").first.inner_text()
            assert "after 1,000 of 4,000 records" in header
            middle = table.inner_text()
            assert middle not in (before, empty)
            static = page.locator(".jp-OutputArea .ll-static").first  # the fallback for HTML exports...
            assert static.count() == 1 and static.is_hidden()  # ...hides itself where the widget renders
            if page.get_by_role("button", name="No").count():
                page.get_by_role("button", name="No").first.click()  # the news toast would hide the chart
            table.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser_quickstart.png"), full_page=False)
            assert errors.count() == 0, errors.first.inner_text()
        finally:
            browser.close()

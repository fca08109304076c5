"""A page URL opened first on a freshly (re)started server gets the real app (issue 13, item 4).

Streamlit lists a `pages/` folder next to the entry script by itself until `st.navigation` has
run once; with such a folder a bookmark opened right after a restart was served from that listing:
lowercase file names and an "app" entry in the sidebar, the narrow layout, and none of the entry
script's set-up. The screens now live in gtpred_app/screens/. Here the server is started, a page
URL is the very first request, the server is restarted on the same port, and another page URL is
again the first request; each time the titled navigation, the wide layout and the page itself
must show. Screenshots: tests/artifacts/restart-*.png.
"""

from __future__ import annotations

import os
import sys

import pytest
from live_server import ARTIFACTS, ROOT, chromium_page, free_port, require_browser, running_server, wait_idle

NAVIGATION = [
    "Evaluate", "Results", "Mispredictions", "Class mapping", "Suspect labels", "Calibration",
    "Embedding map", "Leakage", "History", "Compare", "Training",
]


@pytest.fixture()
def server_command():
    require_browser()
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    return command, port


def _check_first_request(url: str, path: str, entry: str, shown: str, screenshot: str) -> None:
    with chromium_page(width=1500, height=1000) as page:
        page.goto(f"{url}/{path}")  # the first request this server process has seen
        page.get_by_text(shown, exact=True).first.wait_for()  # the screen's own script ran
        wait_idle(page)
        page.screenshot(path=ARTIFACTS / screenshot)

        # each link reads "<icon name>\n<label>"
        entries = [text.split("\n")[-1].strip() for text in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
        assert entries == NAVIGATION  # titled entries, no "app", no file names
        current = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]').inner_text()
        assert current.split("\n")[-1].strip() == entry
        width = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"]
        assert width > 900, f"main area {width:.0f} px wide: the narrow layout, set_page_config never ran"
        assert page.title().endswith("gtpred"), page.title()  # the entry script's page config


def test_a_page_url_opened_first_after_a_restart_gets_the_real_app(server_command, tmp_path):
    command, port = server_command
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GTPRED_DB": str(tmp_path / "runs.sqlite3"), "GTPRED_DATA_ROOT": str(tmp_path)}
    with running_server(command, port=port, cwd=ROOT, env=env, log_name="restart-server-1.log") as (_, url):
        # no run on a fresh server: the Results screen says how to get one
        _check_first_request(url, "results", "Results", "No results yet: evaluate a model first, or run the one-click demo.", "restart-1-results-first.png")
    # the same port again, as a restart by systemd or by hand
    with running_server(command, port=port, cwd=ROOT, env=env, log_name="restart-server-2.log") as (_, url):
        _check_first_request(url, "history", "History", "History", "restart-2-history-first.png")

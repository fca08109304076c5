"""The Suspect labels and Calibration screens in a real browser (Debian's chromium, Playwright's
Python client) against ``streamlit run``: open each by its stored run's link as the first request,
click a reliability-diagram bin and one of its images, click a suspect's file name. Screenshots:
tests/artifacts/trust-calibration.png and trust-suspects.png (look at them)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from gtpred_core import evaluate_folder
from gtpred_core.demo import DEMO_MODEL, demo_folder
from gtpred_core.store import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_server import ARTIFACTS, ROOT, chromium_page, free_port, require_browser, running_server, wait_idle  # noqa: E402

HEADER_HEIGHT = 35
#: Past the row marker (about 30 px) and the "small" thumbnail column (75 px): the file name's cell.
FILE_CELL_X = 30 + 75 + 60
SUSPECT_ROW_HEIGHT = 56  # gtpred_app/screens/suspect_labels.py
BIN_ROW_HEIGHT = 44  # gtpred_app/screens/calibration.py


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    db = tmp_path_factory.mktemp("trust-store") / "runs.sqlite3"
    run_id = RunStore(db).save(evaluate_folder(DEMO_MODEL, demo_folder(), class_order="natural"), "demo, natural order")
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    env = {**os.environ, "GTPRED_DB": str(db), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with running_server(command, port=port, cwd=ROOT, env=env, log_name="trust-server.log") as (_, url):
        yield url, run_id


def test_a_reliability_bin_click_lists_its_confident_mistakes_and_a_click_opens_one(server):
    url, run_id = server
    with chromium_page(1500, 1500) as page:
        page.goto(f"{url}/calibration?run={run_id}")
        wait_idle(page)
        page.locator('[data-testid="stVegaLiteChart"] path[aria-label*="Confidence from: 93.3%"]').click()
        page.get_by_text("Confidence 93%–100%:").wait_for()
        page.get_by_text("Only the wrong ones").click()
        page.get_by_text(re.compile(r"; \d+ wrong$")).wait_for()
        wait_idle(page)
        table = page.locator('[data-testid="stDataFrame"]').first
        box = table.bounding_box()
        page.mouse.click(box["x"] + FILE_CELL_X, box["y"] + HEADER_HEIGHT + BIN_ROW_HEIGHT / 2)
        page.get_by_text("Top-5 probabilities").wait_for()
        page.wait_for_url(re.compile(r"[?&]file="))
        wait_idle(page)
        page.locator('[data-testid="stImage"]').first.wait_for()  # the image opens (it may draw after the rerun ends)
        assert any(text.endswith("wrong)") for text in page.locator('[data-testid="stMarkdown"]').all_inner_texts())
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "trust-calibration.png"))


def test_a_suspects_file_name_click_opens_its_image(server):
    url, run_id = server
    with chromium_page(1500, 1300) as page:
        page.goto(f"{url}/suspect_labels?run={run_id}")
        wait_idle(page)
        page.get_by_text("review candidates, not proof").wait_for()
        table = page.locator('[data-testid="stDataFrame"]').first
        box = table.bounding_box()
        page.mouse.click(box["x"] + FILE_CELL_X, box["y"] + HEADER_HEIGHT + SUSPECT_ROW_HEIGHT / 2)
        page.get_by_text("Top-5 probabilities").wait_for()
        page.wait_for_url(re.compile(r"[?&]file="))
        wait_idle(page)
        page.locator('[data-testid="stImage"]').first.wait_for()  # the image opens (it may draw after the rerun ends)
        page.screenshot(path=str(ARTIFACTS / "trust-suspects.png"))

"""Several people on one server, in real browsers: the shared worker pool's results, isolation,
and its queue as a person sees it. Times are figures (``bench/load.py``), never asserted here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from live_server import health_answers, stop

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _require_browser() -> None:
    missing = None
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing = "chromium is not installed"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "the playwright Python client is not installed"
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{missing} (the browser tests never skip under CI)")
    pytest.skip(missing)


def test_three_sessions_pressing_the_demo_at_once_each_get_their_own_right_results(tmp_path):
    _require_browser()
    out = tmp_path / "load.json"
    bench = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--sessions", "3", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert bench.returncode == 0, bench.stderr[-3000:]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-3-sessions.txt").write_text(bench.stdout)
    result = json.loads(out.read_text())
    sessions = result["sessions"]
    assert [s["error"] for s in sessions] == [None, None, None]
    assert [s["accuracy"] for s in sessions] == ["8.7%"] * 3  # the demo under Keras order
    run_ids = [s["run_id"] for s in sessions] + [result["observer_run_id"]]
    assert None not in run_ids and len(set(run_ids)) == 4  # each session's URL holds its own run
    assert result["workers"] >= 1 and result["warm_worker_rss_mb"]


# ----- the queue in the page: one worker, a long run, two people waiting, one leaving ------------------
@pytest.fixture(scope="module")
def one_worker_server(tmp_path_factory):
    _require_browser()
    from gtpred_core.demo import DEMO_MODEL, demo_folder

    import keras

    root = tmp_path_factory.mktemp("data-root")
    shutil.copytree(demo_folder(), root / "digits")
    (root / "models").mkdir()
    shutil.copy(DEMO_MODEL, root / "models" / DEMO_MODEL.name)
    # A model that takes the demo's images but spends about a GFLOP on each: a run that holds the
    # only worker for tens of seconds (the test cancels it), so others queue behind it.
    keras.utils.set_random_seed(0)
    slow = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.UpSampling2D(8), keras.layers.Conv2D(32, 5, activation="relu"),
        keras.layers.Conv2D(32, 5), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax"),
    ])
    slow.save(root / "models" / "slow.keras")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "streamlit-one-worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GTPRED_DATA_ROOT": str(root), "GTPRED_WORKERS": "1",
             "GTPRED_DB": str(root / "runs.sqlite3")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not health_answers(url, process, 60):
            assert process.poll() is None, "streamlit exited; see tests/artifacts/streamlit-one-worker.log"
            raise AssertionError("streamlit did not answer /_stcore/health within 60 s")
        yield url
    finally:
        stop(process)
        log.close()


def _idle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    _idle(page)


def test_people_behind_a_long_run_see_their_place_and_can_leave_the_queue(one_worker_server):
    from playwright.sync_api import sync_playwright

    url = one_worker_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            a, b, c = (browser.new_context(viewport={"width": 1500, "height": 1900}).new_page() for _ in range(3))
            for page in (a, b, c):
                page.set_default_timeout(180_000)
                page.goto(url)
                page.get_by_role("button", name="Run the demo").wait_for()
                _idle(page)

            # A: a long run (a slow model) on the server's folder, holding the only worker.
            a.get_by_text("On the server", exact=True).click()
            _pick(a, "Model under the data root", "models/slow.keras")
            _pick(a, "Open a sub-folder", "digits")
            a.get_by_text("797 images in 10 classes").wait_for()
            _idle(a)
            a.get_by_role("button", name="Run", exact=True).click()
            a.get_by_text("images/s").wait_for()

            b.get_by_role("button", name="Run the demo").click()
            b.get_by_text("Waiting: yours is next (1 worker, all busy)").wait_for()
            c.get_by_role("button", name="Run the demo").click()
            c.get_by_text("Waiting: 1 run ahead of yours (1 worker, all busy)").wait_for()
            c.screenshot(path=ARTIFACTS / "browser-queued.png")  # look at it: the place in the queue
            c.get_by_role("button", name="Cancel").click()
            c.get_by_text("Cancelled before it started: nothing was evaluated.").wait_for()
            assert c.get_by_role("button", name="Run the demo").is_enabled()

            a.get_by_role("button", name="Cancel").click()  # A leaves: B's demo runs next
            b.get_by_role("heading", name="Confusion matrix").wait_for()
            assert b.locator('[data-testid="stMetricValue"]').first.inner_text() == "8.7%"
            a.get_by_text("The run was cancelled after").wait_for()
        finally:
            for name, page in zip("abc", (a, b, c)):
                page.screenshot(path=ARTIFACTS / f"browser-queue-{name}.png")
            browser.close()

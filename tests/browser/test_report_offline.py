"""The HTML report in a real browser with the network blocked: nothing requested, nothing broken.

Debian's chromium through Playwright's Python client (never ``playwright install``). Every request
other than the report file itself is recorded and aborted; the page must need none. The
screenshot goes to tests/artifacts/report.png (look at it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gtpred_core import evaluate_folder
from gtpred_core.demo import DEMO_MODEL, demo_folder
from gtpred_core.report import write_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def test_the_report_opens_offline_with_charts_thumbnails_and_no_request(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is missing (the browser tests never skip under CI)")
        pytest.skip("chromium is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    run = evaluate_folder(DEMO_MODEL, demo_folder())
    report = write_report(run, tmp_path / "report.html")

    outside, errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 2400})
        context.set_offline(True)

        def guard(route):
            if route.request.url == report.as_uri():
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(report.as_uri())
        page.wait_for_load_state("load")

        verdict = page.locator("#verdict").inner_text()
        cells = page.locator('svg[aria-label="confusion matrix"] rect.cell').count()
        drawn = page.locator('svg[aria-label="confusion matrix"]').bounding_box()
        thumbnails = page.evaluate(
            "[...document.querySelectorAll('img[src^=\"data:image/jpeg\"]')].filter(i => i.complete && i.naturalWidth > 0).length"
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"))
        browser.close()

    assert outside == [], outside
    assert errors == [], errors
    assert f"{100 * run.accuracy:.1f}%" in verdict
    assert cells == len(run.class_names) ** 2 and drawn["width"] > 300 and drawn["height"] > 300
    assert thumbnails >= 10

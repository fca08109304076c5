"""Results of a 100-class run in Chromium (issue 13, item 9): the confusion matrix is drawn whole
(all 10,000 cells, full size) and scrolls in its frame, and a cell's tooltip never covers the
colour legend; at 10 classes it fits its column. The runs are
stored ``assemble_run`` runs over real PNGs (no model). Screenshots, to look at:
tests/artifacts/results-100-classes*.png and results-10-classes.png.
"""

from __future__ import annotations

import os
import re
import sys

import pytest
from live_server import ARTIFACTS, ROOT, chromium_page, free_port, require_browser, running_server, wait_idle
from synthetic_runs import synthetic_run

from gtpred_app.ui import charts
from gtpred_core.store import RunStore

MATRIX = '[data-testid="stVegaLiteChart"]'
#: Vega's padding around a chart, in pixels.
PADDING = 5
TOOLTIP = "#vg-tooltip-element.visible"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose run store holds a 100-class and a 10-class run: (url, {classes: run id})."""
    require_browser()
    tmp = tmp_path_factory.mktemp("many-classes")
    store = RunStore(tmp / "runs.sqlite3")
    ids = {n: store.save(synthetic_run(tmp / f"images-{n}", n), f"{n} classes") for n in (100, 10)}
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GTPRED_DB": str(tmp / "runs.sqlite3")}
    with running_server(command, port=port, cwd=ROOT, env=env, log_name="many-classes-server.log") as (_, url):
        yield url, ids


def _open_results(page, url: str, run_id: int) -> None:
    page.goto(f"{url}/results?run={run_id}")
    page.get_by_role("heading", name="Confusion matrix").wait_for()
    wait_idle(page)
    page.locator(f'{MATRIX} path[aria-label^="Predicted class: "]').first.wait_for()


def _tooltip_and_legend(page, cell) -> tuple[dict, dict]:
    cell.hover()
    tooltip = page.locator("#vg-tooltip-element.visible")
    tooltip.wait_for()
    legend = page.locator(f"{MATRIX} g.role-legend").first.bounding_box()
    return tooltip.bounding_box(), legend


def _cell_under(page, x: float, y: float) -> tuple[int, int]:
    """(true, predicted) class index of the matrix cell at (x, y), read from its tooltip."""
    page.mouse.move(x, y)
    tooltip = page.locator(TOOLTIP)
    tooltip.wait_for()
    page.wait_for_function(
        "([x, y]) => { const t = document.querySelector('#vg-tooltip-element.visible');"
        " return t && Math.abs(t.getBoundingClientRect().x - x) < 400 && Math.abs(t.getBoundingClientRect().y - y) < 400; }",
        arg=[x, y],
    )
    found = re.search(r"True\s*(\d{3})_\w+\s*Predicted\s*(\d{3})_", tooltip.inner_text())
    assert found, tooltip.inner_text()
    return int(found.group(1)), int(found.group(2))


def _box_overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_a_100_class_matrix_is_whole_and_scrolls_in_its_frame_with_the_legend_clear(server):
    """Streamlit draws a chart this large on a canvas (no DOM per cell): cells are found from the
    matrix's geometry — its plot ends at the canvas's bottom-right corner (Vega's 5 px padding),
    each cell ``matrix_cell_size`` pixels — and checked by their tooltips. Label spacing is
    checked on the spec (tests/app/test_charts.py) and by eye on the screenshot."""
    url, ids = server
    step = charts.matrix_cell_size(100)
    with chromium_page(width=1500, height=1400) as page:
        page.goto(f"{url}/results?run={ids[100]}")
        page.get_by_role("heading", name="Confusion matrix").wait_for()
        wait_idle(page)
        page.get_by_text("100 classes: scroll inside the matrix").wait_for()
        canvas = page.locator(f"{MATRIX} canvas").first
        canvas.wait_for()
        chart_width, chart_height = canvas.evaluate("c => [c.clientWidth, c.clientHeight]")
        assert chart_width >= 100 * step and chart_height >= 100 * step  # the whole matrix, full size

        # a frame of fixed height that scrolls down and sideways
        frame = page.locator(MATRIX).first.locator('xpath=ancestor::div[@data-testid="stVerticalBlock"][1]')
        width, client_width, height, client_height = frame.evaluate(
            "f => [f.scrollWidth, f.clientWidth, f.scrollHeight, f.clientHeight]"
        )
        assert client_height == charts.MATRIX_FRAME_MAX
        assert height > client_height and width > client_width
        page.locator(MATRIX).first.scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "results-100-classes.png")

        # Find the plot from one tooltip: hover about where the first cell is (Vega pads the
        # chart by 5 px; the turned column labels may widen it), read which cell is under the
        # pointer, and place the grid from it.
        box = canvas.bounding_box()
        x = box["x"] + chart_width - PADDING - 100 * step + step / 2
        y = box["y"] + chart_height - PADDING - 100 * step + step / 2
        true_index, pred_index = _cell_under(page, x, y)
        plot_left, plot_top = x - (pred_index + 0.5) * step, y - (true_index + 0.5) * step

        # the top-left cell, next to the legend: its tooltip opens over the cells, right of the
        # plot's left edge (the legend and the row labels are left of that edge)
        assert _cell_under(page, plot_left + step / 2, plot_top + step / 2) == (0, 0)
        assert page.locator(TOOLTIP).bounding_box()["x"] > plot_left
        page.screenshot(path=ARTIFACTS / "results-100-classes-tooltip.png")

        # scrolled to the far corner, the last cell is there to click
        scrolled = frame.evaluate(
            "f => { const before = [f.scrollLeft, f.scrollTop]; f.scrollLeft = f.scrollWidth; f.scrollTop = f.scrollHeight;"
            " return [f.scrollLeft - before[0], f.scrollTop - before[1]]; }"
        )
        corner = (plot_left - scrolled[0] + 99.5 * step, plot_top - scrolled[1] + 99.5 * step)
        assert _cell_under(page, *corner) == (99, 99)
        page.mouse.click(*corner)
        page.get_by_text(re.compile(r"^True 099_\w+, predicted 099_\w+: \d+ images")).wait_for()
        wait_idle(page)
        page.screenshot(path=ARTIFACTS / "results-100-classes-corner.png")


def test_a_10_class_matrix_fits_its_column_and_its_tooltips_leave_the_legend_clear(server):
    url, ids = server
    with chromium_page(width=1500, height=1400) as page:
        _open_results(page, url, ids[10])
        assert page.get_by_text("scroll inside the matrix").count() == 0
        chart = page.locator(MATRIX).first
        frame = chart.locator('xpath=ancestor::div[@data-testid="stVerticalBlock"][1]')
        # no scrolling either way, and little room left empty under it (charts.matrix_height)
        width, client_width, height, client_height = frame.evaluate(
            "f => [f.scrollWidth, f.clientWidth, f.scrollHeight, f.clientHeight]"
        )
        assert height <= client_height and width <= client_width
        assert client_height - chart.bounding_box()["height"] < 60
        cells = page.locator(f'{MATRIX} path[aria-label^="Predicted class: "]')
        assert cells.count() == 100
        for index in (0, 9, 90, 99):  # the four corners
            tooltip, legend = _tooltip_and_legend(page, cells.nth(index))
            assert not _box_overlap(tooltip, legend), (index, tooltip, legend)
        page.screenshot(path=ARTIFACTS / "results-10-classes.png")

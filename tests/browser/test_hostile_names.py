"""Hostile names on all seven pages in a real browser (issue 14, item 1), as a person meets them.

A server whose data root has a data set, class folders, image files and a model file named
``[Session expired: sign in again](https:evil.example)``, ``**x**``, a backtick, ``<img src=x
onerror=alert(1)>``, ``www.evil.example`` and more (tests/hostile_names.py), and a run store
holding runs and a training named ``https://evil.example/login`` and the like. The test chooses
the model and the folder on Evaluate and runs it, then opens Results, Mispredictions (table,
gallery, an image), Class mapping, History (a row clicked, the delete question), Compare and
Training by their URLs, and a link whose ``?run=`` is itself a hostile name. On every page:
no link to another host, no bold/italic/struck/code/heading/image made from a name, no dialog,
and each name on the page readable exactly as given. Screenshots: tests/artifacts/hostile-*.png.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote, urlsplit

import pytest

from gtpred_app.ui.text import WORD_JOINER, md

import hostile_names as H
from live_server import ARTIFACTS, ROOT, chromium_page, free_port, require_browser, running_server, wait_idle

INSPECT = r"""(fragments) => {
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const formatted = [...document.querySelectorAll('strong, b, em, i, del, s, code, h1, h2, h3, h4, h5, h6, img')]
    .filter(e => e.tagName === 'IMG'
      ? /evil|^x$/.test(e.getAttribute('src') || '')
      : fragments.includes(e.textContent.trim()))
    .map(e => e.outerHTML.slice(0, 200));
  const inputs = [...document.querySelectorAll('input')].map(i => i.value || i.getAttribute('aria-label') || '');
  return {links, formatted, text: document.body.innerText + '\n' + inputs.join('\n')};
}"""


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    """The app over the hostile data root and a store of its runs; yields (url, runs)."""
    require_browser()
    base = tmp_path_factory.mktemp("hostile-browser")
    root, db = base / "data", base / "runs.sqlite3"
    root.mkdir()
    H.write_hostile_data_root(root)
    runs = H.store_hostile_runs(root, db)
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    env = {
        **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GTPRED_DATA_ROOT": str(root),
        "GTPRED_DB": str(db), "GTPRED_CACHE_DIR": str(base / "cache"),
    }
    with running_server(command, port=port, cwd=ROOT, env=env, log_name="hostile-server.log") as (_, url):
        yield url, runs


def _url(base: str, screen: str, **params: object) -> str:
    query = "&".join(f"{key}={quote(str(value), safe='')}" for key, value in params.items())
    return f"{base}/{screen}" + (f"?{query}" if query else "")


def assert_names_are_text(page, server: str, shot: str, *visible: str) -> None:
    """The page as it stands: links stay on this server, no formatting made of a name, each
    ``visible`` name readable exactly; a screenshot to look at."""
    wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / f"hostile-{shot}.png"))
    seen = page.evaluate(INSPECT, sorted(H.FORMATTED_FRAGMENTS))
    here = urlsplit(server).netloc
    foreign = [link for link in seen["links"] if urlsplit(link).netloc not in ("", here)]
    assert not foreign, f"{shot}: links to other hosts {foreign}"
    assert not seen["formatted"], f"{shot}: names turned into formatting {seen['formatted']}"
    text = seen["text"].replace(WORD_JOINER, "")  # md's invisible joiner: it reads the same
    for name in visible:
        assert name in text, f"{shot}: {name!r} is not readable on the page"
        assert md(name).replace(WORD_JOINER, "") not in text, f"{shot}: {name!r} shows its escapes"


def _choose(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_all_seven_pages_show_hostile_names_as_text(hostile_server):
    server, runs = hostile_server
    with chromium_page(1500, 2200) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

        # Evaluate: the hostile model and data set chosen on the server, then run.
        page.goto(server)
        wait_idle(page)
        page.get_by_text("On the server", exact=True).click()
        wait_idle(page)
        _choose(page, "Model under the data root", f"models/{H.MODEL_FILE}")
        _choose(page, "Open a sub-folder", H.DATASET)
        page.get_by_text("images in 10 classes").wait_for()
        assert_names_are_text(page, server, "evaluate", H.MODEL_FILE, H.DATASET, H.EMPTY_CLASS)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_role("heading", name="Confusion matrix").wait_for(timeout=180_000)
        # Results of the run just made: caption, sidebar, warnings (the empty class, the skipped file)
        assert_names_are_text(page, server, "results-new", H.MODEL_FILE, H.DATASET, H.EMPTY_CLASS, H.BROKEN_FILE)
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text().replace(WORD_JOINER, "")
        assert H.MODEL_FILE in sidebar and H.DATASET in sidebar

        # A stored run (named by a user) with one of its images open.
        page.goto(_url(server, "results", run=runs.run_a, file=runs.mispredicted_file))
        page.get_by_text("Top-5 probabilities").first.wait_for()
        assert_names_are_text(page, server, "results", H.MODEL_FILE, runs.mispredicted_file, H.EMPTY_CLASS)

        page.goto(_url(server, "results", run=runs.run_b))
        page.get_by_text("Re-labelled from run #").first.wait_for()
        assert_names_are_text(page, server, "results-relabelled", H.RELABEL_SOURCE, H.HTML, H.BACKTICK)

        page.goto(_url(server, "mispredictions", run=runs.run_a, file=runs.mispredicted_file))
        page.get_by_text("Top-5 probabilities").first.wait_for()
        assert_names_are_text(page, server, "mispredictions", H.MODEL_FILE, runs.mispredicted_file)
        page.get_by_text("Gallery", exact=True).click()
        page.get_by_role("button", name="Open").first.wait_for()
        assert_names_are_text(page, server, "mispredictions-gallery", H.BOLD)

        page.goto(_url(server, "class_mapping", run=runs.run_b))
        page.get_by_text("Save the order in use").first.wait_for()
        assert_names_are_text(page, server, "class-mapping", H.RELABEL_SOURCE)

        page.goto(_url(server, "history"))
        table = page.locator('[data-testid="stDataFrame"]')
        table.wait_for()
        wait_idle(page)
        box = table.bounding_box()
        # rows, newest first: the run just made in the app, run B, run A; click B's name cell
        page.mouse.click(box["x"] + 140, box["y"] + 35 + 35 + 17)
        page.get_by_role("heading", name=f"#{runs.run_b} ·").wait_for()
        page.get_by_role("button", name="Delete…").click()
        page.get_by_text("cannot be undone").first.wait_for()
        assert_names_are_text(page, server, "history", H.RUN_B_NAME)

        page.goto(_url(server, "compare", a=runs.run_a, b=runs.run_b, file=runs.mispredicted_file))
        page.get_by_text("Run A:").first.wait_for()
        assert_names_are_text(page, server, "compare", H.RUN_A_NAME, H.RUN_B_NAME, runs.mispredicted_file)

        page.goto(_url(server, "training", training=runs.training, epoch=2, file=runs.mispredicted_file))
        page.get_by_role("heading", name="Images across the epochs").wait_for()
        wait_idle(page)
        page.get_by_text("Epoch 2:").first.wait_for()
        assert_names_are_text(page, server, "training", H.TRAINING_NAME, runs.mispredicted_file)

        page.goto(_url(server, "results", run=H.LINK))
        page.get_by_text("names no stored run").first.wait_for()
        assert_names_are_text(page, server, "bad-link", H.LINK)

        assert not dialogs, dialogs

"""AppTest helpers: the real app, the real demo model and images, Streamlit's own test runner.

A run the app shows is a stored run (the run store at ``$GTPRED_DB``), named in the URL by its
id: a fresh AppTest opened with ``?run=<id>`` sees a run another AppTest (or another process)
stored. That is how a shared link, a refreshed tab or a restarted server finds its run.
"""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60


def open_app(page: str | None = None, **query: str) -> AppTest:
    """A fresh session on ``page`` (e.g. "gtpred_app/screens/results.py") with the URL's query parameters."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    if page is not None:
        at.switch_page(page)
    return at.run()


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]




def stored_run(run_id: str | int):
    """The stored run ``run_id`` (from the store the app uses), as the pages show it."""
    from gtpred_core.store import RunStore, default_db_path

    return RunStore(default_db_path()).load(int(run_id))


def shown(markdown: str) -> str:
    """Markdown as a person reads it: the backslash escapes ``md`` puts before users' names
    (and error messages) removed, so ``Class\\_3`` reads ``Class_3``, and the invisible word
    joiner ``md`` puts before a bare link's ``.``/``:``/``@`` dropped."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def texts(at: AppTest) -> str:
    """Everything the page wrote as Markdown, captions and plain text, in one string, as read."""
    return shown(" ".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.text]))


def click_cell(at: AppTest, key: str, row: int, column: str = "file") -> AppTest:
    """Click the cell (``row``, ``column``) of table ``key``, as a person clicks a file name."""
    at.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": [[row, column]]}}
    return at.run()

"""AppTest helpers: the real app, the real demo model and images, Streamlit's own test runner.

A run lives in the server's run registry (``st.cache_resource``, one per test process), so a
fresh AppTest opened with ``?run=<id>`` sees a run another AppTest made: that is exactly how a
shared link or a refreshed tab finds its run.
"""

from __future__ import annotations

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



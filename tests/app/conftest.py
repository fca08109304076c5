"""Fixtures for the AppTests: one real demo run per test module (see ``app_helpers``)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import no_exceptions, open_app


@pytest.fixture(scope="module")
def demo_app() -> AppTest:
    """A session that clicked "Run the demo" and landed on Results (one inference per module)."""
    at = open_app()
    at.button(key="run_demo").click().run()
    no_exceptions(at)
    return at


@pytest.fixture(scope="module")
def demo_run_id(demo_app) -> str:
    """The demo run's stored id, as it appears in the URL (``?run=ID``)."""
    return str(demo_app.session_state["run_id"])

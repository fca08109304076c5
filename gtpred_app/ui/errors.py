"""The one place an error becomes what the user sees.

A ``GtpredError`` is a problem the user can fix: show its message and its fix. Anything else is
a bug: log it with its traceback for the engineer running the server and show a plain apology
(``client.showErrorDetails = "none"`` keeps tracebacks out of the browser as a second guard).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from gtpred_core import GtpredError

log = logging.getLogger("gtpred.app")

APOLOGY = (
    "Something went wrong on the server. It has been logged for the people who run this "
    "server; please try again, or tell them what you were doing."
)


def show_error(err: BaseException) -> None:
    """Render ``err`` as a message (with its fix for a GtpredError); log anything unexpected."""
    if isinstance(err, GtpredError):
        text = err.message if not err.fix else f"{err.message}\n\n**How to fix it:** {err.fix}"
        st.error(text, icon=":material/error:")
        return
    log.error("Unexpected error in the app", exc_info=err)
    st.error(APOLOGY, icon=":material/error:")


@contextmanager
def errors_shown() -> Iterator[None]:
    """Run a block; a raised error is shown (and the rest of the block skipped).

    Streamlit's own control flow (``st.rerun``, ``st.stop``, ``st.switch_page``) raises
    BaseExceptions, which pass through untouched.
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - this is the one place errors are turned into UI
        show_error(err)

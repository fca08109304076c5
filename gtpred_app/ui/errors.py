"""The one place an error becomes what the user sees.

A ``GtpredError`` is a problem the user can fix: show its message and its fix. Anything else is
a bug: log it with its traceback for the engineer running the server and show a plain apology
(``client.showErrorDetails = "none"`` keeps tracebacks out of the browser as a second guard).

A message may carry names from users (a zip entry, a class folder, a run name) and, written for
the command line, the server's full paths: both are made safe here, once. The path the error is
about is shown relative to the data root (or as its own name), the data root and the scratch
area are cut out of the rest, and the text is escaped (``md``) so a name never becomes a link.
The full paths go to the server log.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import streamlit as st

from gtpred_core import GtpredError
from gtpred_core.settings import get_settings
from gtpred_core.uploads.server_paths import path_for_users

from .text import md

log = logging.getLogger("gtpred.app")

APOLOGY = (
    "Something went wrong on the server. It has been logged for the people who run this "
    "server; please try again, or tell them what you were doing."
)


def show_error(err: BaseException) -> None:
    """Render ``err`` as a message (with its fix for a GtpredError); log anything unexpected."""
    if isinstance(err, GtpredError):
        log.info("Shown to a user: %s: %s (path: %s)", type(err).__name__, err, err.path)
        message, fix = md(without_server_paths(err.message, err.path)), md(without_server_paths(err.fix, err.path))
        st.error(message if not fix else f"{message}\n\n**How to fix it:** {fix}", icon=":material/error:")
        return
    log.error("Unexpected error in the app", exc_info=err)
    st.error(APOLOGY, icon=":material/error:")


def without_server_paths(text: str, path: str | None = None) -> str:
    """``text`` with the server's layout taken out: ``path`` (the error's file) as users see it
    (``path_for_users``), and any other path under the data root or the cache folder (the
    scratch area of uploads) made relative to it."""
    settings = get_settings()
    root = settings.data_root
    if path:
        text = text.replace(path, path_for_users(path, root))
    for folder in (root, settings.cache_dir / "scratch", settings.cache_dir):
        for prefix in {str(folder), os.path.realpath(folder)}:
            if prefix and prefix != "/":
                text = text.replace(prefix.rstrip("/") + "/", "").replace(prefix, Path(prefix).name)
    return text


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

"""The one place errors become messages: a GtpredError shows its fix, anything else is logged."""

from __future__ import annotations

import logging

from streamlit.testing.v1 import AppTest

from gtpred_app.ui.text import md


def _page():
    from gtpred_core import FolderError
    from gtpred_app.ui.errors import errors_shown

    with errors_shown():
        raise FolderError("No class folders in /data/val.", "Lay the images out one sub-folder per class.")
    with errors_shown():
        raise RuntimeError("secret internal detail")
    import streamlit as st

    st.write("the page goes on")


def test_known_errors_show_their_fix_and_unexpected_ones_are_logged_not_shown(caplog):
    with caplog.at_level(logging.ERROR, logger="gtpred.app"):
        at = AppTest.from_function(_page, default_timeout=30).run()
    assert not at.exception
    known, unexpected = (e.value for e in at.error)
    # The message and the fix are escaped (text, never Markdown); our own label stays bold.
    assert known == f"{md('No class folders in /data/val.')}\n\n**How to fix it:** {md('Lay the images out one sub-folder per class.')}"
    assert "has been logged" in unexpected and "secret internal detail" not in unexpected
    assert "the page goes on" in at.markdown[0].value
    (record,) = [r for r in caplog.records if r.name == "gtpred.app"]
    assert record.exc_info and "secret internal detail" in str(record.exc_info[1])

"""The escaping helper: hostile names rendered by a real Markdown parser stay plain text.

markdown-it-py (installed with Streamlit's dependency rich), CommonMark with GFM's tables and
strikethrough, renders the escaped text: no <a>, no emphasis, no code span, and the visible text
equals the name. GFM's bare-URL autolinks are checked in the real browser walk over every page
(tests/browser), where Streamlit's own renderer runs.
"""

from __future__ import annotations

import html
import re

import pytest

from gtpred_app.ui.text import md

HOSTILE = [
    "[Session expired: sign in again](https:evil.example)",
    "[x](https://evil.example)",
    "https://evil.example/login",
    "www.evil.example",
    "**bold** _it_ ~~gone~~",
    "a`b` ``c``",
    "<img src=x onerror=alert(1)>",
    "# heading\n- item",
    "![p](https://evil.example/p.png)",
    "user@evil.example",
    "$x^2$ | a | b |",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_escaped_names_render_as_their_own_text(name):
    markdown_it = pytest.importorskip("markdown_it")
    renderer = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    rendered = renderer.render(md(name))
    assert "<a" not in rendered and "<img" not in rendered
    assert not re.search(r"<(strong|em|s|del|code|h\d|li)>", rendered)
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()
    assert text == " ".join(name.split("\n")).strip()


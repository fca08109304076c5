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

from gtpred_app.ui.text import WORD_JOINER, md

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
    assert text.replace(WORD_JOINER, "") == " ".join(name.split("\n")).strip()


@pytest.mark.parametrize(
    "name, broken",
    [("www.evil.example", "www\u2060."), ("https://evil.example", "https\u2060:"), ("HTTP://x.y", "HTTP\u2060:"), ("user@evil.example", "user\u2060@")],
)
def test_bare_links_are_broken_by_an_invisible_joiner(name, broken):
    # remark-gfm links www./http(s)://a@b in the text after escapes are resolved: escapes alone
    # do not stop it (the browser walk over all pages saw it); the joiner does, invisibly.
    unescaped = re.sub(r"\\(.)", r"\1", md(name))
    assert broken in unescaped and unescaped.replace(WORD_JOINER, "") == name
    assert not re.search(r"(?i)(https?://|www(?=\.))|[-.\w+]+@", unescaped)


"""User strings as text inside Markdown: the one escaping helper every screen uses.

Folder, file, model, data set and run names come from users, and the run history is shared:
a run named ``[Session expired](https:evil.example)`` must not become a live link for everyone
who opens History. Streamlit renders Markdown (GitHub's flavour) in ``st.markdown``,
``st.caption``, ``st.info/warning/error``, labels and help texts, so a name put there is
escaped first: every ASCII punctuation character gets a backslash (CommonMark lets any of them
be escaped), and line breaks become spaces so a name cannot start a heading or a list.

Escapes do not stop GitHub's bare links: Streamlit's renderer (remark-gfm) finds ``www.x``,
``https://x`` and ``a@b.c`` in the text *after* escapes are resolved (seen in Chromium: an
escaped ``www\\.evil\\.example`` was still a live link). So a WORD JOINER (U+2060: invisible,
never a line break) goes before the dot, colon or at sign that would start one, which breaks the
pattern while the name reads the same. Prefer widgets that never render Markdown (``st.text``,
``st.code``, dataframe cells) where they fit.
"""

from __future__ import annotations

import re
import string

_ESCAPES = {ord(c): "\\" + c for c in string.punctuation}
_ESCAPES.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})


#: An invisible character that joins words (never breaks a line): it keeps bare links from forming.
WORD_JOINER = "\u2060"
#: Where GitHub's bare-link patterns (``www.``, ``http(s)://``, ``local@domain``) would start.
_BARE_LINK_STARTS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=http)(?=:)|(?<=https)(?=:)|(?=@)")


def md(value: object) -> str:
    """``value`` as Markdown that shows exactly its characters (no links, emphasis or HTML)."""
    return _BARE_LINK_STARTS.sub(WORD_JOINER, str(value)).translate(_ESCAPES)

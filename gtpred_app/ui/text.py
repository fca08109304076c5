"""User strings as text inside Markdown: the one escaping helper every screen uses.

Folder, file, model, data set and run names come from users, and the run history is shared:
a run named ``[Session expired](https:evil.example)`` must not become a live link for everyone
who opens History. Streamlit renders Markdown (GitHub's flavour) in ``st.markdown``,
``st.caption``, ``st.info/warning/error``, labels and help texts, so a name put there is
escaped first: every ASCII punctuation character gets a backslash (CommonMark lets any of them
be escaped), which also breaks GFM's bare-URL autolinks (``https\\:`` and ``www\\.`` no longer
match), and line breaks become spaces so a name cannot start a heading or a list. Prefer widgets
that never render Markdown (``st.text``, ``st.code``, dataframe cells) where they fit.
"""

from __future__ import annotations

import string

_ESCAPES = {ord(c): "\\" + c for c in string.punctuation}
_ESCAPES.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})


def md(value: object) -> str:
    """``value`` as Markdown that shows exactly its characters (no links, emphasis or HTML)."""
    return str(value).translate(_ESCAPES)

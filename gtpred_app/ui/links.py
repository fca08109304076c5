"""Where each screen is: its script (for ``st.switch_page`` / ``st.page_link``) and its address
(for links people share).

Script paths are absolute, so switching pages works the same whether the app runs from the
checkout (``streamlit run app.py``) or from an installed copy (``gtpred app``). Addresses carry
only stored ids and file names (``/mispredictions?run=12&file=Class_3/img_7.png``), so a link
opens the same run and image on a restarted server; they include the server's
``server.baseUrlPath``, so they work behind a reverse proxy too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping
from urllib.parse import quote, urlencode, urlsplit

import streamlit as st

SCREENS = Path(__file__).resolve().parents[1] / "screens"

#: The screen every bare address opens (it has no path of its own).
DEFAULT_SCREEN = "evaluate"

#: The query parameters of the addresses: a stored run; a file of it (relative to its images);
#: Compare's two stored runs; a stored training and one of its epochs.
RUN, FILE, RUN_A, RUN_B, TRAINING, EPOCH = "run", "file", "a", "b", "training", "epoch"


def screen(name: str) -> str:
    """The script of screen ``name`` (e.g. ``"results"``)."""
    path = SCREENS / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"no screen named {name!r} in {SCREENS}")
    return str(path)


def url_path(name: str) -> str:
    """The address path of screen ``name`` (navigation pins each page to it)."""
    screen(name)  # an unknown screen fails here, not as a dead link
    return "" if name == DEFAULT_SCREEN else name


def build_url(origin: str, base_path: str, name: str, params: Mapping[str, object] | None = None) -> str:
    """``origin`` + ``base_path`` + screen ``name`` + the query ``params`` (None values left out),
    every value URL-encoded (a file may be named ``a b&c=#?.png``)."""
    path = "/".join(part for part in (base_path.strip("/"), url_path(name)) if part)
    query = urlencode(
        {key: str(value) for key, value in (params or {}).items() if value is not None}, safe="/", quote_via=quote
    )
    return f"{origin.rstrip('/')}/{path}" + (f"?{query}" if query else "")


def origin() -> str:
    """``scheme://host[:port]`` as the user's browser reaches this server: from the page's own
    address (``st.context.url``), else the request's Host header, else this server's port."""
    url = st.context.url
    if url:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"
    headers = st.context.headers or {}
    host = headers.get("X-Forwarded-Host") or headers.get("Host")
    if host:
        return f"{headers.get('X-Forwarded-Proto') or 'http'}://{host}"
    return f"http://localhost:{st.get_option('server.port')}"


def page_url(name: str, **params: object) -> str:
    """The full address of screen ``name`` with ``params``, as a user would share it."""
    return build_url(origin(), st.get_option("server.baseUrlPath") or "", name, params)


def copy_link(url: str, key: str, label: str = "Copy link") -> None:
    """A small "Copy link" control: the address in a box with Streamlit's copy button."""
    with st.popover(label, icon=":material/link:", key=key):
        st.code(url, language=None, wrap_lines=True)
        st.caption("Copy it with the button at the right of the box. Anyone who can open this server can open it.")

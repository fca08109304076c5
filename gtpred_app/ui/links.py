"""Where each screen's script is, as a path Streamlit accepts from any entry script.

Paths are absolute, so ``st.switch_page`` / ``st.page_link`` work the same whether the app runs
from the checkout (``streamlit run app.py``) or from an installed copy (``gtpred app``).
"""

from __future__ import annotations

from pathlib import Path

SCREENS = Path(__file__).resolve().parents[1] / "screens"


def screen(name: str) -> str:
    """The script of screen ``name`` (e.g. ``"results"``)."""
    path = SCREENS / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"no screen named {name!r} in {SCREENS}")
    return str(path)

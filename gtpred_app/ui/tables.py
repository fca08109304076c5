"""Tables as the pages lay them out: pages of rows, and the run history with short, zoned dates.

No streamlit here (pandas only), so it is tested without a session.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

if TYPE_CHECKING:
    from gtpred_core.store import StoredRun

#: Columns of the history table, newest run first.
HISTORY_COLUMNS = ("id", "name", "created", "status", "model", "images", "n_images", "accuracy", "top5")


def page_count(n_rows: int, page_size: int) -> int:
    return max(1, -(-n_rows // page_size))


def page_of(table: pd.DataFrame, page: int, page_size: int) -> pd.DataFrame:
    """Rows of 1-based ``page`` (clamped to the last page), index reset to 0..page_size-1."""
    page = min(max(1, page), page_count(len(table), page_size))
    start = (page - 1) * page_size
    return table.iloc[start : start + page_size].reset_index(drop=True)


def when(created_at: str) -> str:
    """``2025-11-23T20:05:11+00:00`` as ``2025-11-23 20:05 UTC`` (the store writes UTC)."""
    return created_at.replace("T", " ")[:16] + " UTC" if created_at else ""


def history_table(stored: Sequence["StoredRun"]) -> pd.DataFrame:
    """One row per stored run with its key numbers, in the order given (the store's: newest first).

    ``model`` and ``images`` are the file and folder names: server paths are not shown to users.
    """
    return pd.DataFrame(
        [
            {
                "id": s.id,
                "name": s.name,
                "created": when(s.created_at),
                "status": s.status,
                "model": Path(s.model).name,
                "images": Path(s.images).name,
                "n_images": s.n_images,
                "accuracy": s.accuracy,
                "top5": s.top5_accuracy,
            }
            for s in stored
        ],
        columns=list(HISTORY_COLUMNS),
    )


def accuracy_intervals(stored: Sequence["StoredRun"]) -> list[str]:
    """Each stored run's accuracy interval as text (``90.2–94.0%``; "" without an accuracy), in
    the order given: the history table's "95% CI" column."""
    from gtpred_core.metrics import interval_text, rate_interval

    return [interval_text(rate_interval(s.accuracy, s.n_images)) for s in stored]

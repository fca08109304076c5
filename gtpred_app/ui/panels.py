"""Page parts more than one screen draws: the run's one-line description and where it is stored,
its warnings, downloads, one image shown large with its top-5 probabilities and its link, and the
clickable tables of files and confusion cells."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from gtpred_core import GtpredError, Run, predictions_csv
from gtpred_core.diagnostics import WarningCode
from gtpred_core.export import shareable_summary_json

from . import charts, links, state
from .errors import without_server_paths
from .images import enlarged_image
from .text import md

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator
    from streamlit.elements.lib.column_types import ColumnConfig

#: A short headline per warning code; the core's message follows it.
WARNING_TITLES = {
    WarningCode.CLASS_ORDER_MISMATCH: "The class order looks wrong",
    WarningCode.PREDICTION_COLLAPSE: "The model predicts nearly one class for everything",
    WarningCode.LOGITS_OUTPUT: "The model outputs logits",
    WarningCode.EMPTY_CLASS: "A class folder is empty",
    WarningCode.SKIPPED_FILES: "Some images could not be read",
    WarningCode.IGNORED_FILES: "Some files are not images",
    WarningCode.CANCELLED: "The run was cancelled",
}
_INFO_CODES = {WarningCode.LOGITS_OUTPUT, WarningCode.IGNORED_FILES}


def run_caption(run: Run) -> str:
    """The run in one line of Markdown: model, images, class order, preprocessing. The names in
    it are the users' (escaped: text, never links) and only names, never server paths."""
    info = run.info
    parts = [
        f"Model **{md(Path(info.model).name)}**",
        f"images **{md(Path(info.images).name)}**",
        f"class order **{md(info.class_order_source)}**",
        f"preprocessing **{md(info.preprocess)}**",
        f"re-labelled from run #{info.relabelled_from}" if info.relabelled_from is not None else "",
        # what the seconds measure (a re-labelled run keeps the time of the run it re-reads)
        f"evaluated in {info.seconds:.1f} s (reading, decoding and predicting {run.n_images:,} images)" if info.seconds else "",
    ]
    return " · ".join(p for p in parts if p)


def run_warnings(run: Run) -> None:
    """The run's warnings, each under its headline; the core's message names classes and files
    (users' names), so it is shown escaped: bold headline ours, the rest plain text."""
    for warning in run.warnings:
        title = WARNING_TITLES.get(warning.code, warning.code)
        show = st.info if warning.code in _INFO_CODES else st.warning
        text = md(without_server_paths(warning.message))
        if not warning.message.lower().startswith(title.lower()):
            text = f"**{md(title)}.** {text}"
        show(text, icon=":material/warning:")


def downloads(run: Run, key: str) -> None:
    """Predictions CSV and summary JSON, made only when clicked (10,000 rows stay cheap). The
    summary names the model and images relative to the data root (an upload by its own name):
    a file people pass around never shows the server's layout."""
    left, right = st.columns(2)
    left.download_button(
        "Predictions CSV",
        data=lambda: predictions_csv(run),
        file_name="predictions.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}-csv",
        width="stretch",
    )
    right.download_button(
        "Summary JSON",
        data=lambda: shareable_summary_json(run, state.data_root()),
        file_name="summary.json",
        mime="application/json",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}-json",
        width="stretch",
    )


def image_detail(run: Run, rel: str, link: str | None = None, key: str = "image") -> None:
    """One file large, its true and predicted class, its top-5 probabilities, and a "Copy link"
    to it (``link``, when the run has one: a run the store could not save has none)."""
    index = run.file_position(rel)
    if index is None:
        st.info("That file is not part of this run.")
        return
    large_image(run, rel, link, key=key)
    prediction(run, index)


def opened_file(run: Run, run_id: int | None, screen: str) -> str | None:
    """The file open on ``screen`` (see ``state.selected_file``), shown with ``image_detail`` and a
    link to it on this screen; None, drawing nothing, when no file is open."""
    selected = state.selected_file(run, scope=screen)
    if selected is not None:
        link = links.page_url(screen, **{links.RUN: run_id, links.FILE: selected}) if run_id is not None else None
        image_detail(run, selected, link, key=f"{screen}-image")
    return selected


def large_image(run: Run, rel: str, link: str | None = None, key: str = "image") -> None:
    """The file ``rel`` of ``run`` (under its images root), enlarged, with its name above and,
    given its ``link``, a "Copy link" control."""
    st.text(rel)  # a file name is text, never Markdown
    if link is not None:
        links.copy_link(link, key=f"{key}-link")
    try:
        st.image(enlarged_image(run.image_path(rel), 256), width=256)
    except OSError:
        st.warning("The image file can no longer be read on the server.")


def prediction(run: Run, index: int, who: str = "") -> None:
    """File ``index`` of ``run``: true class, predicted class with its confidence, top-5 bars.

    ``who`` names the run when several are shown side by side ("Run A", "Epoch 3").
    """
    top = run.top_k_table(index, k=5)
    true_name = run.class_names[int(run.y_true[index])]
    pred_name = run.class_names[int(run.y_pred[index])]
    confidence = float(run.confidence[index])
    verdict = "right" if true_name == pred_name else "wrong"
    lead = f"**{who}:** " if who else ""
    st.markdown(
        f"{lead}True class **{md(true_name)}** · predicted **{md(pred_name)}** ({confidence:.1%}, {verdict})"
    )
    st.caption("Top-5 probabilities" if len(top) == 5 else f"Probabilities (all {len(top)} classes)")
    st.altair_chart(charts.top_k_bars(top), width="stretch", key=f"top-k-{who}" if who else None)


def percent_column(label: str = "confidence", help: str | None = "The model's probability for the class it predicted.") -> "ColumnConfig":
    """A probability (0..1) as a bar and its percentage ("99.35%"), narrow: it fits beside a
    thumbnail and a file name in half a page (a wider bar pushed the number out of sight)."""
    return st.column_config.ProgressColumn(label, format="percent", min_value=0, max_value=1, width="small", help=help)


def matrix_frame(class_names: Sequence[str]) -> "DeltaGenerator":
    """A frame for a confusion matrix over ``class_names`` (``with matrix_frame(names): ...``):
    as tall as the matrix up to ``charts.MATRIX_FRAME_MAX``, beyond which it scrolls (a note says
    so); it scrolls sideways too when the matrix is wider than its column. A frame of fixed height
    is what Streamlit lets scroll (``overflow: auto``)."""
    height = charts.matrix_height(class_names)
    if height > charts.MATRIX_FRAME_MAX:
        st.caption(
            f"{len(class_names)} classes: scroll inside the matrix, down and sideways, to see all of it; "
            "hover a cell for its class names."
        )
    return st.container(height=min(height, charts.MATRIX_FRAME_MAX), border=False)


def clicked_confusion_cell(run: Run, key: str) -> tuple[str, str] | None:
    """Draw the run's clickable confusion heatmap; return the (true, predicted) cell clicked.

    A matrix taller than ``MATRIX_FRAME_MAX`` (many classes) scrolls inside its frame, so the rest
    of the page stays in reach."""
    with matrix_frame(run.class_names):
        event = st.vega_lite_chart(
            heatmap_spec(tuple(run.class_names), run.confusion_counts()), on_select="rerun", key=key, width="content"
        )
    picked = event["selection"].get(charts.CELL) or []
    return (picked[0]["true"], picked[0]["predicted"]) if picked else None


# ----- the confusion view of a run with many classes (issue 17: 1,000 classes) -------------------
#: Above this many classes the Results page shows the top confusions, a class picker and the
#: matrix of the chosen classes instead of the full matrix. Up to 100 classes the whole matrix is
#: drawn and scrolls in its frame, readable cell by cell (tests/browser/test_many_classes.py);
#: 1,000 classes would be a million cells to send and draw.
MANY_CLASSES = 100
#: Rows of the top confusions list.
TOP_CONFUSIONS = 20
#: The picker starts with at most this many classes: those of the top confusions.
PICKED_CLASSES = 15
#: The restricted matrix's last column: a chosen true class predicted as a class not chosen.
OTHER = "(other)"


@dataclass(frozen=True)
class ConfusionCell:
    """A clicked cell: true class, predicted class (or ``OTHER``) and the files in it."""

    true: str
    predicted: str
    files: pd.DataFrame


def confusion_view(run: Run, key: str) -> ConfusionCell | None:
    """The run's confusion view; the cell clicked last, with its files, or None.

    Up to ``MANY_CLASSES`` classes the full clickable matrix; above, ``confusion_explorer``."""
    if len(run.class_names) <= MANY_CLASSES:
        cell = clicked_confusion_cell(run, key=key)
        return None if cell is None else ConfusionCell(*cell, run.cell_files(*cell))
    return confusion_explorer(run, key)


def default_picked_classes(top: Sequence[tuple[str, str, int]], limit: int = PICKED_CLASSES) -> list[str]:
    """The classes of the top confusions (true, then predicted, most confused first), each once,
    at most ``limit``: what the class picker starts with."""
    picked: list[str] = []
    for true, predicted, _ in top:
        for name in (true, predicted):
            if name not in picked and len(picked) < limit:
                picked.append(name)
    return picked


def confusion_explorer(run: Run, key: str) -> ConfusionCell | None:
    """For a run with many classes: the top confusions (click a row for its images), a searchable
    class picker (the top confusions' classes to start with) and the matrix of the chosen classes
    with an ``OTHER`` column (click a cell for its images). Returns the cell clicked last.

    Each part costs one pass over the files (``top_confusions``, ``confusion_among``), never the
    full matrix, so a click answers in well under 300 ms at 1,000 classes and 100,000 images."""
    chosen_key, top_key = f"{key}-classes", f"{key}-top"
    top = run.top_confusions(TOP_CONFUSIONS)
    st.subheader("Top confusions")
    if not top:
        st.info("No mistakes: every image was predicted as its true class.")
    else:
        rows = pd.DataFrame(top, columns=["true", "predicted", "images"])
        event = st.dataframe(
            rows,
            hide_index=True,
            on_select="rerun",
            selection_mode=["single-cell", "single-row"],
            key=top_key,
            column_config={"true": "True class", "predicted": "Predicted class", "images": st.column_config.NumberColumn("Images")},
        )
        row = state.clicked_row(top_key, event["selection"])
        if row is not None and row < len(top):
            st.session_state[key + "-cell"] = (id(run), top[row][0], top[row][1])
    st.subheader("Matrix of chosen classes")
    chosen = st.multiselect(
        "Classes in the matrix",
        run.class_names,
        default=default_picked_classes(top),
        key=chosen_key,
        placeholder="Type to search the classes",
        help=f"Rows and columns of the matrix below; its last column, {OTHER}, counts the images of a "
        "row's class predicted as any class not chosen, so each row sums to that class's images.",
    )
    if chosen:
        columns, counts = run.confusion_among(chosen)
        with matrix_frame(columns):
            chart = st.vega_lite_chart(heatmap_spec(columns, counts), on_select="rerun", key=key, width="content")
        picked = tuple((p["true"], p["predicted"]) for p in chart["selection"].get(charts.CELL) or [])
        seen = st.session_state.setdefault("_seen_selections", {})
        if picked != seen.get(key, ()):
            seen[key] = picked
            st.session_state[key + "-cell"] = (id(run), *picked[0]) if picked else None
    else:
        st.info("Choose classes above to draw their matrix.")
    cell = st.session_state.get(key + "-cell")
    if cell is None or cell[0] != id(run):  # a cell of the run shown before (the loaded run is cached: same object)
        return None
    _, true, predicted = cell
    if predicted == OTHER:
        files = run.mispredictions([true])
        files = files[~files["predicted"].isin(chosen)].reset_index(drop=True)
    else:
        files = run.cell_files(true, predicted)
    return ConfusionCell(true, predicted, files)


@st.cache_data(max_entries=64, show_spinner=False)
def heatmap_spec(columns: tuple[str, ...], counts: np.ndarray) -> dict:
    """A confusion matrix's Vega-Lite spec (``charts.confusion_heatmap``), kept per (classes,
    counts): building and validating the Altair chart costs 50-90 ms, which every click on the
    page would pay again. Validated once, when first built (``tests/app/test_charts.py`` checks
    the chart itself). Up to ``MANY_CLASSES``² cells: Altair's 5,000-row guard is lifted here."""
    with alt.data_transformers.enable("default", max_rows=None):
        return charts.confusion_heatmap(restricted_cells(columns, counts), columns).to_dict()


def restricted_cells(columns: Sequence[str], counts: "np.ndarray") -> pd.DataFrame:
    """``Run.confusion_among``'s matrix in the long form ``charts.confusion_heatmap`` draws:
    rows = the chosen true classes, columns = ``columns`` (the chosen classes, then ``OTHER``)."""
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    true_idx, pred_idx = np.indices(counts.shape)
    names = np.asarray(columns, dtype=object)
    return pd.DataFrame(
        {
            "true": names[true_idx.ravel()],
            "predicted": names[pred_idx.ravel()],
            "count": counts.ravel().astype(int),
            "share": share.ravel(),
        }
    )


def clicked_file(shown: pd.DataFrame, columns: list[str], key: str, row_height: int, column_config: dict) -> str | None:
    """Draw a page of files (a ``file`` and a ``thumbnail`` column) one row per image; return the
    file of a row newly clicked (its file name, its thumbnail, any cell, or its checkbox), else
    None (a selection kept from an earlier rerun is not new)."""
    event = st.dataframe(
        shown[columns],
        hide_index=True,
        row_height=row_height,
        height=row_height * len(shown) + 38,
        on_select="rerun",
        selection_mode=["single-cell", "single-row"],
        key=key,
        column_config={"thumbnail": st.column_config.ImageColumn("image", width="small"), **column_config},
    )
    row = state.clicked_row(key, event["selection"])
    return shown["file"][row] if row is not None and row < len(shown) else None


def stored_status(run_id: int | None, screen: str) -> None:
    """Where the shown run is stored, with a "Copy link" to this screen of it; or, for a run the
    store could not save, why not and what that means."""
    if run_id is not None:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.caption(f"Saved in the history as run #{run_id}.")
        with right:
            links.copy_link(links.page_url(screen, **{links.RUN: run_id}), key=f"run-link-{screen}")
        return
    unsaved = state.unsaved_run()
    if unsaved is None:
        return
    error = unsaved.error
    if isinstance(error, GtpredError):
        reason = md(without_server_paths(error.message, error.path))
    else:
        reason = "the run store failed (the reason is in the server's log)."
    st.warning(
        f"**Not saved in the history:** {reason} The results stay in this session until it ends "
        "and have no link; download them below to keep them.",
        icon=":material/warning:",
    )

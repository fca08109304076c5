"""The Evaluate page's choosers: where the model, the images and the class order come from.

Each returns a path on the server (or None until the user has chosen), whatever the source:
a file picked under the data root, or an upload saved once per content by the core's upload
cache (``gtpred_core.uploads``), so re-running the page never re-extracts and the model cache
keys on the bytes. Only widgets live here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import streamlit as st

from gtpred_core import ImageFolder, read_class_order_file
from gtpred_core.model import find_model_files
from gtpred_core.sources.labels_csv import LabelsCsvReport, find_labels_csvs, locate_images_root, read_labels_csv
from gtpred_core.uploads import (
    list_subfolders,
    resolve_inside_root,
    save_uploaded_file,
    save_uploaded_folder,
    save_uploaded_model,
    scratch_folder_of,
    unpack_uploaded_zip,
)

from . import state
from .errors import errors_shown
from .text import md

log = logging.getLogger("gtpred.app")

#: Said instead of an error when the server has no data root: uploads work without one.
NO_DATA_ROOT = (
    "This server has no shared folder of data set up, so there is nothing to browse here. "
    "Upload the files instead (the options above); the people who run the server can set a "
    "shared folder up (see \"Deploying on an internal server\" in gtpred's README)."
)


@lru_cache(maxsize=8)
def _log_missing_data_root(root: str) -> None:
    """Tell the server's admin once per path (the page only says uploads work)."""
    log.warning(
        "The data root %s does not exist: the Evaluate page offers uploads only. Set "
        "GTPRED_DATA_ROOT to the folder that holds the image folders and models.",
        root,
    )


def has_data_root() -> bool:
    """True when the server has a data root to browse (else the page opens on uploads)."""
    root = state.data_root()
    if root.is_dir():
        return True
    _log_missing_data_root(str(root))
    return False


# ----- the model ---------------------------------------------------------------------------------
def choose_model(second: bool = False) -> Path | None:
    """Upload a model file / SavedModel zip, or pick a model under the data root.

    ``second``: the chooser of a second model on the same page (its own widgets and labels).
    """
    key_prefix, which = ("second_", "second model") if second else ("", "model")
    source = st.radio(
        f"Where is the {which}?",
        ["Upload a file", "On the server"],
        horizontal=True,
        key=f"{key_prefix}model_source",
    )
    if source == "Upload a file":
        uploaded = st.file_uploader(
            f"{which.capitalize()} file: .keras or .h5, or a .zip of a TF SavedModel folder",
            type=["keras", "h5", "hdf5", "zip"],
            key=f"{key_prefix}model_upload",
        )
        if uploaded is None:
            return None
        with errors_shown():
            return save_uploaded_model(uploaded.name, uploaded.getvalue())
        return None
    if not has_data_root():
        st.info(NO_DATA_ROOT, icon=":material/upload_file:")
        return None
    root = state.data_root()
    models = find_model_files(root)
    if not models:
        st.info("No .keras, .h5 or SavedModel was found in the server's shared folder.")
        return None
    choice = st.selectbox(f"{which.capitalize()} under the data root", models, index=None, key=f"{key_prefix}model_server", placeholder="Choose a model")
    if choice is None:
        return None
    with errors_shown():
        return resolve_inside_root(choice, root)
    return None


# ----- the images --------------------------------------------------------------------------------
def _open_folder(rel: str) -> None:
    st.session_state["browse_rel"] = rel
    st.session_state["browse_child"] = None


def _folder_browser() -> Path | None:
    if not has_data_root():
        st.info(NO_DATA_ROOT, icon=":material/upload_file:")
        return None
    root = state.data_root()
    rel = st.session_state.setdefault("browse_rel", "")
    with errors_shown():
        children = list_subfolders(root, rel)
        crumbs = " / ".join(["data root", *filter(None, rel.split("/"))])
        st.markdown(f"Folder: **{md(crumbs)}**")
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        left.selectbox(
            "Open a sub-folder",
            children,
            index=None,
            key="browse_child",
            placeholder="Choose the folder whose sub-folders are the classes",
            format_func=lambda path: path.rsplit("/", 1)[-1],
            on_change=lambda: st.session_state["browse_child"]
            and _open_folder(st.session_state["browse_child"]),
        )
        right.button(
            "Up",
            icon=":material/arrow_upward:",
            disabled=not rel,
            on_click=_open_folder,
            args=(rel.rsplit("/", 1)[0] if "/" in rel else "",),
            key="browse_up",
        )
        if not rel:
            return None  # the data root holds data sets, not classes: open one first
        return resolve_inside_root(rel, root)
    return None


def choose_images() -> Path | None:
    """Browse to a folder under the data root, or upload a zip or a folder of class folders."""
    options = ["A folder on the server", "Upload a .zip", "Upload a folder"]
    source = st.radio(
        "Where are the images?",
        options,
        index=0 if has_data_root() else 1,  # no shared folder: open on upload, not on a dead end
        horizontal=True,
        key="images_source",
    )
    if source == "A folder on the server":
        return _folder_browser()
    if source == "Upload a .zip":
        uploaded = st.file_uploader(
            "A .zip of the image folder (one sub-folder per class)", type=["zip"], key="images_zip"
        )
        if uploaded is None:
            return None
        with errors_shown(), st.spinner("Unpacking the zip…"):
            return unpack_uploaded_zip(uploaded.getvalue())
        return None
    files = st.file_uploader(
        "The image folder (one sub-folder per class)",
        accept_multiple_files="directory",
        key="images_dir",
    )
    if not files:
        return None
    with errors_shown(), st.spinner("Saving the uploaded folder…"):
        return save_uploaded_folder([(f.name, f.getvalue()) for f in files])
    return None


# ----- the class order ---------------------------------------------------------------------------
CLASS_ORDERS = {
    "keras": "Keras folder order (plain string sort: Class_10 before Class_2)",
    "natural": "Natural order (Class_2 before Class_10)",
    "file": "The training-order file (labels.txt or class_indices JSON)",
}


def choose_class_order() -> str | None:
    """``keras``, ``natural``, or the saved path of an uploaded labels file (None until given)."""
    choice = st.radio(
        "Which output index means which class?",
        list(CLASS_ORDERS),
        format_func=CLASS_ORDERS.get,
        key="class_order",
        help="Use the order the model was trained with. If unsure, keep Keras' order: the "
        "results will say when another order explains the predictions better.",
    )
    if choice != "file":
        return choice
    uploaded = st.file_uploader(
        "labels.txt (one class per line, in output order) or class_indices JSON {name: index}",
        type=["txt", "json"],
        key="labels_upload",
    )
    if uploaded is None:
        return None
    with errors_shown():
        return str(save_uploaded_file(uploaded.name, uploaded.getvalue(), "labels"))
    return None


# ----- a labels CSV instead of class folders -----------------------------------------------------
LAYOUTS = {
    "folders": "One sub-folder per class",
    "csv": "A labels CSV (a filename and a class column)",
}


@dataclass(frozen=True)
class LabelsCsvChoice:
    """A labels CSV on the server and the folder its paths start from."""

    csv: Path
    images: Path


def labelled_by_csv() -> bool:
    """Whether the images are labelled by a CSV (Keras' flow_from_dataframe layout)."""
    layout = st.radio("How are the images labelled?", list(LAYOUTS), format_func=LAYOUTS.get, horizontal=True, key="images_layout")
    return layout == "csv"


def choose_labels_csv() -> LabelsCsvChoice | None:
    """A CSV under the data root (paths from its own folder), or an uploaded CSV with a zip of
    the images (paths from the zip's top, or the folder it wraps)."""
    source = st.radio("Where is the CSV?", ["On the server", "Upload the CSV and a .zip of the images"], horizontal=True, key="labels_csv_source")
    if source == "On the server":
        if not has_data_root():
            st.info(NO_DATA_ROOT, icon=":material/upload_file:")
            return None
        root = state.data_root()
        found = find_labels_csvs(root)
        if not found:
            st.info("No .csv file under the server's shared folder.")
            return None
        choice = st.selectbox("Labels CSV under the data root (its paths start from its own folder)", found, index=None, key="labels_csv_server", placeholder="Choose a CSV")
        if choice is None:
            return None
        with errors_shown():
            csv_path = resolve_inside_root(choice, root)
            return LabelsCsvChoice(csv_path, csv_path.parent)
        return None
    uploaded_csv = st.file_uploader("Labels CSV", type=["csv"], key="labels_csv_upload")
    uploaded_zip = st.file_uploader("A .zip of the images the CSV names", type=["zip"], key="labels_csv_zip")
    if uploaded_csv is None or uploaded_zip is None:
        return None
    with errors_shown(), st.spinner("Unpacking the zip…"):
        csv_path = save_uploaded_file(uploaded_csv.name, uploaded_csv.getvalue(), "labels-csv")
        top = scratch_folder_of(unpack_uploaded_zip(uploaded_zip.getvalue()))
        return LabelsCsvChoice(csv_path, locate_images_root(csv_path, top))
    return None


@st.cache_data(ttl=30, max_entries=16, show_spinner="Reading the labels CSV…")
def _read_labels(csv_path: str, images: str, class_list: tuple[str, ...] | None) -> tuple[ImageFolder, LabelsCsvReport]:
    return read_labels_csv(csv_path, images, class_names=class_list)


def labels_csv_folder(choice: LabelsCsvChoice, order_spec: str | None = None) -> ImageFolder:
    """The CSV read as the evaluation's file list; its report shown as text (never Markdown).

    Without ``order_spec`` the whole report is shown. With a class-order file, its classes are
    the CSV's class list (numeric labels become indices into it) and what that changes about
    the labels is shown; with ``keras``/``natural`` nothing is shown again.
    """
    class_list = None if order_spec in (None, "keras", "natural") else read_class_order_file(order_spec)
    folder, report = _read_labels(str(choice.csv), str(choice.images), class_list)
    if order_spec in ("keras", "natural"):
        return folder
    lines = report.label_lines() if class_list is not None else report.lines()
    if not report.clean and lines:
        st.warning("Check what was found in the labels CSV:", icon=":material/table:")
    if lines:
        st.text("\n".join(lines))
    return folder

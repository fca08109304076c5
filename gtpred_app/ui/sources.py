"""The Evaluate page's choosers: where the model, the images and the class order come from.

Each returns a path on the server (or None until the user has chosen), whatever the source:
a file picked under the data root, or an upload saved under the scratch area by its content
hash (so re-running the page never re-extracts, and the model cache keys on the bytes).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from gtpred_core import ImageFolder, ModelError, read_class_order_file, views
from gtpred_core.sources.labels_csv import LabelsCsvReport, find_labels_csvs, locate_images_root, read_labels_csv
from gtpred_core.errors import UploadError
from gtpred_core.settings import get_settings
from gtpred_core.uploads import extract_zip_safely, list_subfolders, prune_scratch, resolve_inside_root, scratch_dir, scratch_folder_of

from . import state
from .errors import errors_shown

MB = 1024 * 1024


class _UploadStore:
    """Content hash -> where that upload was saved or extracted (shared by sessions)."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}
        self.lock = threading.Lock()


@st.cache_resource
def _upload_store() -> _UploadStore:
    return _UploadStore()


def _zip_limits() -> dict[str, float]:
    settings = get_settings()
    return {
        "max_total_bytes": settings.max_upload_mb * MB,
        "max_files": settings.max_zip_files,
        "max_ratio": settings.max_zip_ratio,
    }


def _stored(kind: str, digest: str, save) -> Path:
    """``save(folder) -> Path`` once per (kind, content); later calls return the saved path."""
    store = _upload_store()
    key = f"{kind}-{digest}"
    with store.lock:
        path = store.paths.get(key)
        if path is not None and path.exists():
            os.utime(scratch_folder_of(path))  # in use again: not old enough to prune
            return path
        prune_scratch(get_settings().scratch_ttl_hours * 3600)  # free uploads nobody used for long
        path = save(scratch_dir(kind + "-"))
        store.paths[key] = path
        return path


def _digest(*chunks: bytes) -> str:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(len(chunk).to_bytes(8, "little"))
        sha.update(chunk)
    return sha.hexdigest()[:24]


def _plain_name(name: str) -> str:
    """An uploaded file's own name without any folder part (browsers may send one)."""
    return Path(name.replace("\\", "/")).name or "upload"


def _save_file(uploaded: UploadedFile, kind: str) -> Path:
    data = uploaded.getvalue()

    def save(folder: Path) -> Path:
        target = folder / _plain_name(uploaded.name)
        target.write_bytes(data)
        return target

    return _stored(kind, _digest(data, uploaded.name.encode()), save)


# ----- the model ---------------------------------------------------------------------------------
def _savedmodel_in(folder: Path) -> Path:
    """The SavedModel folder (or .keras/.h5 file) inside an extracted zip."""
    found = views.find_model_files(folder, limit=2)
    if not found:
        raise ModelError(
            "The zip holds no model: no saved_model.pb folder and no .keras/.h5 file.",
            "Zip the SavedModel folder itself (the one with saved_model.pb and variables/).",
        )
    return folder / found[0]


def _model_from_upload(uploaded: UploadedFile) -> Path:
    if not uploaded.name.lower().endswith(".zip"):
        return _save_file(uploaded, "model")
    data = uploaded.getvalue()
    folder = _stored(
        "model-zip",
        _digest(data),
        lambda dest: extract_zip_safely(io.BytesIO(data), dest, **_zip_limits()),
    )
    model = _savedmodel_in(folder)
    if model.is_dir() and not get_settings().allow_savedmodel:
        # A .keras/.h5 loads in Keras' safe mode; a SavedModel's graph is code, run on load.
        raise UploadError(
            "This server does not accept uploaded TF SavedModels: loading one runs the "
            "TensorFlow graph it contains, which is code from the upload.",
            "Upload the model as a .keras or .h5 file, or ask the server's operator to set "
            "GTPRED_ALLOW_SAVEDMODEL=1 if everyone who can reach it is trusted.",
        )
    return model


def choose_model() -> Path | None:
    """Upload a model file / SavedModel zip, or pick a model under the data root."""
    source = st.radio(
        "Where is the model?",
        ["Upload a file", "On the server"],
        horizontal=True,
        key="model_source",
    )
    if source == "Upload a file":
        uploaded = st.file_uploader(
            "Model file: .keras or .h5, or a .zip of a TF SavedModel folder",
            type=["keras", "h5", "hdf5", "zip"],
            key="model_upload",
        )
        if uploaded is None:
            return None
        with errors_shown():
            return _model_from_upload(uploaded)
        return None
    root = state.data_root()
    models = views.find_model_files(root) if root.is_dir() else []
    if not models:
        st.info(f"No .keras, .h5 or SavedModel found under the data root `{root}`.")
        return None
    choice = st.selectbox("Model under the data root", models, index=None, key="model_server", placeholder="Choose a model")
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
    root = state.data_root()
    if not root.is_dir():
        st.info(f"The data root `{root}` does not exist on the server (set GTPRED_DATA_ROOT).")
        return None
    rel = st.session_state.setdefault("browse_rel", "")
    with errors_shown():
        children = list_subfolders(root, rel)
        crumbs = " / ".join(["data root", *filter(None, rel.split("/"))])
        st.markdown(f"Folder: **{crumbs}**")
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


def _images_from_zip(uploaded: UploadedFile) -> Path:
    data = uploaded.getvalue()
    return _stored(
        "images-zip",
        _digest(data),
        lambda dest: extract_zip_safely(io.BytesIO(data), dest, **_zip_limits()),
    )


def _images_from_folder_upload(files: Sequence[UploadedFile]) -> Path:
    """Write an uploaded folder through the same vetting as a zip (names, count, total size)."""
    limits = _zip_limits()
    if len(files) > limits["max_files"]:
        raise UploadError(
            f"The folder holds {len(files):,} files; at most {limits['max_files']:,} are allowed.",
            "Upload a smaller folder, or raise GTPRED_MAX_ZIP_FILES on the server.",
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as bundle:
        for uploaded in files:
            bundle.writestr(uploaded.name, uploaded.getvalue())
    data = buffer.getvalue()
    folder = _stored(
        "images-dir",
        _digest(data),
        lambda dest: extract_zip_safely(io.BytesIO(data), dest, **limits),
    )
    return folder  # extract_zip_safely already returns the folder holding the class folders


def choose_images() -> Path | None:
    """Browse to a folder under the data root, or upload a zip or a folder of class folders."""
    source = st.radio(
        "Where are the images?",
        ["A folder on the server", "Upload a .zip", "Upload a folder"],
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
            return _images_from_zip(uploaded)
        return None
    files = st.file_uploader(
        "The image folder (one sub-folder per class)",
        accept_multiple_files="directory",
        key="images_dir",
    )
    if not files:
        return None
    with errors_shown(), st.spinner("Saving the uploaded folder…"):
        return _images_from_folder_upload(files)
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
    return str(_save_file(uploaded, "labels"))


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
        root = state.data_root()
        found = find_labels_csvs(root) if root.is_dir() else []
        if not found:
            st.info("No .csv file under the data root.")
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
        csv_path = _save_file(uploaded_csv, "labels-csv")
        top = scratch_folder_of(_images_from_zip(uploaded_zip))
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

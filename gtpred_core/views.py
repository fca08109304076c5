"""Tables and small views of a Run, ready to draw: the app's pages call these and only render.

UI-free (pandas and PIL, never streamlit), so every number a page shows is computed, and
tested, here. Axis convention everywhere: rows = true class, columns = predicted class.
"""

from __future__ import annotations

import base64
import io
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .class_order import keras_order, natural_order
from .folder import IMAGE_EXTENSIONS, ImageFolder
from .model import MODEL_SUFFIXES
from .run import Run

#: Column names of the mispredictions table (and of a confusion cell's files).
MISPREDICTION_COLUMNS = ("index", "file", "true", "predicted", "confidence")


# ----- metrics and the confusion matrix ---------------------------------------------------------
def per_class_table(run: Run) -> pd.DataFrame:
    """One row per class: precision, recall, F1 and support, in the order in use."""
    return pd.DataFrame(
        [
            {"class": c.label, "precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
            for c in run.metrics.per_class
        ]
    )


def confusion_cells(run: Run) -> pd.DataFrame:
    """The confusion matrix in long form: one row per (true, predicted) cell.

    ``share`` is the row-normalised share: of the images of class ``true``, the fraction
    predicted as ``predicted`` (0 for a class with no images).
    """
    names = list(run.class_names)
    matrix = np.asarray(run.metrics.confusion_matrix, dtype=np.int64).reshape(len(names), len(names))
    row_totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, row_totals, out=np.zeros(matrix.shape, dtype=float), where=row_totals > 0)
    true_idx, pred_idx = np.indices(matrix.shape)
    return pd.DataFrame(
        {
            "true": [names[i] for i in true_idx.ravel()],
            "predicted": [names[j] for j in pred_idx.ravel()],
            "count": matrix.ravel(),
            "share": share.ravel(),
        }
    )


def _rows_table(run: Run, rows: np.ndarray) -> pd.DataFrame:
    """Rows of ``run`` as the mispredictions columns, most confident first (ties: file order)."""
    confidence = run.confidence[rows]
    order = np.argsort(-confidence, kind="stable")
    rows, confidence = rows[order], confidence[order]
    names = np.asarray(run.class_names, dtype=object)
    paths = np.asarray(run.paths, dtype=object)
    return pd.DataFrame(
        {
            "index": rows.astype(np.int64),
            "file": paths[rows] if len(rows) else np.array([], dtype=object),
            "true": names[run.y_true[rows]] if len(rows) else np.array([], dtype=object),
            "predicted": names[run.y_pred[rows]] if len(rows) else np.array([], dtype=object),
            "confidence": confidence.astype(float),
        },
        columns=list(MISPREDICTION_COLUMNS),
    )


def cell_files(run: Run, true: str, predicted: str) -> pd.DataFrame:
    """The files of one confusion-matrix cell (true class ``true``, predicted ``predicted``)."""
    t = run.class_names.index(true)
    p = run.class_names.index(predicted)
    rows = np.flatnonzero((run.y_true == t) & (run.y_pred == p))
    return _rows_table(run, rows)


def mispredictions_table(
    run: Run, true_classes: Iterable[str] = (), predicted_classes: Iterable[str] = ()
) -> pd.DataFrame:
    """Every wrong prediction, most confident first; optionally only some true/predicted classes.

    An empty filter means "all classes". ``index`` is the file's position in the run.
    """
    keep = ~run.correct
    true_classes, predicted_classes = list(true_classes), list(predicted_classes)
    if true_classes:
        keep &= np.isin(run.y_true, [run.class_names.index(c) for c in true_classes])
    if predicted_classes:
        keep &= np.isin(run.y_pred, [run.class_names.index(c) for c in predicted_classes])
    return _rows_table(run, np.flatnonzero(keep))


def page_count(n_rows: int, page_size: int) -> int:
    return max(1, -(-n_rows // page_size))


def page_of(table: pd.DataFrame, page: int, page_size: int) -> pd.DataFrame:
    """Rows of 1-based ``page`` (clamped to the last page), index reset to 0..page_size-1."""
    page = min(max(1, page), page_count(len(table), page_size))
    start = (page - 1) * page_size
    return table.iloc[start : start + page_size].reset_index(drop=True)


def confidence_histogram(run: Run, bins: int = 20) -> pd.DataFrame:
    """Counts of right and wrong predictions per confidence bin (``bin_start``..``bin_end``)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    confidence = np.clip(run.confidence.astype(float), 0.0, 1.0)
    correct = run.correct
    frames = []
    for outcome, mask in (("right", correct), ("wrong", ~correct)):
        counts, _ = np.histogram(confidence[mask], bins=edges)
        frames.append(
            pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "outcome": outcome, "count": counts})
        )
    return pd.concat(frames, ignore_index=True)


def top_k_table(run: Run, index: int, k: int = 5) -> pd.DataFrame:
    """The ``k`` most probable classes for file ``index``, flagged true/predicted."""
    true_name = run.class_names[int(run.y_true[index])]
    pred_name = run.class_names[int(run.y_pred[index])]
    rows = run.top_k(index, k=min(k, len(run.class_names)))
    return pd.DataFrame(
        {
            "class": [name for name, _ in rows],
            "probability": [p for _, p in rows],
            "is_true": [name == true_name for name, _ in rows],
            "is_predicted": [name == pred_name for name, _ in rows],
        }
    )


def file_position(run: Run, rel_path: str) -> int | None:
    """The position of ``rel_path`` in the run, or None when the run has no such file."""
    try:
        return run.paths.index(rel_path)
    except ValueError:
        return None


def image_path(run: Run, rel_path: str) -> Path:
    """Absolute path of a file of the run (``rel_path`` is one of ``run.paths``)."""
    return Path(run.info.images) / rel_path


# ----- class mapping ----------------------------------------------------------------------------
def class_mapping_table(
    folder_classes: Sequence[str], counts: Sequence[int], in_use: Sequence[str]
) -> pd.DataFrame:
    """One row per class folder: its output index under Keras' folder order, natural order and
    the order in use, its image count, and ``differs`` when those indices disagree.

    A class absent from ``in_use`` (an empty folder a labels file leaves out) has no index there.
    """
    keras = {name: i for i, name in enumerate(keras_order(folder_classes))}
    natural = {name: i for i, name in enumerate(natural_order(folder_classes))}
    used = {name: i for i, name in enumerate(in_use)}
    count_of = dict(zip(folder_classes, counts))
    rows = []
    for name in keras_order(folder_classes):
        indices = {keras[name], natural[name], used.get(name, -1)}
        rows.append(
            {
                "class": name,
                "images": int(count_of.get(name, 0)),
                "keras_index": keras[name],
                "natural_index": natural[name],
                "in_use_index": used.get(name),
                "differs": len(indices) > 1,
            }
        )
    table = pd.DataFrame(rows)
    table["in_use_index"] = table["in_use_index"].astype("Int64")
    return table


def run_class_mapping(run: Run) -> pd.DataFrame:
    """``class_mapping_table`` for the folder and the order in use of ``run``."""
    folder_classes = run.info.folder_classes or tuple(sorted(run.class_names))
    counts = run.info.class_counts or tuple(
        int(np.sum(run.y_true == run.class_names.index(c))) for c in folder_classes
    )
    return class_mapping_table(folder_classes, counts, run.class_names)


def folder_mapping(folder: ImageFolder, in_use: Sequence[str]) -> pd.DataFrame:
    """``class_mapping_table`` for an indexed folder, before any run."""
    return class_mapping_table(folder.class_names, list(folder.counts.values()), in_use)


def class_indices_json(order: Sequence[str]) -> str:
    """``{"name": index}`` as Keras' ``class_indices`` prints it."""
    return json.dumps({name: i for i, name in enumerate(order)}, indent=2, ensure_ascii=False) + "\n"


def labels_txt(order: Sequence[str]) -> str:
    """One class name per line, line ``k`` naming output ``k``."""
    return "".join(f"{name}\n" for name in order)


# ----- images -----------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _thumbnail(path: str, mtime_ns: int, size: int, side: int) -> str:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    if max(image.size) < side:  # tiny images (digits) are enlarged with hard pixels, not blur
        scale = side / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.NEAREST
        )
    else:
        image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_data_uri(path: str | Path, side: int = 64) -> str | None:
    """A PNG data URI of ``path`` fitted to ``side`` pixels, made on first request and cached
    (keyed by path, modification time and size, so a changed file gets a new thumbnail).
    None when the file cannot be read or decoded."""
    try:
        stat = os.stat(path)
        return _thumbnail(str(path), stat.st_mtime_ns, stat.st_size, side)
    except (OSError, ValueError, SyntaxError):  # PIL raises these for unreadable images
        return None


def with_thumbnails(table: pd.DataFrame, root: str | Path, side: int = 64) -> pd.DataFrame:
    """``table`` (with a ``file`` column relative to ``root``) plus a leading ``thumbnail``."""
    root = Path(root)
    out = table.copy()
    out.insert(0, "thumbnail", [thumbnail_data_uri(root / rel, side) for rel in table["file"]])
    return out


def enlarged_image(path: str | Path, min_side: int = 256):
    """The image at ``path`` as a PIL image at least ``min_side`` pixels on its long side
    (small images scaled up with hard pixels, so a 32 px digit is readable)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    if max(image.size) < min_side:
        scale = max(1, min_side // max(image.size))
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


# ----- finding things on the server -------------------------------------------------------------
def find_model_files(root: str | Path, limit: int = 500) -> list[str]:
    """Model files (``.keras``, ``.h5``) and SavedModel folders under ``root``, relative and
    sorted; the walk stops after ``limit`` finds so a huge data root stays quick."""
    root = Path(root)
    found: list[str] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        if "saved_model.pb" in filenames:
            found.append(here.relative_to(root).as_posix())
            dirnames[:] = []  # a SavedModel's variables/ holds no other model
        found.extend(
            (here / f).relative_to(root).as_posix()
            for f in sorted(filenames)
            if f.lower().endswith(MODEL_SUFFIXES)
        )
        if len(found) >= limit:
            break
    return sorted(found)[:limit]


def class_folder_root(path: str | Path) -> Path:
    """The folder holding the class folders inside an extracted upload.

    A zip of ``val/`` holds ``val/cat``, ``val/dog``: descend through single wrapper folders
    that hold no images of their own and contain folders, stopping at the class folders.
    """
    path = Path(path)
    while True:
        entries = [e for e in os.scandir(path) if not e.name.startswith(".") and e.name != "__MACOSX"]
        dirs = [e for e in entries if e.is_dir()]
        has_images = any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)
        if len(dirs) != 1 or has_images:
            return path
        inner = Path(dirs[0].path)
        if not any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(inner)):
            return path  # the single folder is itself a class folder
        path = inner

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
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd

from .class_order import keras_order, natural_order
from .diagnostics import WarningCode
from .folder import ImageFolder
from .model import MODEL_SUFFIXES
from .run import Run

if TYPE_CHECKING:  # only for type hints: views stay cheap to import
    from .compare import RunComparison
    from .store import StoredRun

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


# ----- the run history ---------------------------------------------------------------------------
#: Columns of the history table, newest run first.
HISTORY_COLUMNS = ("id", "name", "created", "status", "model", "images", "n_images", "accuracy", "top5")


def _when(created_at: str) -> str:
    """``2025-11-23T20:05:11+00:00`` as ``2025-11-23 20:05 UTC`` (the store writes UTC)."""
    return created_at.replace("T", " ")[:16] + " UTC" if created_at else ""


def history_table(stored: Sequence["StoredRun"]) -> pd.DataFrame:
    """One row per stored run with its key numbers, in the order given (the store's: newest first).

    ``model`` and ``images`` are the file and folder names; the full paths stay in the run.
    """
    return pd.DataFrame(
        [
            {
                "id": s.id,
                "name": s.name,
                "created": _when(s.created_at),
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


# ----- comparing two runs -----------------------------------------------------------------------
#: Columns of a flips table (images right in one run and wrong in the other).
FLIP_COLUMNS = ("file", "true", "pred_a", "confidence_a", "pred_b", "confidence_b", "direction", "index_a", "index_b")


def comparison_per_class(comparison: "RunComparison") -> pd.DataFrame:
    """One row per class (A's order): support, recall in A and B, and the B − A deltas."""
    table = pd.DataFrame(comparison.per_class_deltas())
    return table.rename(columns={"label": "class"})


def confusion_delta_cells(comparison: "RunComparison") -> pd.DataFrame:
    """The confusion difference B − A in long form (rows = true, columns = predicted)."""
    names = list(comparison.class_names)
    n = len(names)
    count_a = np.asarray(comparison.metrics_a.confusion_matrix, dtype=np.int64).reshape(n, n)
    count_b = np.asarray(comparison.metrics_b.confusion_matrix, dtype=np.int64).reshape(n, n)
    true_idx, pred_idx = np.indices((n, n))
    return pd.DataFrame(
        {
            "true": [names[i] for i in true_idx.ravel()],
            "predicted": [names[j] for j in pred_idx.ravel()],
            "count_a": count_a.ravel(),
            "count_b": count_b.ravel(),
            "delta": (count_b - count_a).ravel(),
        }
    )


def flips_table(comparison: "RunComparison", direction: str | None = None) -> pd.DataFrame:
    """The flipped images (``direction`` "right-to-wrong", "wrong-to-right", or None for both):
    right-to-wrong first, then by file."""
    flips = [f for f in comparison.flips if direction is None or f.direction == direction]
    table = pd.DataFrame(
        [
            {
                "file": f.path,
                "true": f.true_label,
                "pred_a": f.pred_a,
                "confidence_a": f.confidence_a,
                "pred_b": f.pred_b,
                "confidence_b": f.confidence_b,
                "direction": f.direction,
                "index_a": f.index_a,
                "index_b": f.index_b,
            }
            for f in flips
        ],
        columns=list(FLIP_COLUMNS),
    )
    order = table["direction"].map({"right-to-wrong": 0, "wrong-to-right": 1})
    return table.assign(_order=order).sort_values(["_order", "file"], kind="stable").drop(columns="_order").reset_index(drop=True)


# ----- a training: one run per epoch ------------------------------------------------------------
COLLAPSE_CODE = WarningCode.PREDICTION_COLLAPSE


def _by_epoch(epochs: Sequence[int], runs: Sequence[Run]) -> list[tuple[int, Run]]:
    if len(epochs) != len(runs):
        raise ValueError(f"epochs ({len(epochs)}) and runs ({len(runs)}) must pair one run per epoch")
    return list(zip((int(e) for e in epochs), runs))


def epoch_table(epochs: Sequence[int], runs: Sequence[Run], logs: Sequence[dict] | None = None) -> pd.DataFrame:
    """One row per epoch: evaluated accuracy and top-5, images, whether predictions collapsed
    onto one class (the run's "prediction-collapse" warning), then the epoch's Keras logs."""
    logs = list(logs) if logs is not None else [{} for _ in runs]
    rows = []
    for (epoch, run), log in zip(_by_epoch(epochs, runs), logs):
        row = {
            "epoch": epoch,
            "accuracy": run.accuracy,
            "top5": run.metrics.top5_accuracy,
            "n_images": run.n_images,
            "collapsed": COLLAPSE_CODE in run.warning_codes(),
        }
        row.update({f"log_{k}": v for k, v in log.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def collapsed_epochs(epochs: Sequence[int], runs: Sequence[Run]) -> list[int]:
    """The epochs whose predictions collapse onto one class."""
    return [e for e, run in _by_epoch(epochs, runs) if COLLAPSE_CODE in run.warning_codes()]


def epoch_curves(epochs: Sequence[int], runs: Sequence[Run], logs: Sequence[dict] | None = None) -> pd.DataFrame:
    """Per-epoch numbers in long form (``epoch``, ``kind``, ``series``, ``value``) for line charts.

    ``kind`` is "accuracy" or "loss". The accuracy gtpred measured on the stored predictions is
    series "evaluated accuracy"; numeric Keras log entries follow under their own names (``loss``,
    ``val_loss`` as loss; names containing "acc" as accuracy; others are left out).
    """
    logs = list(logs) if logs is not None else [{} for _ in runs]
    rows = []
    for (epoch, run), log in zip(_by_epoch(epochs, runs), logs):
        if run.accuracy is not None:
            rows.append({"epoch": epoch, "kind": "accuracy", "series": "evaluated accuracy", "value": float(run.accuracy)})
        for key, value in log.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            kind = "loss" if "loss" in key else "accuracy" if "acc" in key else None
            if kind is not None:
                rows.append({"epoch": epoch, "kind": kind, "series": key, "value": float(value)})
    return pd.DataFrame(rows, columns=["epoch", "kind", "series", "value"])


def recall_by_epoch(epochs: Sequence[int], runs: Sequence[Run]) -> pd.DataFrame:
    """Per-class recall at each epoch in long form (``epoch``, ``class``, ``recall``)."""
    return pd.DataFrame(
        [
            {"epoch": epoch, "class": c.label, "recall": c.recall}
            for epoch, run in _by_epoch(epochs, runs)
            for c in run.metrics.per_class
        ],
        columns=["epoch", "class", "recall"],
    )


def never_right(runs: Sequence[Run]) -> pd.DataFrame:
    """Files predicted wrong in every run (of those all runs evaluated), with the last run's
    prediction; most confident last mistake first. ``index`` is the row in the last run."""
    if not runs:
        return pd.DataFrame(columns=list(MISPREDICTION_COLUMNS))
    last = runs[-1]
    wrong = {p for p, ok in zip(last.paths, last.correct) if not ok}
    for run in runs[:-1]:
        wrong &= {p for p, ok in zip(run.paths, run.correct) if not ok}
    rows = np.array([i for i, p in enumerate(last.paths) if p in wrong], dtype=np.int64)
    return _rows_table(last, rows)


def file_by_epoch(epochs: Sequence[int], runs: Sequence[Run], rel_path: str) -> pd.DataFrame:
    """One file across epochs: the predicted class, its confidence, the true class's probability
    and whether it was right (epochs whose run lacks the file are left out)."""
    rows = []
    for epoch, run in _by_epoch(epochs, runs):
        i = file_position(run, rel_path)
        if i is None:
            continue
        t, p = int(run.y_true[i]), int(run.y_pred[i])
        rows.append(
            {
                "epoch": epoch,
                "predicted": run.class_names[p],
                "confidence": float(run.probabilities[i, p]),
                "p_true": float(run.probabilities[i, t]),
                "right": t == p,
            }
        )
    return pd.DataFrame(rows, columns=["epoch", "predicted", "confidence", "p_true", "right"])


def file_probabilities_by_epoch(
    epochs: Sequence[int], runs: Sequence[Run], rel_path: str, k: int = 3
) -> pd.DataFrame:
    """The probabilities of one file at each epoch in long form (``epoch``, ``class``,
    ``probability``, ``is_true``), for the true class and every class in some epoch's top ``k``."""
    paired = [(e, run, file_position(run, rel_path)) for e, run in _by_epoch(epochs, runs)]
    paired = [(e, run, i) for e, run, i in paired if i is not None]
    shown: list[str] = []
    for _, run, i in paired:
        for name in [run.class_names[int(run.y_true[i])], *(name for name, _ in run.top_k(i, k))]:
            if name not in shown:
                shown.append(name)
    rows = []
    for epoch, run, i in paired:
        true_name = run.class_names[int(run.y_true[i])]
        for name in shown:
            rows.append(
                {
                    "epoch": epoch,
                    "class": name,
                    "probability": float(run.probabilities[i, run.class_names.index(name)]),
                    "is_true": name == true_name,
                }
            )
    return pd.DataFrame(rows, columns=["epoch", "class", "probability", "is_true"])

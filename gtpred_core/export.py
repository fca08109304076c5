"""Write a Run as ``predictions.csv`` and ``summary.json`` (the CLI's output contract)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .run import Run

PREDICTION_COLUMNS = ("path", "true_label", "true_index", "pred_label", "pred_index", "confidence", "correct")


def probability_column(class_name: str) -> str:
    return f"prob_{class_name}"


def predictions_csv(run: Run) -> str:
    """One row per evaluated file, in evaluation order, then one probability column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*PREDICTION_COLUMNS, *(probability_column(c) for c in run.class_names)])
    names = run.class_names
    confidence = run.confidence
    for i, path in enumerate(run.paths):
        t, p = int(run.y_true[i]), int(run.y_pred[i])
        writer.writerow(
            [path, names[t], t, names[p], p, f"{confidence[i]:.9g}", str(t == p).lower()]
            + [f"{v:.9g}" for v in run.probabilities[i].tolist()]
        )
    return buffer.getvalue()


def summary_json(run: Run) -> str:
    return json.dumps(run.summary(), indent=2, ensure_ascii=False)


def write_outputs(run: Run, out_dir: str | Path) -> tuple[Path, Path]:
    """Write both files into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions = out / "predictions.csv"
    summary = out / "summary.json"
    predictions.write_text(predictions_csv(run), encoding="utf-8")
    summary.write_text(summary_json(run), encoding="utf-8")
    return predictions, summary

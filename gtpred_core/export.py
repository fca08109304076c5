"""Write a Run as ``predictions.csv`` and ``summary.json`` (the CLI's output contract), and
``embeddings.csv`` when the run has an embedding map."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .run import Run

PREDICTION_COLUMNS = ("path", "true_label", "true_index", "pred_label", "pred_index", "confidence", "correct")

#: A cell starting with one of these is a formula in Excel and LibreOffice (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """``cell`` as a spreadsheet shows it as text: a string that would start a formula gets a
    leading single quote (OWASP's rule). Numbers pass unchanged; ``summary.json`` stays exact."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def csv_text(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document whose every cell is ``spreadsheet_safe``: the one way gtpred writes CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(c) for c in header])
    for row in rows:
        writer.writerow([spreadsheet_safe(c) for c in row])
    return buffer.getvalue()


def probability_column(class_name: str) -> str:
    return f"prob_{class_name}"


def predictions_csv(run: Run) -> str:
    """One row per evaluated file, in evaluation order, then one probability column per class."""
    names = run.class_names
    confidence = run.confidence

    def rows() -> Iterator[list[object]]:
        for i, path in enumerate(run.paths):
            t, p = int(run.y_true[i]), int(run.y_pred[i])
            yield [path, names[t], t, names[p], p, f"{confidence[i]:.9g}", str(t == p).lower()] + [
                f"{v:.9g}" for v in run.probabilities[i].tolist()
            ]

    return csv_text([*PREDICTION_COLUMNS, *(probability_column(c) for c in names)], rows())


#: Columns of ``suspects_csv``: one row per suspect label, to review and relabel.
SUSPECT_CSV_COLUMNS = ("path", "given_label", "suggested_label", "p_given", "p_suggested")


def suspects_csv(run: Run) -> str:
    """The run's suspect labels, most suspect first, as a spreadsheet-safe CSV for relabelling:
    the file, the folder's label, the model's suggestion and the probability of each. Only a
    header when there are none (or when they wait for the right class order)."""
    from .suspects import suspect_table

    table, _ = suspect_table(run)
    rows = (
        [r.file, r.given, r.suggested, f"{r.p_given:.6g}", f"{r.p_suggested:.6g}"]
        for r in table.itertuples(index=False)
    )
    return csv_text(SUSPECT_CSV_COLUMNS, rows)


def summary_json(run: Run) -> str:
    return json.dumps(run.summary(), indent=2, ensure_ascii=False)


def shareable_summary_json(run: Run, data_root: str | Path | None) -> str:
    """``summary.json`` for the app's downloads: the model and images named as users see them
    (relative to the data root, or an upload's own name), never by the server's full paths. The
    CLI's ``summary.json`` keeps the paths its user typed."""
    from .uploads.server_paths import path_for_users

    summary = run.summary()
    for key in ("model", "images"):
        if summary["run"].get(key):
            summary["run"][key] = path_for_users(summary["run"][key], data_root)
    return json.dumps(summary, indent=2, ensure_ascii=False)


def write_outputs(run: Run, out_dir: str | Path) -> tuple[Path, Path]:
    """Write both files into ``out_dir`` (created if needed); return their paths. A run with an
    embedding map also gets ``embeddings.csv`` (``path, x, y``, the rows in evaluation order)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions = out / "predictions.csv"
    summary = out / "summary.json"
    predictions.write_text(predictions_csv(run), encoding="utf-8")
    summary.write_text(summary_json(run), encoding="utf-8")
    if run.embedding is not None:
        from .embeddings import embeddings_csv

        (out / "embeddings.csv").write_text(embeddings_csv(run.paths, run.embedding), encoding="utf-8")
    return predictions, summary

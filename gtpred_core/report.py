"""The self-contained HTML report: one file to send to someone who does not run gtpred.

It opens offline in any browser and asks the network for nothing: no script at all, charts are
static SVG drawn here, thumbnails are JPEG data URIs of the shown images only (so a 2,000-image
run stays well under 10 MB). It reads the run's ``summary()`` — the same numbers as
``summary.json`` — so every field a run carries (intervals, calibration, suspect labels) shows
without a second definition here. Every user string (class, file, model names) is HTML-escaped.

Order of the page, for a reader who is not a programmer: how good the model is and what to
distrust first, then the per-class table, the confusion matrix, calibration, the most confident
mistakes, suspect labels, the class mapping and where the numbers came from.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .class_order import keras_order, natural_order
from .inference import MAX_IMAGE_PIXELS
from .run import Run

#: Thumbnails: longest side in pixels and JPEG quality (small, still readable).
THUMBNAIL_SIDE = 96
THUMBNAIL_QUALITY = 80
#: How many of the most confident mistakes and suspect labels the report shows.
MAX_MISTAKES = 48
MAX_SUSPECTS = 48
#: Largest image file the report opens for a thumbnail (a bigger one is shown without).
MAX_THUMBNAIL_SOURCE_BYTES = 64 * 1024 * 1024

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:24px;color:#1d2330}
h1{font-size:26px;margin:0 0 4px} h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #dde1e8;padding-bottom:4px}
.verdict{font-size:18px;background:#f3f6fb;border-radius:8px;padding:12px 16px}
.warn{background:#fff6e5;border-left:4px solid #e8a317;padding:8px 12px;margin:8px 0;border-radius:4px}
table{border-collapse:collapse;font-size:13px} th,td{padding:4px 8px;border-bottom:1px solid #eceff4;text-align:left;vertical-align:top}
th{background:#f7f8fa;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow:auto;max-height:640px;border:1px solid #eceff4;border-radius:6px}
.muted{color:#5b6474;font-size:13px} .mistakes td img{display:block;border-radius:4px}
code{background:#f3f4f6;padding:1px 4px;border-radius:3px;word-break:break-all}
.few{color:#b3541e;font-weight:600}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _interval(ci: dict[str, Any] | None) -> str:
    if not ci or ci.get("low") is None:
        return ""
    return f"{100 * ci['low']:.1f}–{100 * ci['high']:.1f}%"


# ----- thumbnails ---------------------------------------------------------------------------------
def thumbnail_data_uri(path: str | Path, side: int = THUMBNAIL_SIDE) -> str | None:
    """A small JPEG of the image as a ``data:`` URI, or None when it cannot be read safely."""
    from PIL import Image

    try:
        if not Path(path).is_file() or os.stat(path).st_size > MAX_THUMBNAIL_SOURCE_BYTES:
            return None
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:  # a decompression bomb: no preview
                return None
            image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            small = image.convert("RGB")
            small.thumbnail((side, side))
            buffer = io.BytesIO()
            small.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    except Exception:  # noqa: BLE001 - a broken image is shown without its thumbnail
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ----- charts as static SVG -------------------------------------------------------------------------
def _blue(share: float) -> str:
    """White (0) to dark blue (1)."""
    share = min(1.0, max(0.0, share))
    r, g, b = (int(255 + (t - 255) * share) for t in (31, 78, 160))
    return f"rgb({r},{g},{b})"


def confusion_svg(matrix: np.ndarray, names: Sequence[str]) -> str:
    """The confusion matrix (rows = true, columns = predicted), coloured by row share, counts in
    cells while they fit; cells shrink with the number of classes and labels never overlap."""
    n = len(names)
    cell = 44 if n <= 12 else 28 if n <= 30 else 14
    label_w = min(220, 12 + 7 * max((len(str(x)) for x in names), default=1))
    font = 12 if cell >= 28 else 9
    size_w, size_h = label_w + n * cell + 10, label_w + n * cell + 10
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="confusion matrix" '
        f'width="{size_w}" height="{size_h}" font-family="system-ui,sans-serif" font-size="{font}">'
    ]
    for i, name in enumerate(names):
        y = label_w + i * cell + cell / 2
        parts.append(f'<text x="{label_w - 4}" y="{y + font / 3:.1f}" text-anchor="end">{_e(_short(name))}<title>{_e(name)}</title></text>')
        x = label_w + i * cell + cell / 2
        parts.append(
            f'<text transform="translate({x + font / 3:.1f},{label_w - 4}) rotate(-90)" text-anchor="start">'
            f"{_e(_short(name))}<title>{_e(name)}</title></text>"
        )
    for i in range(n):
        for j in range(n):
            x, y = label_w + j * cell, label_w + i * cell
            count = int(matrix[i, j])
            parts.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{_blue(share[i, j])}">'
                f"<title>true {_e(names[i])}, predicted {_e(names[j])}: {count} ({share[i, j]:.0%} of the row)</title></rect>"
            )
            if count and cell >= 28:
                colour = "#fff" if share[i, j] > 0.55 else "#1d2330"
                parts.append(f'<text x="{x + cell / 2 - 0.5}" y="{y + cell / 2 + font / 3:.1f}" text-anchor="middle" fill="{colour}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(name: str, limit: int = 28) -> str:
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def reliability_svg(bins: Sequence[dict[str, Any]]) -> str:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, counts."""
    w, h, pad = 440, 300, 48
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="reliability diagram" width="{w}" height="{h + 20}" '
        'font-family="system-ui,sans-serif" font-size="11">',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{10}" stroke="#999" stroke-dasharray="4 3"/>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{pad}" y2="10" stroke="#333"/>',
        f'<text x="{(w + pad) / 2}" y="{h - 8}" text-anchor="middle">confidence</text>',
        f'<text transform="translate(10,{(h - pad) / 2}) rotate(-90)" text-anchor="middle">accuracy</text>',
    ]
    span_x, span_y = w - 10 - pad, h - pad - 10
    for tick in (0.0, 0.5, 1.0):
        x, y = pad + span_x * tick, h - pad - span_y * tick
        parts.append(f'<text x="{x:.1f}" y="{h - pad + 13}" text-anchor="middle">{tick:.0%}</text>')
        parts.append(f'<text x="{pad - 4}" y="{y + 4:.1f}" text-anchor="end">{tick:.0%}</text>')
    for b in bins:
        if not b.get("count"):
            continue
        x0 = pad + span_x * float(b["lower"])
        bw = span_x * (float(b["upper"]) - float(b["lower"]))
        bh = span_y * float(b["accuracy"])
        parts.append(
            f'<rect class="bar" x="{x0 + 1:.1f}" y="{h - pad - bh:.1f}" width="{max(bw - 2, 1):.1f}" height="{bh:.1f}" fill="#3b6fc0">'
            f'<title>confidence {float(b["lower"]):.2f}–{float(b["upper"]):.2f}: {int(b["count"])} images, '
            f'accuracy {float(b["accuracy"]):.0%}, mean confidence {float(b["confidence"]):.0%}</title></rect>'
        )
        parts.append(f'<text x="{x0 + bw / 2:.1f}" y="{h - pad - bh - 3:.1f}" text-anchor="middle" font-size="9">{int(b["count"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ----- the report -----------------------------------------------------------------------------------
def _verdict(run: Run, summary: dict[str, Any]) -> str:
    if run.n_images == 0:
        return "No image could be evaluated, so there is no accuracy to report."
    ci = _interval(summary.get("accuracy_ci"))
    ci_text = f" (95% confidence interval {ci})" if ci else ""
    right = int(run.correct.sum())
    text = (
        f"The model predicted the right class for <b>{right:,} of {run.n_images:,}</b> images: "
        f"accuracy <b>{_pct(run.accuracy)}</b>{ci_text}."
    )
    if any(w.code == "class-order-mismatch" for w in run.warnings):
        text += " <b>Do not trust this number yet:</b> the class order looks wrong (see below)."
    return text


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, num in zip(row, numeric)) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _per_class(summary: dict[str, Any]) -> str:
    rows = []
    for c in summary["per_class"]:
        few = ' <span class="few" title="fewer images than a 20-point interval needs">few images</span>' if c.get("few_images") else ""
        rows.append(
            [
                _e(c["label"]) + few,
                f"{c['precision']:.3f}",
                _e(_interval(c.get("precision_ci"))),
                f"{c['recall']:.3f}",
                _e(_interval(c.get("recall_ci"))),
                f"{c['f1']:.3f}",
                f"{c['support']:,}",
            ]
        )
    return _table(
        ["class", "precision", "95% CI", "recall", "95% CI", "F1", "images"], rows, [False, True, True, True, True, True, True]
    )


def _mistakes(run: Run, images_root: Path | None) -> str:
    wrong = np.flatnonzero(~run.correct)
    if not len(wrong):
        return "<p>No mistakes.</p>"
    order = wrong[np.argsort(-run.confidence[wrong], kind="stable")][:MAX_MISTAKES]
    rows = []
    for i in order:
        uri = thumbnail_data_uri(images_root / run.paths[i]) if images_root is not None else None
        image = f'<img src="{uri}" alt="" width="{THUMBNAIL_SIDE}">' if uri else '<span class="muted">no preview</span>'
        top5 = "<br>".join(f"{_e(name)}: {p:.1%}" for name, p in run.top_k(int(i), 5))
        rows.append([image, f"<code>{_e(run.paths[i])}</code>", _e(run.class_names[run.y_true[i]]), _e(run.class_names[run.y_pred[i]]), top5])
    note = f'<p class="muted">The {len(order)} most confident of {len(wrong):,} mistakes.</p>'
    return note + _table(["image", "file", "true class", "predicted", "top-5 probabilities"], rows)


def _suspects(summary: dict[str, Any], images_root: Path | None) -> str:
    suspects = summary.get("suspect_labels")
    if suspects is None:
        return '<p class="muted">Not computed for this run.</p>'
    if not suspects:
        note = summary.get("suspect_labels_note") or "No image looks mislabelled."
        return f"<p>{_e(note)}</p>"
    rows = []
    for s in suspects[:MAX_SUSPECTS]:
        uri = thumbnail_data_uri(images_root / s["path"]) if images_root is not None else None
        image = f'<img src="{uri}" alt="" width="{THUMBNAIL_SIDE}">' if uri else '<span class="muted">no preview</span>'
        rows.append([image, f"<code>{_e(s['path'])}</code>", _e(s["given_label"]), _e(s["suggested_label"]), f"{float(s['score']):.3f}"])
    return (
        '<p class="muted">Review candidates, not proof: images whose folder label the model finds least likely.</p>'
        + _table(["image", "file", "label given", "suggested", "score"], rows, [False, False, False, False, True])
    )


def _calibration(summary: dict[str, Any]) -> str:
    cal = summary.get("calibration")
    if not cal:
        return '<p class="muted">Not computed for this run.</p>'
    numbers = (
        f"<p>Expected calibration error <b>{100 * cal['ece']:.1f} points</b> (0 is perfect; the gap between how sure "
        f"the model is and how often it is right, averaged over 15 confidence bins); largest gap in one bin "
        f"{100 * cal['mce']:.1f} points; Brier score {cal['brier']:.3f}; log loss {cal['nll']:.3f}.</p>"
    )
    return numbers + reliability_svg(cal.get("bins", []))


def _class_mapping(run: Run) -> str:
    folders = list(run.info.folder_classes) or list(run.class_names)
    keras_index = {n: i for i, n in enumerate(keras_order(folders))}
    natural_index = {n: i for i, n in enumerate(natural_order(folders))}
    in_use = {n: i for i, n in enumerate(run.class_names)}
    rows = []
    for name in keras_order(folders):
        used = in_use.get(name)
        flag = " ⚠" if used is not None and used != keras_index[name] else ""
        rows.append([_e(name), str(keras_index[name]), str(natural_index[name]), ("" if used is None else str(used)) + flag])
    return (
        f'<p class="muted">Output index of each class folder under each order; the run used <b>{_e(run.info.class_order_source)}</b>. '
        "⚠ marks a class whose index differs from Keras' folder order.</p>"
        + _table(["class folder", "Keras order", "natural order", "in this run"], rows, [False, True, True, True])
    )


def _provenance(run: Run, summary: dict[str, Any]) -> str:
    info = run.info
    size = f"{info.model_bytes:,} bytes" if info.model_bytes is not None else "unknown size"
    rows = [
        ("Model file", f"{_e(Path(info.model).name or 'unknown')} ({size})"),
        ("Model SHA-256", f"<code>{_e(info.model_sha256 or 'unknown')}</code>"),
        ("Images", f"{_e(Path(info.images).name or 'unknown')}: {info.n_files:,} files, fingerprint <code>{_e(info.images_fingerprint or 'unknown')}</code>"),
        ("Class order", f"{_e(info.class_order_source)}: " + ", ".join(_e(n) for n in run.class_names)),
        ("Preprocessing", f"{_e(info.preprocess)}; batch size {info.batch_size}; input {info.input_size[0]}×{info.input_size[1]}×{info.channels}; head {_e(info.head)}"),
        ("Evaluated", f"{_e(info.created_at or 'unknown')} in {info.seconds:.1f} s (reading, decoding and predicting every image)"),
        ("Software", f"gtpred {_e(info.gtpred_version or 'unknown')}; TensorFlow {_e(getattr(info, 'tensorflow_version', None) or 'not recorded')}"),
    ]
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def report_html(run: Run, images_root: str | Path | None = None, title: str | None = None) -> str:
    """The whole report as one HTML document. ``images_root`` is where the run's files are, for
    thumbnails (default: the folder the run was evaluated on; None or missing: no thumbnails)."""
    summary = run.summary()
    root = Path(images_root) if images_root is not None else (Path(run.info.images) if run.info.images else None)
    if root is not None and not root.is_dir():
        root = None
    heading = title or f"{Path(run.info.model).name or 'Model'} on {Path(run.info.images).name or 'images'}"
    warnings = "".join(f'<div class="warn">{_e(w.message)}</div>' for w in run.warnings)
    skipped = ""
    if run.skipped:
        skipped = "<h3>Skipped files</h3>" + _table(["file", "why"], ([f"<code>{_e(s.path)}</code>", _e(s.reason)] for s in run.skipped[:200]))
    matrix = np.asarray(run.metrics.confusion_matrix, dtype=np.int64).reshape(len(run.class_names), len(run.class_names))
    top5 = ""
    if run.metrics.top5_accuracy is not None:
        top5_ci = _interval(summary.get("top5_accuracy_ci"))
        top5 = f"; top-5 accuracy {_pct(run.metrics.top5_accuracy)}" + (f" (95% CI {_e(top5_ci)})" if top5_ci else "")
    body = f"""
<h1>{_e(heading)}</h1>
<p class="muted">gtpred report: every image predicted exactly once, each prediction paired with its file and its true label.</p>
<p class="verdict" id="verdict">{_verdict(run, summary)}</p>
<p class="muted">{run.n_images:,} images evaluated, {len(run.skipped):,} skipped, {len(run.ignored):,} ignored (not images){top5}.</p>
<h2>What to distrust</h2>
{warnings or "<p>No warnings: the class order, the predictions and the files look right.</p>"}
{skipped}
<h2>Per class</h2>
{_per_class(summary)}
<h2>Confusion matrix</h2>
<p class="muted">Rows are the true class, columns the predicted class; colour is the share of the row. Hover a cell for its count.</p>
<div class="scroll" id="confusion">{confusion_svg(matrix, run.class_names)}</div>
<h2>Calibration</h2>
{_calibration(summary)}
<h2>Most confident mistakes</h2>
{_mistakes(run, root)}
<h2>Suspect labels</h2>
{_suspects(summary, root)}
<h2>Class mapping</h2>
{_class_mapping(run)}
<h2>Where these numbers come from</h2>
{_provenance(run, summary)}
"""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        # Nothing may leave the file: no script, no fetch, images only from data: URIs.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{_e(heading)} — gtpred report</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def write_report(run: Run, path: str | Path, images_root: str | Path | None = None) -> Path:
    """Write ``report_html`` to ``path`` (its folder created if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(run, images_root), encoding="utf-8")
    return path

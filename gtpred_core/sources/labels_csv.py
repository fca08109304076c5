"""A labels CSV as a data source: one row per image, ``filename,class`` (Keras' ``flow_from_dataframe``).

The CSV's row order is the evaluation order. Paths are relative to the images root (``--images``)
or, without one, to the CSV's own folder; a path that leaves that root (``..``, an absolute path
elsewhere, a link out) is refused, as typed paths are. The result is the same ``ImageFolder`` the
class-folder layout gives, so pairing, metrics, the store, the pages and Ray need nothing new.

Class names are the labels. Their output order is chosen as for folders (Keras' text sort, natural,
or a labels file / class_indices JSON): never derived silently. Numeric labels are the trap here:
as names, ``10`` sorts before ``2``; with a class list they are read as indices into it.

    folder, report = read_labels_csv("val.csv", images="val_images/")
    print("\\n".join(report.lines()))
    run = evaluate_folder("model.keras", folder, class_order="labels.txt")
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..class_order import keras_order
from ..errors import FolderError, LabelsCsvError
from ..folder import OUTSIDE_ROOT, ImageFolder, _is_hidden, is_image_file, is_inside, read_refusal, refusal

#: Column names taken for the file and the label, first match wins (compared case-insensitively).
FILE_COLUMNS: tuple[str, ...] = ("filename", "file", "path", "image")
LABEL_COLUMNS: tuple[str, ...] = ("class", "label")

#: Largest labels CSV read (one listing a million images is about 50 MB).
MAX_CSV_BYTES = 256 * 2**20

_WHOLE_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class RowProblem:
    """A CSV row that is not evaluated (``row`` counts the header as row 1, as spreadsheets do)."""

    row: int
    file: str
    reason: str


@dataclass(frozen=True)
class LabelsCsvReport:
    """What reading a labels CSV found, to show before running (the CLI prints it, the page shows it).

    ``missing``: rows whose file is not evaluated (not there, not an image, outside the root…),
    each with its reason; the other rows run. ``duplicates``: rows naming a file an earlier row
    already names (evaluated once, with the first row's label); ``conflicts``: those files, when
    the rows disagree on the label. ``not_listed``: images under the root the CSV leaves out.
    ``unknown_labels``: labels not in the class list given. ``numeric_labels``: labels that are
    whole numbers; ``numbers_mapped`` says they were read as indices into the class list.
    """

    csv_name: str
    file_column: str
    label_column: str
    n_rows: int
    n_files: int
    missing: tuple[RowProblem, ...] = ()
    duplicates: tuple[RowProblem, ...] = ()
    conflicts: tuple[str, ...] = ()
    not_listed: tuple[str, ...] = ()
    unknown_labels: tuple[str, ...] = ()
    numeric_labels: tuple[str, ...] = ()
    numbers_mapped: bool = False

    @property
    def clean(self) -> bool:
        """True when there is nothing to warn about (numbers read through a class list are fine)."""
        return not (
            self.missing or self.duplicates or self.not_listed or self.unknown_labels
            or (self.numeric_labels and not self.numbers_mapped)
        )

    def lines(self) -> list[str]:
        """One plain sentence per finding (text, not Markdown), the first being the counts."""
        return self.file_lines() + self.label_lines()

    def file_lines(self) -> list[str]:
        """The counts, then what concerns the files: missing, duplicate, not listed."""
        lines = [
            f"{self.csv_name}: {self.n_rows:,} rows, {self.n_files:,} images to evaluate in the CSV's "
            f"row order (files from column '{self.file_column}', classes from '{self.label_column}')."
        ]
        if self.missing:
            first = self.missing[0]
            lines.append(
                f"{len(self.missing):,} row(s) name a file that will not be evaluated (first: row "
                f"{first.row}, {first.file}: {first.reason}); the other rows run."
            )
        if self.duplicates:
            first = self.duplicates[0]
            conflict = (
                f" {len(self.conflicts):,} of these files are given different classes (first: "
                f"{self.conflicts[0]}); the first row's class is used." if self.conflicts else ""
            )
            lines.append(
                f"{len(self.duplicates):,} duplicate row(s): a file listed again is evaluated once "
                f"(first: row {first.row}, {first.file}, {first.reason}).{conflict}"
            )
        if self.not_listed:
            lines.append(
                f"{len(self.not_listed):,} image(s) under the images folder are not in the CSV and "
                f"will not be evaluated (first: {self.not_listed[0]})."
            )
        return lines

    def label_lines(self) -> list[str]:
        """What concerns the labels: outside the class list, or numbers."""
        lines = []
        if self.unknown_labels:
            lines.append(
                f"{len(self.unknown_labels):,} label(s) are not in the class list given: "
                f"{', '.join(self.unknown_labels[:20])}. Fix the CSV or give the class list the "
                "model was trained with."
            )
        if self.numeric_labels and self.numbers_mapped:
            lines.append("The labels are numbers; they were read as indices into the class list given.")
        elif self.numeric_labels:
            shown = ", ".join(self.numeric_labels[:12]) + (", …" if len(self.numeric_labels) > 12 else "")
            lines.append(
                f"The labels are numbers ({shown}). They are taken as class names, and Keras' order "
                "sorts names as text ('10' before '2'). If they are the model's output indices, "
                "choose the natural class order, or give the class list (labels.txt or "
                "class_indices JSON) that maps each index to its name."
            )
        return lines


def _pick_column(columns: Sequence[str], wanted: tuple[str, ...]) -> int | None:
    lowered = [c.strip().lower() for c in columns]
    for name in wanted:
        if name in lowered:
            return lowered.index(name)
    return None


def _read_rows(path: Path) -> list[list[str]]:
    """Every row, the header first; a UTF-8 BOM, Windows line endings and ``;`` or tab
    separators (Excel in many locales) are all read."""
    refused = read_refusal(str(path), MAX_CSV_BYTES)
    if refused is not None:
        raise LabelsCsvError(
            f"The labels CSV {path.name} cannot be used: {refused}.",
            "Give a comma-separated text file with a filename and a class column.",
            path,
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
        first = text.split("\n", 1)[0]
        delimiter = max(",;\t", key=first.count) if first else ","
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (csv.Error, UnicodeDecodeError) as err:
        raise LabelsCsvError(
            f"{path.name} is not a readable CSV ({err}).", "Save it as CSV in UTF-8 (Excel: CSV UTF-8).", path
        ) from err


def _image_root_files(root: str) -> list[str]:
    """Every visible image under ``root`` (no links followed), relative, ``/``-separated."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if is_image_file(name) and not name.startswith("."):
                found.append(name if rel_dir == "." else f"{Path(rel_dir).as_posix()}/{name}")
    return found


def read_labels_csv(
    csv_path: str | Path,
    images: str | Path | None = None,
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[ImageFolder, LabelsCsvReport]:
    """Read a labels CSV into the ``ImageFolder`` the evaluation takes, and the report to show first.

    ``images`` is the folder the CSV's paths are relative to (default: the CSV's folder).
    ``class_names`` is the class list the model was trained with, if known (a labels file or
    class_indices JSON, in output order): its classes are kept even when no row uses them, labels
    outside it are reported, and whole-number labels are read as indices into it.
    Rows whose file cannot be evaluated are left out with their reason (``ImageFolder.ignored``).
    """
    csv_path = Path(csv_path).expanduser()
    if not csv_path.exists():
        raise LabelsCsvError(f"Labels CSV not found: {csv_path}.", "Check the path.", csv_path)
    root = Path(images).expanduser() if images is not None else csv_path.parent
    if not root.is_dir():
        raise FolderError(f"Image folder not found: {root}.", "Check the --images path.", root)
    header, *body = _read_rows(csv_path) or [[]]
    file_col, label_col = _pick_column(header, FILE_COLUMNS), _pick_column(header, LABEL_COLUMNS)
    if file_col is None or label_col is None:
        missing_kind = "image file" if file_col is None else "class"
        wanted = FILE_COLUMNS if file_col is None else LABEL_COLUMNS
        raise LabelsCsvError(
            f"{csv_path.name} has no {missing_kind} column: its columns are "
            f"{', '.join(repr(c) for c in header) or 'none (the file is empty)'}.",
            f"Name the column {' or '.join(wanted)} (Keras' flow_from_dataframe uses filename and class).",
            csv_path,
            columns=tuple(header),
        )
    rows = [(number, row) for number, row in enumerate(body, start=2) if any(cell.strip() for cell in row)]
    if not rows:
        raise LabelsCsvError(f"{csv_path.name} lists no images (only a header).", "Add one row per image.", csv_path)
    return _index_rows(csv_path.name, root, header[file_col], header[label_col], [
        (number, _cell(row, file_col), _cell(row, label_col)) for number, row in rows
    ], class_names)


def _cell(row: list[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _index_rows(
    csv_name: str,
    root: Path,
    file_column: str,
    label_column: str,
    rows: list[tuple[int, str, str]],
    class_names: Sequence[str] | None,
) -> tuple[ImageFolder, LabelsCsvReport]:
    real_root = os.path.realpath(root)
    lexical_root = os.path.abspath(root)
    real_dirs: dict[str, bool] = {}  # a folder -> whether it resolves inside the root
    missing: list[RowProblem] = []
    duplicates: list[RowProblem] = []
    conflicts: dict[str, None] = {}
    first_row: dict[str, tuple[int, str]] = {}
    kept: list[tuple[str, str]] = []  # (relative file, label) in row order
    for number, raw, label in rows:
        reason, rel = _locate(raw, lexical_root, real_root, real_dirs)
        if reason is None and not label:
            reason = "no class given"
        rel = rel or f"#row {number}"  # rows without a file name are not duplicates of each other
        if rel in first_row:  # refused or not, a repeated file is a duplicate row
            first, first_label = first_row[rel]
            duplicates.append(RowProblem(number, raw, f"as row {first}"))
            if label != first_label:
                conflicts.setdefault(raw)
            continue
        first_row[rel] = (number, label)
        if reason is not None:
            missing.append(RowProblem(number, raw, reason))
        else:
            kept.append((rel, label))

    labels_text = [label for _, label in kept]
    distinct = list(dict.fromkeys(labels_text))
    numeric = sorted((n for n in distinct if _WHOLE_NUMBER.fullmatch(n)), key=int)
    given: tuple[str, ...] = tuple(class_names or ())
    numbers_mapped = bool(given) and len(numeric) == len(distinct) and not any(n in given for n in numeric)
    if numbers_mapped:
        labels_text = [given[int(n)] if int(n) < len(given) else n for n in labels_text]
        distinct = list(dict.fromkeys(labels_text))
    unknown = tuple(n for n in distinct if class_names is not None and n not in given)
    names = keras_order(sorted(set(distinct) | set(given)))  # Keras' class_indices; reordered later as chosen
    position = {name: i for i, name in enumerate(names)}
    listed = {rel for rel, _ in kept} | set(first_row)
    not_listed = tuple(sorted(rel for rel in _image_root_files(str(root)) if rel not in listed))
    folder = ImageFolder(
        root=root,
        class_names=names,
        files=tuple(rel for rel, _ in kept),
        labels=tuple(position[label] for label in labels_text),
        ignored=tuple(p.file for p in missing),
        ignored_reasons={p.file: p.reason for p in missing},
        source=csv_name,
    )
    report = LabelsCsvReport(
        csv_name=csv_name,
        file_column=file_column,
        label_column=label_column,
        n_rows=len(rows),
        n_files=len(folder.files),
        missing=tuple(missing),
        duplicates=tuple(duplicates),
        conflicts=tuple(conflicts),
        not_listed=not_listed,
        unknown_labels=unknown,
        numeric_labels=tuple(numeric),
        numbers_mapped=numbers_mapped,
    )
    return folder, report


def _locate(raw: str, lexical_root: str, real_root: str, real_dirs: dict[str, bool]) -> tuple[str | None, str]:
    """(why the row's file cannot be evaluated or None, its path relative to the root).

    Resolved as ``flow_from_dataframe`` does (joined to the root; an absolute path taken as is),
    then confined: outside the root lexically or through a link is refused, as is anything but
    a regular image file. One ``lstat`` per row; each folder's links are resolved once.
    """
    if not raw:
        return "no file name given", raw
    full = os.path.normpath(os.path.join(lexical_root, raw))
    if not is_inside(full, lexical_root):
        return "outside the images folder (not read)", raw
    rel = Path(os.path.relpath(full, lexical_root)).as_posix()
    if not is_image_file(raw):
        return "not an image Keras would load (.bmp .gif .jpeg .jpg .png)", rel
    parent = os.path.dirname(full)
    if parent not in real_dirs:
        real_dirs[parent] = is_inside(os.path.realpath(parent), real_root)
    if not real_dirs[parent]:
        return OUTSIDE_ROOT, rel
    try:
        mode = os.lstat(full).st_mode
    except OSError as err:
        return ("not found" if isinstance(err, FileNotFoundError) else f"cannot be read: {err.strerror}"), rel
    if stat.S_ISREG(mode):
        return None, rel
    return refusal(full, real_root), rel


def find_labels_csvs(root: str | Path, limit: int = 500) -> list[str]:
    """CSV files under ``root`` (relative, ``/``-separated, sorted; hidden folders and links not
    entered), for a page to offer; at most ``limit``."""
    root = str(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if name.lower().endswith(".csv") and not name.startswith("."):
                found.append(name if rel_dir == "." else f"{Path(rel_dir).as_posix()}/{name}")
                if len(found) >= limit:
                    return found
    return found


def locate_images_root(csv_path: str | Path, top: str | Path, sample: int = 100) -> Path:
    """Where an unpacked zip's images start for this CSV: ``top`` or a folder it wraps alone.

    A zip of ``images/`` may hold ``images/a.png`` while the CSV says ``a.png`` (or says
    ``images/a.png``): of ``top`` and each lone wrapper folder inside it, the one under which
    most of the CSV's first ``sample`` files exist wins (``top`` on a tie). Reads only names.
    """
    header, *body = _read_rows(Path(csv_path)) or [[]]
    column = _pick_column(header, FILE_COLUMNS)
    candidates = [Path(top)]
    while True:
        entries = [e for e in os.scandir(candidates[-1]) if not _is_hidden(e.name)]
        if len(entries) != 1 or not entries[0].is_dir(follow_symlinks=False):
            break
        candidates.append(Path(entries[0].path))
    if column is None:
        return candidates[0]
    names = [_cell(row, column) for row in body[:sample]]

    def hits(root: Path) -> int:
        return sum(1 for name in names if name and os.path.isfile(os.path.join(root, name)))

    return max(candidates, key=hits)  # max keeps the first of equals: the outermost

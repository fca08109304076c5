"""Which output index means which class: Keras' folder order, natural order, or a training file.

The trap this module exists for: Keras sorts class folders as strings, so ``Class_10`` gets
index 1, while a model trained from a list in natural order expects ``Class_2`` there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from .errors import ClassOrderError

if TYPE_CHECKING:
    import pandas as pd

KERAS = "keras"
NATURAL = "natural"

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ClassOrder:
    """Class names by output index, and where that order came from (``keras``, ``natural``,
    or the labels file's name)."""

    names: tuple[str, ...]
    source: str


def natural_sort_key(name: str) -> tuple:
    """Sort key putting ``Class_2`` before ``Class_10`` (numbers compared as numbers)."""
    parts = _DIGITS.split(name)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)
    return key + ((2, 0, name),)


def keras_order(names: Sequence[str]) -> tuple[str, ...]:
    """Plain string sort: what ``flow_from_directory().class_indices`` gives."""
    return tuple(sorted(names))


def natural_order(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=natural_sort_key))


def read_class_order_file(path: str | Path) -> tuple[str, ...]:
    """Read a training-order file: a JSON ``{name: index}`` (``class_indices``), a JSON list of
    names, or a text file with one class name per line (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ClassOrderError(f"Class order file not found: {path}.", "Check the path.", path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ClassOrderError(
            f"Cannot read the class order file {path.name}: {err}.",
            "Give a UTF-8 text file with one class name per line, or a class_indices JSON.",
            path,
        ) from err
    stripped = text.strip()
    if path.suffix.lower() == ".json" or stripped.startswith(("{", "[")):
        return _parse_json_order(stripped, path)
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return _checked_names(names, path)


def _parse_json_order(text: str, path: Path) -> tuple[str, ...]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClassOrderError(
            f"{path.name} is not valid JSON ({err.msg} at line {err.lineno}).",
            "Give the dict that class_indices prints, e.g. {\"cat\": 0, \"dog\": 1}.",
            path,
        ) from err
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return _checked_names(data, path)
    if not isinstance(data, dict) or not data:
        raise ClassOrderError(
            f"{path.name} holds neither a {{name: index}} object nor a list of names.",
            "Give the dict that class_indices prints, e.g. {\"cat\": 0, \"dog\": 1}.",
            path,
        )
    indices = list(data.values())
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices) or sorted(
        indices
    ) != list(range(len(indices))):
        raise ClassOrderError(
            f"The indices in {path.name} must be the whole numbers 0..{len(indices) - 1}, "
            f"each once; got {sorted(indices, key=str)}.",
            "Save model.class_indices (or train_generator.class_indices) unchanged.",
            path,
        )
    return tuple(name for name, _ in sorted(data.items(), key=lambda item: item[1]))


def _checked_names(names: Sequence[str], path: Path) -> tuple[str, ...]:
    if not names:
        raise ClassOrderError(f"{path.name} lists no class names.", "One class name per line.", path)
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ClassOrderError(
            f"{path.name} names these classes more than once: {', '.join(duplicates)}.",
            "List each class once, in the order the model was trained with.",
            path,
        )
    return tuple(names)


def resolve_class_order(
    spec: str | Path, folder_classes: Sequence[str], counts: dict[str, int] | None = None
) -> ClassOrder:
    """Turn ``keras``, ``natural`` or a file path into the class order to use for a folder.

    A file must name every folder that holds images and no class the folder lacks; otherwise
    a ClassOrderError lists both sides. Empty folders the file leaves out are dropped.
    """
    if str(spec) == KERAS:
        return ClassOrder(keras_order(folder_classes), KERAS)
    if str(spec) == NATURAL:
        return ClassOrder(natural_order(folder_classes), NATURAL)
    path = Path(spec)
    names = read_class_order_file(path)
    counts = counts if counts is not None else dict.fromkeys(folder_classes, 1)
    missing_in_folder = tuple(n for n in names if n not in counts)
    missing_in_order = tuple(n for n in folder_classes if n not in names and counts.get(n, 0) > 0)
    if missing_in_folder or missing_in_order:
        sides = []
        if missing_in_folder:
            sides.append(f"in {path.name} but not a folder: {', '.join(missing_in_folder)}")
        if missing_in_order:
            sides.append(f"folders with images not in {path.name}: {', '.join(missing_in_order)}")
        raise ClassOrderError(
            f"The class order file does not match the image folder ({'; '.join(sides)}).",
            "Use the labels file saved with this model, or the image folder it was trained for.",
            path,
            missing_in_folder=missing_in_folder,
            missing_in_order=missing_in_order,
        )
    return ClassOrder(names, path.name)


# ----- showing and saving an order ----------------------------------------------------------------
def class_mapping_table(
    folder_classes: Sequence[str], counts: Mapping[str, int], in_use: Sequence[str]
) -> "pd.DataFrame":
    """One row per class folder: its output index under Keras' folder order, natural order and
    the order in use, its image count, and ``differs`` when those indices disagree.

    A class absent from ``in_use`` (an empty folder a labels file leaves out) has no index there.
    """
    import pandas as pd

    keras = {name: i for i, name in enumerate(keras_order(folder_classes))}
    natural = {name: i for i, name in enumerate(natural_order(folder_classes))}
    used = {name: i for i, name in enumerate(in_use)}
    rows = []
    for name in keras_order(folder_classes):
        indices = {keras[name], natural[name], used.get(name, -1)}
        rows.append(
            {
                "class": name,
                "images": int(counts.get(name, 0)),
                "keras_index": keras[name],
                "natural_index": natural[name],
                "in_use_index": used.get(name),
                "differs": len(indices) > 1,
            }
        )
    columns = ["class", "images", "keras_index", "natural_index", "in_use_index", "differs"]
    table = pd.DataFrame(rows, columns=columns)
    table["in_use_index"] = table["in_use_index"].astype("Int64")
    return table


def class_indices_json(order: Sequence[str]) -> str:
    """``{"name": index}`` as Keras' ``class_indices`` prints it (``read_class_order_file`` reads it back)."""
    return json.dumps({name: i for i, name in enumerate(order)}, indent=2, ensure_ascii=False) + "\n"


def labels_txt(order: Sequence[str]) -> str:
    """One class name per line, line ``k`` naming output ``k``."""
    return "".join(f"{name}\n" for name in order)

"""Leakage between a training folder and the evaluated one: the same image on both sides.

An evaluation image that also sits in the training folder makes accuracy look better than it is.
Two kinds are found: exact copies (same bytes: SHA-256) and near duplicates (re-encoded,
resized or slightly edited: a 64-bit difference hash (dHash) within ``max_distance`` bits).
Near-duplicate candidates come from splitting each hash into 8 bands of 8 bits: two hashes that
differ in at most 7 bits share at least one band exactly (pigeonhole), so only bucket mates are
compared and the search stays near-linear.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from .inference import MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    import pandas as pd

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: Largest file hashed or decoded (bigger ones are left out of the search).
MAX_FILE_BYTES = 256 * 1024 * 1024
BANDS = 8


@dataclass(frozen=True)
class LeakedPair:
    """An evaluated image and a training image that look like the same picture."""

    path: str  # relative to the evaluated folder
    train_path: str  # relative to the training folder
    kind: str  # "exact" | "near"
    similarity: float  # 1.0 for exact copies; 1 - hamming / 64 for near ones

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _sha256(path: Path) -> str | None:
    try:
        if os.stat(path).st_size > MAX_FILE_BYTES:
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def difference_hash(path: str | Path) -> int | None:
    """dHash: 9x8 grayscale, one bit per horizontal neighbour pair (None when unreadable)."""
    from PIL import Image

    try:
        if os.stat(path).st_size > MAX_FILE_BYTES:
            return None
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:  # a decompression bomb: never decoded
                return None
            image.draft("L", (18, 16))
            small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    except Exception:  # noqa: BLE001 - an unreadable file simply cannot leak
        return None
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def image_files(root: str | Path) -> list[str]:
    """Regular image files under ``root`` (relative, ``/``-separated, sorted; links not followed)."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            full = Path(folder) / name
            if name.lower().endswith(IMAGE_SUFFIXES) and full.is_file() and not full.is_symlink():
                found.append(full.relative_to(root).as_posix())
    return sorted(found)


def _popcount(values: np.ndarray) -> np.ndarray:
    bytes_ = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(bytes_, axis=1).sum(axis=1)


def find_leakage(
    eval_root: str | Path,
    eval_paths: Sequence[str],
    train_root: str | Path,
    train_paths: Iterable[str] | None = None,
    *,
    max_distance: int = 6,
) -> list[LeakedPair]:
    """Pairs (evaluated image, training image) that are exact or near copies, exact ones first,
    then by similarity. ``max_distance`` (at most 7) is the largest dHash distance in bits."""
    if not 0 <= max_distance <= BANDS - 1:
        raise ValueError(f"max_distance must be 0..{BANDS - 1}")
    eval_root, train_root = Path(eval_root), Path(train_root)
    train_paths = list(image_files(train_root) if train_paths is None else train_paths)
    by_digest: dict[str, list[str]] = defaultdict(list)
    train_hashes: list[tuple[str, int]] = []
    for rel in train_paths:
        digest = _sha256(train_root / rel)
        if digest is not None:
            by_digest[digest].append(rel)
        h = difference_hash(train_root / rel)
        if h is not None:
            train_hashes.append((rel, h))
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    values = np.array([h for _, h in train_hashes], dtype=np.uint64)
    for k, (_, h) in enumerate(train_hashes):
        for band in range(BANDS):
            buckets[(band, (h >> (8 * band)) & 0xFF)].append(k)
    pairs: list[LeakedPair] = []
    for rel in eval_paths:
        exact = by_digest.get(_sha256(eval_root / rel) or "", [])
        pairs.extend(LeakedPair(rel, other, "exact", 1.0) for other in exact)
        h = difference_hash(eval_root / rel)
        if h is None or not len(values):
            continue
        candidates = sorted({k for band in range(BANDS) for k in buckets.get((band, (h >> (8 * band)) & 0xFF), ())})
        if not candidates:
            continue
        distances = _popcount(values[candidates] ^ np.uint64(h))
        exact_set = set(exact)
        for k, distance in zip(candidates, distances):
            other = train_hashes[k][0]
            if distance <= max_distance and other not in exact_set:
                pairs.append(LeakedPair(rel, other, "near", 1 - int(distance) / 64))
    pairs.sort(key=lambda p: (p.kind != "exact", -p.similarity, p.path, p.train_path))
    return pairs


#: Columns of ``leakage_table``: the evaluated file (relative to the evaluated folder), the
#: training file (relative to the training folder), ``exact``/``near``, and the similarity.
LEAKAGE_COLUMNS = ("file", "train_file", "kind", "similarity")


def leakage_table(pairs: Sequence[LeakedPair] | None) -> "pd.DataFrame":
    """A run's leaked pairs (``Run.leakage``) as ``LEAKAGE_COLUMNS``: exact copies first, then
    the most similar; empty when none were found or the search was not made."""
    import pandas as pd

    ordered = sorted(pairs or (), key=lambda p: (p.kind != "exact", -p.similarity, p.path, p.train_path))
    return pd.DataFrame(
        [(p.path, p.train_path, p.kind, float(p.similarity)) for p in ordered], columns=list(LEAKAGE_COLUMNS)
    )

"""Fingerprints that tell whether two runs saw the same model and the same images."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of every file of a folder (a SavedModel) in sorted path order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            while block := f.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def size_in_bytes(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def file_list_fingerprint(relative_paths: Iterable[str]) -> str:
    """SHA-256 of the evaluated file list (relative paths, in order): same images, same fingerprint."""
    digest = hashlib.sha256()
    for rel in relative_paths:
        digest.update(rel.encode("utf-8") + b"\n")
    return digest.hexdigest()

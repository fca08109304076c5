"""Uploads kept once per content, and what the server accepts as an uploaded model.

A Streamlit page re-runs on every click, and several sessions may upload the same zip: each
upload (kind + content hash) is saved or extracted once under the scratch area and reused.
Each upload has its own lock, so a slow 100,000-entry zip never holds up another session's
small one; the lock that guards the index is held only for dictionary look-ups and renames.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ModelError, UploadError
from ..settings import Settings, get_settings
from .safe_zip import check_entry_names, extract_zip_safely
from .scratch import claim_stale_scratch, remove_scratch, scratch_dir, scratch_folder_of

log = logging.getLogger("gtpred.uploads")

MB = 1024 * 1024


@dataclass(frozen=True)
class ZipLimits:
    """The caps every uploaded zip (or folder) is unpacked under, from the server's settings."""

    max_total_bytes: int
    max_files: int
    max_ratio: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ZipLimits":
        settings = settings or get_settings()
        return cls(settings.max_upload_mb * MB, settings.max_zip_files, float(settings.max_zip_ratio))


class UploadCache:
    """Content hash -> where that upload was saved or extracted, shared by every session.

    ``saved(kind, digest, save)`` runs ``save(fresh scratch folder) -> path`` once per
    (kind, digest); later calls return the saved path (touched, so it is not pruned). Uploads
    unused for ``GTPRED_SCRATCH_TTL_H`` are freed, at most once per ``prune_every_s``.
    """

    def __init__(self, prune_every_s: float = 300.0) -> None:
        self.prune_every_s = prune_every_s
        self._paths: dict[str, Path] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._index = threading.Lock()  # guards the dicts, reuse-touches and claiming old folders
        self._last_prune = float("-inf")

    def saved(self, kind: str, digest: str, save: Callable[[Path], Path]) -> Path:
        key = f"{kind}-{digest}"
        with self._index:
            upload_lock = self._locks.setdefault(key, threading.Lock())
        with upload_lock:  # the same upload in two sessions: the second waits and reuses it
            with self._index:
                path = self._reuse(key)
                if path is not None:
                    return path
                stale = self._claim_stale()
                folder = scratch_dir(kind + "-")
            for _, claimed in stale:
                remove_scratch(claimed)  # outside the index lock: big trees take a while
            try:
                path = save(folder)
            except BaseException:
                remove_scratch(folder)
                raise
            with self._index:
                self._paths[key] = path
            return path

    def _reuse(self, key: str) -> Path | None:
        path = self._paths.get(key)
        if path is None or not path.exists():
            return None
        try:
            os.utime(scratch_folder_of(path))  # in use again: not old enough to prune
        except (ValueError, OSError):
            return None  # the scratch area moved (another GTPRED_CACHE_DIR): save it again
        return path

    def _claim_stale(self) -> list[tuple[Path, Path]]:
        now = time.monotonic()
        if now - self._last_prune < self.prune_every_s:
            return []
        self._last_prune = now
        claimed = claim_stale_scratch(get_settings().scratch_ttl_hours * 3600)
        gone = {original for original, _ in claimed}
        for key, path in list(self._paths.items()):
            try:
                if scratch_folder_of(path) in gone:
                    del self._paths[key]
            except ValueError:
                del self._paths[key]
        return claimed


_CACHE = UploadCache()


def upload_cache() -> UploadCache:
    """The server's upload cache (one per process, shared by its sessions)."""
    return _CACHE


def content_digest(*chunks: bytes) -> str:
    """A short SHA-256 of the chunks, each length-prefixed so (``ab``, ``c``) != (``a``, ``bc``)."""
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(len(chunk).to_bytes(8, "little"))
        sha.update(chunk)
    return sha.hexdigest()[:24]


def plain_name(name: str) -> str:
    """An uploaded file's own name without any folder part (browsers may send one)."""
    return Path(name.replace("\\", "/")).name or "upload"


def save_uploaded_file(name: str, data: bytes, kind: str, *, cache: UploadCache | None = None) -> Path:
    """Save one uploaded file (a model, a labels file) under its own name; return its path."""

    def save(folder: Path) -> Path:
        target = folder / plain_name(name)
        target.write_bytes(data)
        return target

    return (cache or _CACHE).saved(kind, content_digest(data, name.encode()), save)


def unpack_uploaded_zip(
    data: bytes, kind: str = "images-zip", *, cache: UploadCache | None = None, limits: ZipLimits | None = None
) -> Path:
    """Extract an uploaded zip safely (``extract_zip_safely``) once; return its content folder."""
    limits = limits or ZipLimits.from_settings()
    return (cache or _CACHE).saved(
        kind, content_digest(data), lambda dest: extract_zip_safely(io.BytesIO(data), dest, **asdict(limits))
    )


def save_uploaded_folder(
    files: Sequence[tuple[str, bytes]], *, cache: UploadCache | None = None, limits: ZipLimits | None = None
) -> Path:
    """Write an uploaded folder (``(relative name, bytes)`` per file) through the same vetting
    as a zip: names, count, total size. Returns the folder holding the class folders."""
    limits = limits or ZipLimits.from_settings()
    if len(files) > limits.max_files:
        raise UploadError(
            f"The folder holds {len(files):,} files; at most {limits.max_files:,} are allowed.",
            "Upload a smaller folder, or raise GTPRED_MAX_ZIP_FILES on the server.",
        )
    check_entry_names([name for name, _ in files])  # zipfile would cut a NUL byte silently
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as bundle:
        for name, data in files:
            bundle.writestr(name, data)
    return unpack_uploaded_zip(buffer.getvalue(), "images-dir", cache=cache, limits=limits)


def _model_in(folder: Path) -> Path:
    """The SavedModel folder (or .keras/.h5 file) inside an extracted zip."""
    from ..model import find_model_files

    found = find_model_files(folder, limit=2)
    if not found:
        raise ModelError(
            "The zip holds no model: no saved_model.pb folder and no .keras/.h5 file.",
            "Zip the SavedModel folder itself (the one with saved_model.pb and variables/).",
        )
    return folder / found[0]


def check_model_upload_allowed(model: Path, settings: Settings | None = None) -> None:
    """Refuse an uploaded TF SavedModel unless the server allows them (``GTPRED_ALLOW_SAVEDMODEL``).

    A .keras/.h5 loads in Keras' safe mode; a SavedModel's graph is code, run on load.
    """
    settings = settings or get_settings()
    if model.is_dir() and not settings.allow_savedmodel:
        raise UploadError(
            "This server does not accept uploaded TF SavedModels: loading one runs the "
            "TensorFlow graph it contains, which is code from the upload.",
            "Upload the model as a .keras or .h5 file, or ask the server's operator to set "
            "GTPRED_ALLOW_SAVEDMODEL=1 if everyone who can reach it is trusted.",
        )


def save_uploaded_model(
    name: str, data: bytes, *, cache: UploadCache | None = None, settings: Settings | None = None
) -> Path:
    """An uploaded model file, or the model inside an uploaded zip, saved once; the server's
    SavedModel policy applied. Returns the path to load."""
    if not name.lower().endswith(".zip"):
        return save_uploaded_file(name, data, "model", cache=cache)
    settings = settings or get_settings()
    folder = unpack_uploaded_zip(data, "model-zip", cache=cache, limits=ZipLimits.from_settings(settings))
    model = _model_in(folder)
    check_model_upload_allowed(model, settings)
    return model

"""Let users hand us files safely, one module per concept.

    safe_zip.py      uploaded zips: vetted names, caps on size, count, ratio and depth
    server_paths.py  typed or browsed paths, confined to the data root
    scratch.py       private folders for uploads, freed by age
    cache.py         each upload saved once per content (a lock per upload); the model policy

Everything a user names is untrusted; each refusal is an ``UploadError`` naming the entry or
path, the problem, and the fix.
"""

from .cache import (
    UploadCache,
    ZipLimits,
    check_model_upload_allowed,
    content_digest,
    save_uploaded_file,
    save_uploaded_folder,
    save_uploaded_model,
    unpack_uploaded_zip,
    upload_cache,
)
from .safe_zip import MAX_DEPTH, RATIO_CHECK_MIN_BYTES, check_entry_name, class_folder_root, extract_zip_safely
from .scratch import prune_scratch, remove_scratch, scratch_dir, scratch_folder_of
from .server_paths import MAX_NAME_BYTES, MAX_PATH_BYTES, list_subfolders, resolve_inside_root

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "RATIO_CHECK_MIN_BYTES",
    "UploadCache",
    "ZipLimits",
    "check_entry_name",
    "check_model_upload_allowed",
    "class_folder_root",
    "content_digest",
    "extract_zip_safely",
    "list_subfolders",
    "prune_scratch",
    "remove_scratch",
    "resolve_inside_root",
    "save_uploaded_file",
    "save_uploaded_folder",
    "save_uploaded_model",
    "scratch_dir",
    "scratch_folder_of",
    "unpack_uploaded_zip",
    "upload_cache",
]

"""Server and cache settings, read from the environment on each call, with safe defaults.

``get_settings()`` reads the environment every time it is called (it is cheap; nothing here
caches it), so tests and callers see a changed variable at once. What is built from the settings
may keep them: the app's worker pool keeps the limits it was created with until a restart.

| variable              | meaning                                                  | default              |
|-----------------------|----------------------------------------------------------|----------------------|
| GTPRED_DATA_ROOT      | the only folder server paths may point into              | ./data               |
| GTPRED_CACHE_DIR      | demo images, extracted uploads                           | ~/.cache/gtpred      |
| GTPRED_MAX_UPLOAD_MB  | largest uncompressed upload (zip contents included)      | 2048                 |
| GTPRED_MAX_ZIP_FILES  | most entries an uploaded zip may hold                    | 200000               |
| GTPRED_MAX_ZIP_RATIO  | largest compression ratio of a zip entry                 | 200                  |
| GTPRED_WORKER_MEMORY_MB | address-space limit of the inference worker process    | 8192                 |
| GTPRED_WORKER_TIME_LIMIT_S | longest one evaluation may run in the worker        | 3600                 |
| GTPRED_ALLOW_SAVEDMODEL | 1 to accept uploaded TF SavedModels (they are code)     | 0                    |
| GTPRED_WORKERS        | inference workers shared by all sessions (warm, each     | the usable CPUs      |
|                       | ~0.7 GB with TensorFlow); runs beyond them queue         |                      |
| GTPRED_SCRATCH_TTL_H  | uploads unused this long (hours) are deleted             | 24                   |
| GTPRED_RAY_ADDRESS    | the Ray cluster the app's "ray" backend joins            | a local Ray          |
| GTPRED_MAX_IMAGE_MB   | largest image file read (larger ones are skipped)        | 256                  |
| GTPRED_CLI_MEMORY_MB  | address-space limit of the command line (0: none)        | the worker's limit   |
| GTPRED_KEEP_DELETED_DAYS | days a deleted run stays restorable, then is purged ("never": kept) | 30   |
| GTPRED_DECODE_CACHE_MB | decoded images kept to replay (epochs, several models)  | 1024                 |
| GTPRED_WORKER_NICE    | how far below the web server the workers' CPU priority   | 10                   |
|                       | is (0-19; 0: the same), so pages answer while runs go    |                      |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_root: Path
    cache_dir: Path
    max_upload_mb: int
    max_zip_files: int
    max_zip_ratio: int
    worker_memory_mb: int = 8192
    worker_time_limit_s: float = 3600.0
    allow_savedmodel: bool = False
    workers: int = 1
    scratch_ttl_hours: float = 24.0
    ray_address: str | None = None
    max_image_mb: int = 256
    cli_memory_mb: int = 8192
    keep_deleted_days: float = 30.0
    decode_cache_mb: int = 1024
    worker_nice: int = 10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        return cls(
            data_root=Path(env.get("GTPRED_DATA_ROOT", "data")).expanduser().resolve(),
            cache_dir=Path(env.get("GTPRED_CACHE_DIR", "~/.cache/gtpred")).expanduser(),
            max_upload_mb=int(env.get("GTPRED_MAX_UPLOAD_MB", "2048")),
            max_zip_files=int(env.get("GTPRED_MAX_ZIP_FILES", "200000")),
            max_zip_ratio=int(env.get("GTPRED_MAX_ZIP_RATIO", "200")),
            worker_memory_mb=int(env.get("GTPRED_WORKER_MEMORY_MB", "8192")),
            worker_time_limit_s=float(env.get("GTPRED_WORKER_TIME_LIMIT_S", "3600")),
            allow_savedmodel=env.get("GTPRED_ALLOW_SAVEDMODEL", "0").strip().lower() in ("1", "true", "yes"),
            workers=int(env.get("GTPRED_WORKERS") or usable_cpus()),
            scratch_ttl_hours=float(env.get("GTPRED_SCRATCH_TTL_H", "24")),
            ray_address=env.get("GTPRED_RAY_ADDRESS") or None,
            max_image_mb=int(env.get("GTPRED_MAX_IMAGE_MB", "256")),
            cli_memory_mb=int(env.get("GTPRED_CLI_MEMORY_MB") or env.get("GTPRED_WORKER_MEMORY_MB", "8192")),
            keep_deleted_days=_days(env.get("GTPRED_KEEP_DELETED_DAYS", "30")),
            decode_cache_mb=int(env.get("GTPRED_DECODE_CACHE_MB", "1024")),
            worker_nice=max(0, min(19, int(env.get("GTPRED_WORKER_NICE", "10")))),
        )


def _days(text: str) -> float:
    """A number of days, or ``never`` (infinity): how long a deleted run stays restorable."""
    text = text.strip().lower() or "30"
    return float("inf") if text in ("never", "inf") else float(text)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under ``taskset``), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def get_settings() -> Settings:
    return Settings.from_env()

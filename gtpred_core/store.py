"""The run store: every finished run in one embedded SQLite file, reloadable bit for bit.

Safety choices: WAL journaling (readers never block the writer), a busy timeout (concurrent
writers wait instead of failing with "database is locked"), one connection per thread (sqlite3
connections must not be shared), and each run written through one insert path, in one
``BEGIN IMMEDIATE`` transaction for ``save`` (a crash leaves it whole or absent) or chunk by
chunk for a streamed ``RunWriter``.

Reading never writes: lists, ``get``, ``load`` and exports use a read-only connection
(``mode=ro``), so a damaged or read-only file is reported, never touched. Migrations, marking
abandoned runs failed and purging old deleted runs happen only when the store is first written.
``PRAGMA user_version`` holds the schema version; a newer file is refused.

Every SQLite failure becomes a ``StoreError`` with one line saying what is wrong and the fix
(a damaged file, a read-only file, a full disk, a busy lock), never a bare ``DatabaseError``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sqlite3
import threading
import unicodedata
import urllib.parse
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import InvariantError, RunDeletedError, RunNameError, StoreError
from .run import Run, RunInfo

log = logging.getLogger("gtpred.store")

__all__ = [
    "GuardedWriter",
    "MAX_RUN_NAME_CHARS",
    "RunDeletedError",
    "RunNameError",
    "RunStore",
    "RunWriter",
    "StoreError",
    "StoredRun",
    "check_run_name",
    "default_db_path",
    "printable",
]

#: Schema migrations; entry k brings a database from version k to k + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'cancelled')),
        created_at TEXT NOT NULL,
        gtpred_version TEXT NOT NULL,
        model TEXT NOT NULL,
        model_bytes INTEGER,
        model_sha256 TEXT,
        images TEXT NOT NULL,
        images_fingerprint TEXT,
        class_order_source TEXT NOT NULL,
        preprocess TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        n_classes INTEGER NOT NULL,
        n_images INTEGER NOT NULL,
        accuracy REAL,
        top5_accuracy REAL,
        summary TEXT NOT NULL
    );
    CREATE TABLE predictions (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        path TEXT NOT NULL,
        y_true INTEGER NOT NULL,
        y_pred INTEGER NOT NULL,
        probabilities BLOB NOT NULL,
        PRIMARY KEY (run_id, idx)
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_fingerprint ON runs(images_fingerprint);
    """,
    # v2: training runs (one evaluation per epoch or checkpoint), grouped under a training.
    """
    CREATE TABLE trainings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'cancelled'))
    );
    ALTER TABLE runs ADD COLUMN training_id INTEGER REFERENCES trainings(id) ON DELETE CASCADE;
    ALTER TABLE runs ADD COLUMN epoch INTEGER;
    ALTER TABLE runs ADD COLUMN logs TEXT;
    CREATE INDEX runs_by_training ON runs(training_id, epoch);
    """,
    # v3: runs streamed in chunks name their writer (host:pid), so an abandoned one can be found.
    """
    ALTER TABLE runs ADD COLUMN writer TEXT;
    """,
    # v4: soft delete. A deleted run is hidden and restorable; a purged one keeps only its row
    # (a tombstone: id, name, dates) so a link to it can say what happened to it.
    """
    ALTER TABLE runs ADD COLUMN deleted_at TEXT;
    ALTER TABLE runs ADD COLUMN purged_at TEXT;
    """,
    # v5: the run's 2-D embedding map, (x, y) float32 little-endian per image in run order (NULL:
    # none asked for). What it maps is in the summary (``embedding_method``), as is ``leakage``.
    """
    ALTER TABLE runs ADD COLUMN embedding BLOB;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Longest run name, in characters: names are shown to every user of the history.
MAX_RUN_NAME_CHARS = 200

#: Keys of ``Run.summary()`` that repeat the metrics: the stored document keeps them once, in
#: ``metrics`` (``accuracy`` and ``top5_accuracy`` also have columns, for listing).
_METRIC_COPIES = ("n_images", "accuracy", "top5_accuracy", "per_class", "macro_avg", "weighted_avg", "confusion_matrix")

#: Characters that reorder the text around them (a name can then show as something else).
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_DAMAGED_FIX = (
    "Restore the file from a backup, or save what can still be read with "
    "`sqlite3 FILE .recover | sqlite3 recovered.sqlite3` and point GTPRED_DB (or --db) at the "
    "recovered file."
)
_READONLY_FIX = (
    "Make the file and its folder writable by the user running gtpred, or point GTPRED_DB "
    "(or --db) at a writable file."
)


def default_db_path() -> Path:
    return Path(os.environ.get("GTPRED_DB", "~/.local/share/gtpred/runs.sqlite3")).expanduser()


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def printable(text: str, limit: int = MAX_RUN_NAME_CHARS) -> str:
    """``text`` safe to print on one line: control, escape and bidi characters written as
    ``\\u001b``-style escapes, and cut to ``limit`` characters (names stored before names
    were checked may hold anything)."""
    shown = "".join(f"\\u{ord(c):04x}" if _is_control(c) else c for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def check_run_name(name: str) -> str:
    """The name to store (surrounding spaces removed), or RunNameError.

    Run names are shown to every user of the history: a newline printed a fake row in
    ``runs list``, an ANSI escape recolours a terminal, a 1 MB name froze a viewer's browser.
    """
    name = name.strip()
    if len(name) > MAX_RUN_NAME_CHARS:
        raise RunNameError(
            f"A run name may hold at most {MAX_RUN_NAME_CHARS} characters; this one has {len(name):,}.",
            "Choose a shorter name.",
            name,
        )
    bad = next((c for c in name if _is_control(c)), None)
    if bad is not None:
        raise RunNameError(
            "A run name cannot hold control characters (line breaks, tabs, terminal escapes, "
            f"text-direction marks); this one holds U+{ord(bad):04X}.",
            "Type the name on one line, with letters, digits, spaces and punctuation only.",
            name,
        )
    return name


@dataclass(frozen=True)
class StoredRun:
    """One row of the run history: the key numbers without the predictions."""

    id: int
    name: str
    status: str
    created_at: str
    model: str
    model_sha256: str | None
    images: str
    images_fingerprint: str | None
    class_order_source: str
    preprocess: str
    n_images: int
    accuracy: float | None
    top5_accuracy: float | None
    deleted_at: str | None = None
    purged_at: str | None = None


@dataclass(frozen=True)
class StoredTraining:
    id: int
    name: str
    created_at: str
    source: str
    status: str
    n_epochs: int


@dataclass(frozen=True)
class TrainingEpoch:
    epoch: int
    run_id: int
    logs: dict[str, Any]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _default_name(info: RunInfo) -> str:
    return printable(f"{Path(info.model).name} on {Path(info.images).name}")


def _name_for(name: str | None, info: RunInfo) -> str:
    """The name to store: ``name`` made printable (escaped, at most 200 characters; names
    typed by a user are refused earlier by ``check_run_name``, so they can be corrected), or
    the default one (model on images) when none was given."""
    name = (name or "").strip()
    return printable(name) if name else _default_name(info)


def _this_writer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_dead(writer: str | None) -> bool:
    """True when ``writer`` (host:pid) is a process of this host that no longer runs."""
    host, _, pid = (writer or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid))


def _inserted_id(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:
        raise InvariantError("SQLite gave no id for the row just inserted.")
    return int(cursor.lastrowid)


def _plain(value: Any) -> Any:
    """Keras logs hold numpy scalars; make them JSON numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _stored_document(run: Run) -> str:
    """The run's summary as stored: every finding once, the metrics once (under ``metrics``)."""
    document = {key: value for key, value in run.summary().items() if key not in _METRIC_COPIES}
    document["metrics"] = run.metrics.to_dict()
    return json.dumps(document)


def _prediction_rows(
    run_id: int, first: int, paths: Sequence[str], y_true: Any, y_pred: Any, probabilities: np.ndarray
) -> Iterator[tuple[int, int, str, int, int, bytes]]:
    """Rows of the ``predictions`` table, numbered from ``first`` (the run's order)."""
    probabilities = np.ascontiguousarray(probabilities, dtype="<f4")
    true_list, pred_list = np.asarray(y_true).tolist(), np.asarray(y_pred).tolist()
    for i, path in enumerate(paths):
        yield run_id, first + i, path, int(true_list[i]), int(pred_list[i]), probabilities[i].tobytes()


_INSERT_PREDICTIONS = "INSERT INTO predictions (run_id, idx, path, y_true, y_pred, probabilities) VALUES (?, ?, ?, ?, ?, ?)"


class RunWriter:
    """Streams a run into the store: ``start`` (status ``running``), rows in chunks of one
    transaction each, then ``finish`` with the summary and final status.

    It shares every statement with ``RunStore.save`` (which runs the same three steps in one
    transaction). A crash loses at most the rows not yet flushed; the run stays ``running``
    until the store finds its writer dead and marks it ``failed``. Cancelling keeps the rows.
    """

    def __init__(self, store: "RunStore", name: str | None, chunk_rows: int) -> None:
        self.store = store
        self.name = name
        self.chunk_rows = chunk_rows
        self.run_id: int | None = None
        self.n_rows = 0
        self._pending: list[tuple[int, int, str, int, int, bytes]] = []

    def start(self, info: RunInfo, class_names: Sequence[str]) -> int:
        with self.store._transaction() as conn:
            self.run_id = self.store._insert_run(
                conn, info, _name_for(self.name, info), len(class_names), writer=_this_writer()
            )
        return self.run_id

    def add_rows(self, paths: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray) -> None:
        if self.run_id is None:
            raise InvariantError("RunWriter.add_rows was called before start.")
        self._pending.extend(_prediction_rows(self.run_id, self.n_rows, paths, y_true, y_pred, probabilities))
        self.n_rows += len(paths)
        if len(self._pending) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self.store._transaction() as conn:
            conn.executemany(_INSERT_PREDICTIONS, self._pending)
        self._pending = []

    def finish(self, run: Run, status: str | None = None) -> int:
        """Write the summary and status; the stored rows must be exactly the run's."""
        self.flush()
        if self.run_id is None:
            raise InvariantError("RunWriter.finish was called before start.")
        if self.n_rows != run.n_images:
            raise InvariantError(f"{self.n_rows} rows were stored for a run of {run.n_images} images.")
        with self.store._transaction() as conn:
            self.store._finish_run(conn, self.run_id, run, status or run.info.status)
        return self.run_id

    def fail(self) -> None:
        """Mark the run failed, keeping the rows already stored."""
        with self.store._transaction() as conn:
            conn.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (self.run_id,))


class GuardedWriter:
    """A sink that saves into the store but never fails the evaluation.

    The first store error is kept in ``error`` and saving stops (the partial stored run is
    marked failed); inference goes on, so the results survive whatever happens to the database.
    """

    def __init__(self, writer: RunWriter | None, error: BaseException | None = None, *, log_errors: bool = True) -> None:
        self.writer = writer
        self.error = error
        self.log_errors = log_errors  # False when the caller reports ``error`` itself (the CLI)

    @classmethod
    def into(cls, store_path: str | Path | None, name: str | None = None, *, log_errors: bool = True) -> "GuardedWriter":
        """A guarded writer for the store at ``store_path`` (None: the default store); a store
        that cannot open gives one that only keeps the error."""
        try:
            return cls(RunStore(store_path).writer(name), log_errors=log_errors)
        except Exception as err:  # noqa: BLE001 - kept with the run; the evaluation must go on
            if log_errors:
                log.warning("The run store cannot be opened: %s", err)
            return cls(None, err, log_errors=log_errors)

    @property
    def run_id(self) -> int | None:
        return self.writer.run_id if self.writer is not None and self.error is None else None

    def _guard(self, step: str, *args: Any) -> None:
        if self.writer is None or self.error is not None:
            return
        try:
            getattr(self.writer, step)(*args)
        except Exception as err:  # noqa: BLE001 - kept and shown; the evaluation must go on
            if self.log_errors:
                log.warning("Saving the run in the store failed: %s", err)
            self.error = err
            if self.writer.run_id is not None and step != "fail":
                try:
                    self.writer.fail()
                except Exception:  # noqa: BLE001 - the store is already failing
                    pass

    def start(self, info: RunInfo, class_names: Sequence[str]) -> int | None:
        self._guard("start", info, class_names)
        return self.run_id

    def add_rows(self, paths: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray) -> None:
        self._guard("add_rows", paths, y_true, y_pred, probabilities)

    def finish(self, run: Run) -> int | None:
        self._guard("finish", run)
        return self.run_id

    def fail(self) -> None:
        self._guard("fail")


_STORED_RUN_COLUMNS = (
    "id, name, status, created_at, model, model_sha256, images, images_fingerprint, "
    "class_order_source, preprocess, n_images, accuracy, top5_accuracy"
)


class RunStore:
    """Runs in a SQLite file. Safe to share between threads; each gets its own connections.

    Nothing is written until something is stored, renamed or deleted: reading a store that is
    damaged, read-only, or from an older gtpred leaves the file exactly as it was.
    """

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._ready_lock = threading.Lock()
        self._ready_for_writing = False
        if self.path.is_dir():
            raise StoreError(
                f"The run store ({self.path.name}) cannot be opened: it is a folder, not a file.",
                "Point GTPRED_DB (or --db) at a file, e.g. runs.sqlite3 inside that folder.",
                self.path,
            )
        if self.path.exists():
            with self._reading() as conn:
                if conn is not None:
                    self._check_version(conn)  # a newer file is refused now, not at the first write

    # ----- connections, errors and schema
    def _error(self, err: sqlite3.Error | OSError) -> StoreError:
        """One sentence for the user and the fix; the full path and SQLite's words go to the log."""
        code = getattr(err, "sqlite_errorname", "") or ""
        text = str(err)
        log.info("Run store %s: %s (%s)", self.path, text, code or type(err).__name__)  # the caller reports it
        where = f"The run store ({self.path.name})"
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
            return StoreError(
                f"{where} cannot be opened: it is damaged ({text}).", _DAMAGED_FIX.replace("FILE", self.path.name), self.path
            )
        if code.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or "readonly" in text or isinstance(err, PermissionError):
            return StoreError(f"{where} is read-only for this process, so nothing can be stored in it.", _READONLY_FIX, self.path)
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreError(
                f"{where} stayed locked by another process for more than {self.timeout_s:g} s.",
                "Try again; if it persists, stop the process that holds the file open.",
                self.path,
            )
        if code.startswith("SQLITE_FULL"):
            return StoreError(f"{where} cannot grow: the disk is full.", "Free some disk space, then try again.", self.path)
        if code.startswith("SQLITE_CANTOPEN") or isinstance(err, OSError):
            return StoreError(
                f"{where} cannot be opened ({text}).",
                "Check that its folder exists and is readable by the user running gtpred, or point "
                "GTPRED_DB (or --db) at another file.",
                self.path,
            )
        if code.startswith("SQLITE_IOERR"):
            return StoreError(f"{where} could not be read or written: {text}.", "Check the disk that holds it.", self.path)
        return StoreError(f"{where} failed: {text}.", "Try again; if it persists, restore the file from a backup.", self.path)

    def _open_read_only(self, immutable: bool) -> sqlite3.Connection:
        query = "mode=ro&immutable=1" if immutable else "mode=ro"
        uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?{query}"
        conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        conn.execute("PRAGMA query_only=1")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # WAL needs its -shm here
        return conn

    def _read_connection(self) -> sqlite3.Connection | None:
        """This thread's read-only connection, or None while the file does not exist.

        A WAL file in a folder this process cannot write cannot get its shared-memory file: it
        is then opened ``immutable`` (nobody without write access can be changing it either).
        """
        conn = getattr(self._local, "reader", None)
        if conn is None:
            if not self.path.exists():
                return None
            try:
                conn = self._open_read_only(immutable=False)
            except sqlite3.OperationalError as err:
                if getattr(err, "sqlite_errorname", "") not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN", "SQLITE_READONLY"):
                    raise
                conn = self._open_read_only(immutable=True)
            self._local.reader = conn
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """The read-only connection (None: no file yet); SQLite errors become StoreErrors."""
        try:
            yield self._read_connection()
        except (sqlite3.Error, OSError) as err:
            raise self._error(err) from err

    def _write_connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "writer", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")  # a no-op once the file is in WAL mode
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.writer = conn
        if not self._ready_for_writing:
            with self._ready_lock:
                if not self._ready_for_writing:
                    self._prepare_for_writing(conn)
                    self._ready_for_writing = True
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no deadlocked upgrades)."""
        try:
            conn = self._write_connection()
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, OSError) as err:
            raise self._error(err) from err
        try:
            yield conn
        except BaseException as err:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the transaction is already gone (e.g. the disk failed)
            if isinstance(err, sqlite3.Error):
                raise self._error(err) from err
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise self._error(err) from err

    def _check_version(self, conn: sqlite3.Connection) -> int:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"The run store ({self.path.name}) was written by a newer gtpred (schema {version}, "
                f"this one knows {SCHEMA_VERSION}).",
                "Upgrade gtpred, or point GTPRED_DB at another file.",
                self.path,
            )
        return version

    def _prepare_for_writing(self, conn: sqlite3.Connection) -> None:
        """Once per store: migrate, mark runs of dead writers failed, purge old deleted runs."""
        from .settings import get_settings

        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._check_version(conn)
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if version != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            for run_id, writer in conn.execute("SELECT id, writer FROM runs WHERE status = 'running'").fetchall():
                if _writer_dead(writer):
                    conn.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (run_id,))
            if "purged_at" in self._columns(conn):
                self._purge_in(conn, self._deleted_before(conn, get_settings().keep_deleted_days))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _columns(conn: sqlite3.Connection, table: str = "runs") -> frozenset[str]:
        """The table's columns as this file has them (an older file may lack the newest)."""
        return frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))

    @property
    def schema_version(self) -> int:
        with self._reading() as conn:
            return 0 if conn is None else int(conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_ok(self) -> bool:
        with self._reading() as conn:
            return conn is None or conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        for kind in ("reader", "writer"):
            conn = getattr(self._local, kind, None)
            if conn is not None:
                conn.close()
                setattr(self._local, kind, None)

    # ----- the one insert path: save (one transaction) and RunWriter (chunks) share it
    def _insert_run(
        self,
        conn: sqlite3.Connection,
        info: RunInfo,
        name: str,
        n_classes: int,
        *,
        writer: str | None,
        training_id: int | None = None,
        epoch: int | None = None,
        logs: dict[str, Any] | None = None,
    ) -> int:
        cursor = conn.execute(
            """INSERT INTO runs (name, status, created_at, gtpred_version, model, model_bytes,
               model_sha256, images, images_fingerprint, class_order_source, preprocess,
               batch_size, n_classes, n_images, summary, training_id, epoch, logs, writer)
               VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '{}', ?, ?, ?, ?)""",
            (
                name, info.created_at or _now(), info.gtpred_version, info.model, info.model_bytes,
                info.model_sha256, info.images, info.images_fingerprint, info.class_order_source,
                info.preprocess, info.batch_size, n_classes, training_id, epoch,
                json.dumps(_plain(logs)) if logs is not None else None, writer,
            ),
        )
        return _inserted_id(cursor)

    @staticmethod
    def _finish_run(conn: sqlite3.Connection, run_id: int, run: Run, status: str) -> None:
        embedding = np.ascontiguousarray(run.embedding, dtype="<f4").tobytes() if run.embedding is not None else None
        conn.execute(
            """UPDATE runs SET status = ?, n_images = ?, accuracy = ?, top5_accuracy = ?, summary = ?,
               created_at = ?, embedding = ? WHERE id = ?""",
            (status, run.n_images, run.metrics.accuracy, run.metrics.top5_accuracy,
             _stored_document(run), run.info.created_at or _now(), embedding, run_id),
        )

    def save(
        self,
        run: Run,
        name: str | None = None,
        status: str | None = None,
        *,
        training_id: int | None = None,
        epoch: int | None = None,
        logs: dict[str, Any] | None = None,
    ) -> int:
        """Store ``run`` whole (one transaction) and return its id; with ``training_id``, as
        that training's evaluation at ``epoch`` (with the epoch's Keras ``logs``)."""
        name = _name_for(name, run.info)
        with self._transaction() as conn:
            run_id = self._insert_run(
                conn, run.info, name, len(run.class_names), writer=None,
                training_id=training_id, epoch=epoch, logs=logs,
            )
            conn.executemany(
                _INSERT_PREDICTIONS,
                _prediction_rows(run_id, 0, run.paths, run.y_true, run.y_pred, run.probabilities),
            )
            self._finish_run(conn, run_id, run, status or run.info.status)
        return run_id

    def writer(self, name: str | None = None, *, chunk_rows: int = 4096) -> RunWriter:
        """A sink for ``evaluate_folder(sink=...)`` that streams the run into this store."""
        return RunWriter(self, name, chunk_rows)

    # ----- names, soft delete, restore and purge
    def _state(self, conn: sqlite3.Connection, run_id: int) -> tuple[str | None, str | None]:
        """(deleted_at, purged_at) of the run, or StoreError when there is no such run."""
        columns = self._columns(conn)
        deleted = "deleted_at" if "deleted_at" in columns else "NULL"
        purged = "purged_at" if "purged_at" in columns else "NULL"
        row = conn.execute(f"SELECT {deleted}, {purged} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise self._missing(run_id)
        return row[0], row[1]

    def _deleted_error(self, run_id: int, deleted_at: str, purged_at: str | None) -> RunDeletedError:
        return RunDeletedError(run_id, deleted_at, restorable=purged_at is None, path=self.path)

    def rename(self, run_id: int, name: str) -> None:
        name = check_run_name(name)
        with self._transaction() as conn:
            deleted_at, purged_at = self._state(conn, run_id)
            if deleted_at is not None:
                raise self._deleted_error(run_id, deleted_at, purged_at)
            conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))

    def delete(self, run_id: int) -> None:
        """Hide the run from every list; ``restore`` brings it back until it is purged."""
        with self._transaction() as conn:
            deleted_at, _ = self._state(conn, run_id)
            if deleted_at is None:
                conn.execute("UPDATE runs SET deleted_at = ? WHERE id = ?", (_now(), run_id))

    def restore(self, run_id: int) -> None:
        """Bring a deleted run back; a purged one raises RunDeletedError (restorable=False)."""
        with self._transaction() as conn:
            deleted_at, purged_at = self._state(conn, run_id)
            if purged_at is not None:
                raise self._deleted_error(run_id, deleted_at or purged_at, purged_at)
            conn.execute("UPDATE runs SET deleted_at = NULL WHERE id = ?", (run_id,))

    def purge(self, run_ids: Sequence[int] = (), *, older_than_days: float | None = None) -> list[int]:
        """Purge deleted runs: their predictions and summary go, a tombstone row stays (so a
        link to one can say it is gone for good). ``run_ids``: those runs (each must have been
        deleted); otherwise every run deleted more than ``older_than_days`` ago (default
        ``GTPRED_KEEP_DELETED_DAYS``). Returns the ids purged."""
        from .settings import get_settings

        with self._transaction() as conn:
            if run_ids:
                ids = []
                for run_id in run_ids:
                    deleted_at, purged_at = self._state(conn, run_id)
                    if deleted_at is None:
                        raise StoreError(
                            f"Run {run_id} is not deleted; only deleted runs are purged.",
                            f"Delete it first: python -m gtpred_core runs delete {run_id}",
                            self.path,
                        )
                    if purged_at is None:
                        ids.append(run_id)
            else:
                days = get_settings().keep_deleted_days if older_than_days is None else older_than_days
                ids = self._deleted_before(conn, days)
            self._purge_in(conn, ids)
        return ids

    @staticmethod
    def _deleted_before(conn: sqlite3.Connection, days: float) -> list[int]:
        if not math.isfinite(days):
            return []
        cutoff = (datetime.now(timezone.utc) - timedelta(days=max(days, 0))).isoformat(timespec="seconds")
        rows = conn.execute(
            "SELECT id FROM runs WHERE deleted_at IS NOT NULL AND purged_at IS NULL AND deleted_at <= ?", (cutoff,)
        ).fetchall()
        return [row[0] for row in rows]

    @staticmethod
    def _purge_in(conn: sqlite3.Connection, run_ids: Sequence[int]) -> None:
        now = _now()
        for run_id in run_ids:
            conn.execute("DELETE FROM predictions WHERE run_id = ?", (run_id,))
            conn.execute(
                "UPDATE runs SET summary = '{}', logs = NULL, embedding = NULL, purged_at = ? WHERE id = ?", (now, run_id)
            )
        if run_ids:
            log.info("Purged deleted runs %s", ", ".join(map(str, run_ids)))

    # ----- trainings: one stored run per epoch
    def start_training(self, name: str, source: str) -> int:
        name = printable(name.strip()) or "training"
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO trainings (name, created_at, source, status) VALUES (?, ?, ?, 'running')",
                (name, _now(), source),
            )
            return _inserted_id(cursor)

    def finish_training(self, training_id: int, status: str = "complete") -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE trainings SET status = ? WHERE id = ?", (status, training_id))

    def list_trainings(self) -> list[StoredTraining]:
        """All trainings, newest first, with their number of recorded (not deleted) epochs."""
        with self._reading() as conn:
            if conn is None or not self._columns(conn, "trainings"):
                return []
            live = " AND r.deleted_at IS NULL" if "deleted_at" in self._columns(conn) else ""
            rows = conn.execute(
                f"""SELECT t.id, t.name, t.created_at, t.source, t.status, COUNT(r.id)
                   FROM trainings t LEFT JOIN runs r ON r.training_id = t.id{live}
                   GROUP BY t.id ORDER BY t.id DESC"""
            ).fetchall()
        return [StoredTraining(*row) for row in rows]

    def training_epochs(self, training_id: int) -> list[TrainingEpoch]:
        """The training's recorded epochs in order: epoch number, stored run id, Keras logs."""
        with self._reading() as conn:
            if conn is None or "training_id" not in (columns := self._columns(conn)):
                return []
            live = " AND deleted_at IS NULL" if "deleted_at" in columns else ""
            rows = conn.execute(
                f"SELECT epoch, id, logs FROM runs WHERE training_id = ?{live} ORDER BY epoch, id", (training_id,)
            ).fetchall()
        return [TrainingEpoch(epoch, run_id, json.loads(logs) if logs else {}) for epoch, run_id, logs in rows]

    # ----- reading
    def _select_runs(self, conn: sqlite3.Connection, where: Sequence[str], params: Sequence[Any] = ()) -> list[StoredRun]:
        columns = self._columns(conn)
        extra = ", ".join(c if c in columns else "NULL" for c in ("deleted_at", "purged_at", "writer"))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = conn.execute(
            f"SELECT {_STORED_RUN_COLUMNS}, {extra} FROM runs {clause} ORDER BY id DESC", params
        ).fetchall()
        runs = []
        for row in rows:
            *values, writer = row
            stored = StoredRun(*values)  # the last two values are deleted_at, purged_at
            if stored.status == "running" and _writer_dead(writer):
                # Reported as it will be stored at the next write; reading never writes.
                stored = dataclasses.replace(stored, status="failed")
            runs.append(stored)
        return runs

    def list(self, include_training_epochs: bool = False, *, deleted: bool = False) -> list[StoredRun]:
        """Runs, newest first: evaluations only, unless training epochs are asked for; the
        deleted ones (tombstones included) instead of the live ones with ``deleted=True``."""
        with self._reading() as conn:
            if conn is None or not (columns := self._columns(conn)):
                return []
            where = []
            if not include_training_epochs and "training_id" in columns:
                where.append("training_id IS NULL")
            if "deleted_at" in columns:
                where.append("deleted_at IS NOT NULL" if deleted else "deleted_at IS NULL")
            elif deleted:
                return []
            return self._select_runs(conn, where)

    def get(self, run_id: int) -> StoredRun:
        """One run's row (a single-row query); RunDeletedError for a deleted run."""
        with self._reading() as conn:
            found = self._select_runs(conn, ["id = ?"], (run_id,)) if conn is not None and self._columns(conn) else []
        if not found:
            raise self._missing(run_id)
        row = found[0]
        if row.deleted_at is not None:
            raise self._deleted_error(run_id, row.deleted_at, row.purged_at)
        return row

    def load(self, run_id: int) -> Run:
        """The stored run, equal to the one saved: paths, labels, probabilities bit for bit.
        RunDeletedError for a deleted run."""
        with self._reading() as conn:
            if conn is None or not (columns := self._columns(conn)):
                raise self._missing(run_id)
            deleted = ", ".join(c if c in columns else "NULL" for c in ("deleted_at", "purged_at", "embedding"))
            conn.execute("BEGIN")  # one snapshot: the row and its predictions agree
            try:
                row = conn.execute(f"SELECT summary, n_classes, {deleted} FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise self._missing(run_id)
                if row[2] is not None:
                    raise self._deleted_error(run_id, row[2], row[3])
                predictions = conn.execute(
                    "SELECT path, y_true, y_pred, probabilities FROM predictions WHERE run_id = ? ORDER BY idx",
                    (run_id,),
                ).fetchall()
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        summary, n_classes = json.loads(row[0]), row[1]
        if row[4] is not None:
            summary["embedding"] = np.frombuffer(row[4], dtype="<f4").reshape(-1, 2).astype(np.float32)
        blob = b"".join(p[3] for p in predictions)
        summary.update(
            paths=[p[0] for p in predictions],
            y_true=np.fromiter((p[1] for p in predictions), np.int64, len(predictions)),
            y_pred=np.fromiter((p[2] for p in predictions), np.int64, len(predictions)),
            probabilities=np.frombuffer(blob, dtype="<f4").reshape(len(predictions), n_classes).astype(np.float32),
        )
        return Run.from_dict(summary)

    def _missing(self, run_id: int) -> StoreError:
        return StoreError(
            f"There is no run {run_id} in the run store ({self.path.name}).",
            "List the runs with: python -m gtpred_core runs list",
            self.path,
        )

"""The run store: every finished run in one embedded SQLite file, reloadable bit for bit.

Safety choices: WAL journaling (readers never block the writer), a busy timeout (concurrent
writers wait instead of failing with "database is locked"), one connection per thread (sqlite3
connections must not be shared), and each run written in one ``BEGIN IMMEDIATE`` transaction,
so a crash or SIGKILL leaves it whole or absent. ``PRAGMA user_version`` holds the schema
version; ``MIGRATIONS`` bring an older file up to date, and a newer file is refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import InvariantError, StoreError
from .run import Run, RunInfo

log = logging.getLogger("gtpred.store")

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
)
SCHEMA_VERSION = len(MIGRATIONS)


def default_db_path() -> Path:
    return Path(os.environ.get("GTPRED_DB", "~/.local/share/gtpred/runs.sqlite3")).expanduser()


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


class RunWriter:
    """Streams a run into the store: ``start`` (status ``running``), rows in chunks of one
    transaction each, then ``finish`` with the summary and final status.

    A crash loses at most the rows not yet flushed; the run stays ``running`` until the next
    open of the store finds its writer dead and marks it ``failed``. Cancelling keeps the rows.
    """

    def __init__(self, store: "RunStore", name: str | None, chunk_rows: int) -> None:
        self.store = store
        self.name = name
        self.chunk_rows = chunk_rows
        self.run_id: int | None = None
        self.n_rows = 0
        self._pending: list[tuple] = []

    def start(self, info: RunInfo, class_names: Sequence[str]) -> int:
        with self.store._transaction() as conn:
            cursor = conn.execute(
                """INSERT INTO runs (name, status, created_at, gtpred_version, model, model_bytes,
                   model_sha256, images, images_fingerprint, class_order_source, preprocess,
                   batch_size, n_classes, n_images, summary, writer)
                   VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '{}', ?)""",
                (
                    self.name or _default_name(info), info.created_at or _now(), info.gtpred_version, info.model,
                    info.model_bytes, info.model_sha256, info.images, info.images_fingerprint,
                    info.class_order_source, info.preprocess, info.batch_size, len(class_names), _this_writer(),
                ),
            )
        self.run_id = int(cursor.lastrowid)
        return self.run_id

    def add_rows(self, paths: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray) -> None:
        probabilities = np.ascontiguousarray(probabilities, dtype="<f4")
        for i, path in enumerate(paths):
            self._pending.append((self.run_id, self.n_rows, path, int(y_true[i]), int(y_pred[i]), probabilities[i].tobytes()))
            self.n_rows += 1
        if len(self._pending) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self.store._transaction() as conn:
            conn.executemany(
                "INSERT INTO predictions (run_id, idx, path, y_true, y_pred, probabilities) VALUES (?, ?, ?, ?, ?, ?)",
                self._pending,
            )
        self._pending = []

    def finish(self, run: Run, status: str | None = None) -> int:
        """Write the summary and status; the stored rows must be exactly the run's."""
        self.flush()
        if self.n_rows != run.n_images:
            raise InvariantError(f"{self.n_rows} rows were stored for a run of {run.n_images} images.")
        summary = run.summary()
        summary["metrics"] = run.metrics.to_dict()
        with self.store._transaction() as conn:
            conn.execute(
                """UPDATE runs SET status = ?, n_images = ?, accuracy = ?, top5_accuracy = ?, summary = ?,
                   created_at = ? WHERE id = ?""",
                (status or run.info.status, run.n_images, run.metrics.accuracy, run.metrics.top5_accuracy,
                 json.dumps(summary), run.info.created_at or _now(), self.run_id),
            )
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

    def __init__(self, writer: RunWriter | None, error: BaseException | None = None) -> None:
        self.writer = writer
        self.error = error

    @classmethod
    def into(cls, store_path: str | Path | None, name: str | None = None) -> "GuardedWriter":
        """A guarded writer for the store at ``store_path`` (None: the default store); a store
        that cannot open gives one that only keeps the error."""
        try:
            return cls(RunStore(store_path).writer(name))
        except Exception as err:  # noqa: BLE001 - kept with the run; the evaluation must go on
            log.warning("The run store cannot be opened: %s", err)
            return cls(None, err)

    @property
    def run_id(self) -> int | None:
        return self.writer.run_id if self.writer is not None and self.error is None else None

    def _guard(self, step: str, *args: Any) -> None:
        if self.writer is None or self.error is not None:
            return
        try:
            getattr(self.writer, step)(*args)
        except Exception as err:  # noqa: BLE001 - kept and shown; the evaluation must go on
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _default_name(info: RunInfo) -> str:
    return f"{Path(info.model).name} on {Path(info.images).name}"


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


def _plain(value: Any) -> Any:
    """Keras logs hold numpy scalars; make them JSON numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


class RunStore:
    """Runs in a SQLite file. Safe to share between threads; each gets its own connection."""

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.timeout_s = timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()
        self._mark_abandoned_runs()

    # ----- connections and schema
    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as err:
                raise StoreError(
                    f"The run store {self.path} cannot be opened: {err}.",
                    "Point GTPRED_DB at a new file, or restore this one from a backup.",
                    self.path,
                ) from err
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no deadlocked upgrades)."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"The run store {self.path} was written by a newer gtpred (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}).",
                    "Upgrade gtpred, or point GTPRED_DB at another file.",
                    self.path,
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return self._connection().execute("PRAGMA user_version").fetchone()[0]

    def integrity_ok(self) -> bool:
        return self._connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ----- writing
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
        info = run.info
        status = status or info.status
        summary = run.summary()
        summary["metrics"] = run.metrics.to_dict()
        name = name or _default_name(info)
        n_classes = len(run.class_names)
        probabilities = np.ascontiguousarray(run.probabilities, dtype="<f4")
        rows = (
            (i, path, int(t), int(p), probabilities[i].tobytes())
            for i, (path, t, p) in enumerate(zip(run.paths, run.y_true.tolist(), run.y_pred.tolist()))
        )
        with self._transaction() as conn:
            cursor = conn.execute(
                """INSERT INTO runs (name, status, created_at, gtpred_version, model, model_bytes,
                   model_sha256, images, images_fingerprint, class_order_source, preprocess,
                   batch_size, n_classes, n_images, accuracy, top5_accuracy, summary,
                   training_id, epoch, logs)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    name, status, info.created_at, info.gtpred_version, info.model, info.model_bytes,
                    info.model_sha256, info.images, info.images_fingerprint, info.class_order_source,
                    info.preprocess, info.batch_size, n_classes, run.n_images, run.metrics.accuracy,
                    run.metrics.top5_accuracy, json.dumps(summary), training_id, epoch,
                    json.dumps(_plain(logs)) if logs is not None else None,
                ),
            )
            run_id = int(cursor.lastrowid)
            conn.executemany(
                "INSERT INTO predictions (run_id, idx, path, y_true, y_pred, probabilities) VALUES (?, ?, ?, ?, ?, ?)",
                ((run_id, *row) for row in rows),
            )
        return run_id

    def rename(self, run_id: int, name: str) -> None:
        with self._transaction() as conn:
            if conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount == 0:
                raise self._missing(run_id)

    def delete(self, run_id: int) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM predictions WHERE run_id = ?", (run_id,))
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise self._missing(run_id)

    # ----- streaming: a run written chunk by chunk as inference goes
    def writer(self, name: str | None = None, *, chunk_rows: int = 4096) -> "RunWriter":
        """A sink for ``evaluate_folder(sink=...)`` that streams the run into this store."""
        return RunWriter(self, name, chunk_rows)

    def _mark_abandoned_runs(self) -> None:
        """Runs left ``running`` by a dead process on this host become ``failed``; their rows stay."""
        host = socket.gethostname()
        with self._transaction() as conn:
            for run_id, writer in conn.execute("SELECT id, writer FROM runs WHERE status = 'running'").fetchall():
                writer_host, _, pid = (writer or "").rpartition(":")
                if writer_host == host and pid.isdigit() and not _process_alive(int(pid)):
                    conn.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (run_id,))

    # ----- trainings: one stored run per epoch
    def start_training(self, name: str, source: str) -> int:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO trainings (name, created_at, source, status) VALUES (?, ?, ?, 'running')",
                (name, datetime.now(timezone.utc).isoformat(timespec="seconds"), source),
            )
            return int(cursor.lastrowid)

    def finish_training(self, training_id: int, status: str = "complete") -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE trainings SET status = ? WHERE id = ?", (status, training_id))

    def list_trainings(self) -> list[StoredTraining]:
        """All trainings, newest first, with their number of recorded epochs."""
        rows = self._connection().execute(
            """SELECT t.id, t.name, t.created_at, t.source, t.status, COUNT(r.id)
               FROM trainings t LEFT JOIN runs r ON r.training_id = t.id
               GROUP BY t.id ORDER BY t.id DESC"""
        ).fetchall()
        return [StoredTraining(*row) for row in rows]

    def training_epochs(self, training_id: int) -> list[TrainingEpoch]:
        """The training's recorded epochs in order: epoch number, stored run id, Keras logs."""
        rows = self._connection().execute(
            "SELECT epoch, id, logs FROM runs WHERE training_id = ? ORDER BY epoch, id", (training_id,)
        ).fetchall()
        return [TrainingEpoch(epoch, run_id, json.loads(logs) if logs else {}) for epoch, run_id, logs in rows]

    # ----- reading
    def list(self, include_training_epochs: bool = False) -> list[StoredRun]:
        """All runs, newest first (evaluations only, unless training epochs are asked for)."""
        where = "" if include_training_epochs else "WHERE training_id IS NULL"
        rows = self._connection().execute(
            f"""SELECT id, name, status, created_at, model, model_sha256, images, images_fingerprint,
                      class_order_source, preprocess, n_images, accuracy, top5_accuracy
               FROM runs {where} ORDER BY id DESC"""
        ).fetchall()
        return [StoredRun(*row) for row in rows]

    def get(self, run_id: int) -> StoredRun:
        for row in self.list(include_training_epochs=True):
            if row.id == run_id:
                return row
        raise self._missing(run_id)

    def load(self, run_id: int) -> Run:
        """The stored run, equal to the one saved: paths, labels, probabilities bit for bit."""
        conn = self._connection()
        row = conn.execute("SELECT summary, n_classes FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise self._missing(run_id)
        summary, n_classes = json.loads(row[0]), row[1]
        predictions = conn.execute(
            "SELECT path, y_true, y_pred, probabilities FROM predictions WHERE run_id = ? ORDER BY idx",
            (run_id,),
        ).fetchall()
        paths = [p[0] for p in predictions]
        blob = b"".join(p[3] for p in predictions)
        summary.update(
            paths=paths,
            y_true=np.fromiter((p[1] for p in predictions), np.int64, len(predictions)),
            y_pred=np.fromiter((p[2] for p in predictions), np.int64, len(predictions)),
            probabilities=np.frombuffer(blob, dtype="<f4").reshape(len(predictions), n_classes).astype(np.float32),
        )
        return Run.from_dict(summary)

    def _missing(self, run_id: int) -> StoreError:
        return StoreError(f"There is no run {run_id} in {self.path}.", "List the runs with: python -m gtpred_core runs list", self.path)

"""The run store: exact round trip, concurrent writers, crash safety, schema migrations."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gtpred_core import assemble_run, evaluate_folder
from gtpred_core.run import RunInfo
from gtpred_core.errors import RunDeletedError
from gtpred_core.store import RunStore, StoreError

ROOT = Path(__file__).resolve().parents[1]


def count_rows(db: Path, sql: str = "SELECT COUNT(*) FROM predictions", *params) -> int:
    """Ask the file itself (a plain sqlite3 connection), not the store under test."""
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchone()[0]


def synthetic_run(n: int, n_classes: int = 4, seed: int = 0):
    """A real Run (metrics and checks computed) from random predictions: no model needed."""
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.ones(n_classes), n).astype(np.float32)
    return assemble_run(
        class_names=[f"c{i}" for i in range(n_classes)],
        paths=[f"c{i % n_classes}/img_{i:06d}.png" for i in range(n)],
        y_true=np.arange(n) % n_classes,
        y_pred=probabilities.argmax(1),
        probabilities=probabilities,
        info=RunInfo(model="m.keras", images="/data/val", created_at="2026-11-23T10:00:00+00:00"),
    )


def test_a_stored_run_reloads_equal(softmax_model, digits_dir, tmp_path):
    run = evaluate_folder(softmax_model, digits_dir)
    store = RunStore(tmp_path / "runs.db")
    run_id = store.save(run)
    again = store.load(run_id)
    assert again.paths == run.paths and again.class_names == run.class_names
    np.testing.assert_array_equal(again.y_true, run.y_true)
    np.testing.assert_array_equal(again.y_pred, run.y_pred)
    assert again.probabilities.tobytes() == run.probabilities.tobytes()
    assert again.metrics == run.metrics and again.warnings == run.warnings and again.info == run.info
    assert again.suggested_class_order == run.suggested_class_order
    row = store.get(run_id)
    assert row.model_sha256 == run.info.model_sha256 and len(row.model_sha256) == 64
    assert row.images_fingerprint == run.info.images_fingerprint and row.status == "complete"
    # a relabelled stored run works like a fresh one
    assert again.relabel(again.suggested_class_order).metrics == run.relabel(run.suggested_class_order).metrics


def test_list_rename_and_delete(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    first, second = store.save(synthetic_run(10), name="a"), store.save(synthetic_run(12), name="b")
    assert [r.id for r in store.list()] == [second, first]  # newest first
    store.rename(first, "renamed")
    assert store.get(first).name == "renamed"
    store.delete(second)
    assert [r.id for r in store.list()] == [first]
    with pytest.raises(RunDeletedError, match=f"Run {second} was deleted on "):
        store.load(second)
    with pytest.raises(StoreError, match="There is no run 99 in the run store"):
        store.load(99)


def test_eight_threads_storing_25_runs_each_never_see_a_locked_database(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            for k in range(25):
                store.save(synthetic_run(50, seed=seed * 100 + k), name=f"t{seed}-{k}")
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = store.list()
    assert len(rows) == 200 and {r.status for r in rows} == {"complete"}
    assert count_rows(store.path) == 200 * 50
    assert store.integrity_ok()


def test_a_writer_killed_mid_run_leaves_earlier_runs_intact_and_no_half_run(tmp_path):
    db = tmp_path / "runs.db"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_store import synthetic_run
        from gtpred_core.store import RunStore
        store = RunStore({str(db)!r})
        for k in range(3):
            store.save(synthetic_run(100, seed=k), name=f"early{{k}}")
        big = synthetic_run(400_000, n_classes=20)
        print("saving", flush=True)
        store.save(big, name="big")
        print("saved", flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "saving"
    # Wait for the event that proves the big transaction is under way: its pages spilling into
    # the WAL (the run is ~35 MB; 1 MB of WAL is early in it, long before the commit).
    wal = Path(f"{db}-wal")
    deadline = time.monotonic() + 120
    while not (wal.exists() and wal.stat().st_size > 1 << 20):
        assert child.poll() is None and time.monotonic() < deadline, "the big save never started writing"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    store = RunStore(db)
    assert store.integrity_ok()
    names = [r.name for r in store.list()]
    assert names == ["early2", "early1", "early0"]
    for row in store.list():
        assert store.load(row.id).n_images == 100
    assert count_rows(db) == 300


def test_an_older_database_is_migrated_and_keeps_its_runs(tmp_path, monkeypatch):
    import gtpred_core.store as store_module

    db = tmp_path / "runs.db"
    old = RunStore(db)
    run_id = old.save(synthetic_run(20), name="from v1")
    old.close()
    newer = store_module.MIGRATIONS + ("ALTER TABLE runs ADD COLUMN notes TEXT DEFAULT ''",)
    monkeypatch.setattr(store_module, "MIGRATIONS", newer)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(newer))
    before = db.read_bytes()
    upgraded = store_module.RunStore(db)
    assert upgraded.load(run_id).n_images == 20 and [r.name for r in upgraded.list()] == ["from v1"]
    assert upgraded.schema_version == len(newer) - 1 and db.read_bytes() == before  # reading migrates nothing
    upgraded.rename(run_id, "after the upgrade")  # the first write migrates
    assert upgraded.schema_version == len(newer)
    assert upgraded.load(run_id).n_images == 20
    with sqlite3.connect(db) as conn:
        assert "notes" in [c[1] for c in conn.execute("PRAGMA table_info(runs)")]


def test_a_database_from_a_newer_gtpred_is_refused(tmp_path):
    db = tmp_path / "runs.db"
    RunStore(db).save(synthetic_run(5))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="written by a newer gtpred"):
        RunStore(db)


def test_the_runs_cli_lists_exports_and_deletes(softmax_model, digits_dir, tmp_path):
    def gtpred(*args):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run([sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    db = tmp_path / "runs.db"
    result = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", tmp_path / "a", "--save", "--db", db, "--name", "first")
    assert result.returncode == 0 and "stored as run 1" in result.stdout, result.stderr
    listing = gtpred("runs", "--db", db, "list")
    assert "first" in listing.stdout and "300" in listing.stdout
    assert gtpred("runs", "--db", db, "export", "1", "--out", tmp_path / "b").returncode == 0
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == (tmp_path / "b" / "predictions.csv").read_bytes()
    assert json.loads((tmp_path / "a" / "summary.json").read_text()) == json.loads((tmp_path / "b" / "summary.json").read_text())
    assert gtpred("runs", "--db", db, "delete", "1").returncode == 0
    deleted = gtpred("runs", "--db", db, "show", "1")
    assert deleted.returncode == 2 and "Run 1 was deleted on" in deleted.stderr
    assert "runs restore 1" in deleted.stderr
    missing = gtpred("runs", "--db", db, "show", "7")
    assert missing.returncode == 2 and "There is no run 7" in missing.stderr


def test_a_streamed_run_equals_the_run_and_its_rows_arrive_in_chunks(softmax_model, digits_dir, tmp_path):
    store = RunStore(tmp_path / "runs.db")
    writer = store.writer("streamed", chunk_rows=64)
    flushed: list[int] = []
    original_flush = writer.flush

    def counting_flush() -> None:
        flushed.append(len(writer._pending))
        original_flush()

    writer.flush = counting_flush
    run = evaluate_folder(softmax_model, digits_dir, batch_size=32, sink=writer)
    assert flushed[:4] == [64, 64, 64, 64]  # rows reach the database while inference goes on
    again = store.load(writer.run_id)
    assert again.paths == run.paths and again.probabilities.tobytes() == run.probabilities.tobytes()
    assert again.metrics == run.metrics and store.get(writer.run_id).status == "complete"


def test_a_cancelled_run_keeps_the_part_done_in_the_store(softmax_model, digits_dir, tmp_path):
    store = RunStore(tmp_path / "runs.db")
    writer = store.writer("half", chunk_rows=32)
    cancel = threading.Event()
    run = evaluate_folder(
        softmax_model, digits_dir, batch_size=32, sink=writer, cancel=cancel,
        progress=lambda done, total: cancel.set() if done >= total // 2 else None,
    )
    assert run.info.status == "cancelled" and 150 <= run.n_images < 300
    stored = store.get(writer.run_id)
    assert stored.status == "cancelled" and stored.n_images == run.n_images
    assert store.load(writer.run_id).paths == run.paths


def test_a_streamed_run_whose_writer_died_is_marked_failed_with_its_rows_kept(tmp_path):
    db = tmp_path / "runs.db"
    script = textwrap.dedent(
        f"""
        import os, sys, numpy as np
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_store import synthetic_run
        from gtpred_core.store import RunStore
        run = synthetic_run(1000)
        writer = RunStore({str(db)!r}).writer("dies", chunk_rows=100)
        writer.start(run.info, run.class_names)
        writer.add_rows(run.paths[:250], run.y_true[:250], run.y_pred[:250], run.probabilities[:250])  # flushed
        writer.add_rows(run.paths[250:300], run.y_true[250:300], run.y_pred[250:300], run.probabilities[250:300])  # in flight
        os.kill(os.getpid(), 9)
        """
    )
    subprocess.run([sys.executable, "-c", script], timeout=120)
    store = RunStore(db)
    (row,) = store.list()
    assert row.status == "failed" and store.integrity_ok()
    assert count_rows(db) == 250  # only the chunk in flight is lost


def test_a_v4_store_with_runs_migrates_to_v5_and_keeps_old_runs_beside_new_maps(tmp_path):
    """v5 adds the embedding map: a v4 file's runs load (without a map) before and after the
    upgrade, and a run with a map and leakage pairs comes back whole."""
    import dataclasses

    from gtpred_core.leakage import LeakedPair

    db = tmp_path / "runs.db"
    old = RunStore(db)
    old_id = old.save(synthetic_run(30), name="from v4")
    old.close()
    with sqlite3.connect(db) as conn:  # the file as gtpred wrote it before embedding maps
        conn.execute("ALTER TABLE runs DROP COLUMN embedding")
        conn.execute("PRAGMA user_version=4")
    assert "embedding" not in RunStore._columns(sqlite3.connect(db))
    store = RunStore(db)
    assert store.load(old_id).embedding is None  # read before any migration
    run = synthetic_run(30, seed=1)
    points = np.random.default_rng(2).normal(size=(30, 2)).astype(np.float32)
    pairs = (LeakedPair(run.paths[0], "train/a.png", "exact", 1.0),)
    with_map = dataclasses.replace(run, embedding=points, embedding_method="t-SNE of penultimate features", leakage=pairs)
    new_id = store.save(with_map)
    assert store.schema_version == 5
    old_again = store.load(old_id)
    assert old_again.n_images == 30 and old_again.embedding is None and old_again.leakage is None
    loaded = store.load(new_id)
    assert loaded.embedding.tobytes() == points.tobytes()
    assert loaded.embedding_method == "t-SNE of penultimate features" and loaded.leakage == pairs
    store.delete(new_id)
    store.purge([new_id])
    assert count_rows(db, "SELECT COUNT(*) FROM runs WHERE embedding IS NOT NULL") == 0

"""The run store under faults, run names, soft delete, and the one insert path.

Real SQLite files throughout: a store written by gtpred, then damaged byte by byte, made
read-only, or filled with hostile names. The tests run as root, and root ignores file modes, so
a read-only store is made real by starting the command in a child that has lost the capability
to bypass them (``CAP_DAC_OVERRIDE``): for that child a 0444 file in a 0555 folder is as
read-only as it is for any server account.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gtpred_core.errors import RunDeletedError, RunNameError, StoreError
from gtpred_core.store import MAX_RUN_NAME_CHARS, RunStore, check_run_name, printable

sys.path.insert(0, str(Path(__file__).parent))
from test_store import count_rows, synthetic_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(tmp_path: Path, n_runs: int = 3, name: str = "runs.sqlite3") -> Path:
    """A real store file with ``n_runs`` runs of 300 rows, closed (its WAL folded back in)."""
    db = tmp_path / name
    store = RunStore(db)
    for k in range(n_runs):
        store.save(synthetic_run(300, seed=k), name=f"run {k}")
    store.close()
    assert not Path(f"{db}-wal").exists()
    return db


def _drop_file_mode_bypass() -> None:
    """preexec_fn: remove CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH from the child's bounding set,
    so after exec this root process obeys file modes like any other account."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def gtpred(*args: object, obey_file_modes: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "gtpred_core", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300, preexec_fn=_drop_file_mode_bypass if obey_file_modes else None,
    )


@pytest.fixture(scope="module")
def file_modes_bite(tmp_path_factory) -> None:
    """Skip (with the reason) where a child cannot be made to obey file modes."""
    folder = tmp_path_factory.mktemp("probe")
    probe = folder / "f"
    probe.write_text("x")
    probe.chmod(0o444)
    try:
        child = subprocess.run(
            [sys.executable, "-c", f"open({str(probe)!r}, 'a').write('y')"],
            capture_output=True, preexec_fn=_drop_file_mode_bypass,
        )
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {err}")
    if child.returncode == 0:
        pytest.skip("this process cannot make a child obey file modes; read-only cannot be simulated")


#: TensorFlow's own C++/absl start-up lines (silencing them is the CLI's business, not the store's).
TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if not TF_NOISE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "unexpected" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


# ---- a damaged file --------------------------------------------------------------------------


def damage_the_runs_table(db: Path) -> None:
    """Overwrite the header of the page holding the ``runs`` table (its b-tree root)."""
    with sqlite3.connect(db) as conn:
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    data[(page - 1) * size : (page - 1) * size + 12] = b"\xff" * 12
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("command", [("list",), ("show", "1"), ("export", "1", "--out", "OUT")])
def test_a_damaged_store_gives_one_line_with_the_fix_and_is_not_written(tmp_path, command):
    db = stored(tmp_path)
    damage_the_runs_table(db)
    before = sha256(db)
    command = tuple(str(tmp_path / "out") if part == "OUT" else part for part in command)
    result = gtpred("runs", "--db", db, *command)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "The run store (runs.sqlite3) cannot be opened: it is damaged (database disk image is malformed)." in line
    assert "Restore the file from a backup" in line and "sqlite3 runs.sqlite3 .recover" in line
    assert result.stdout == ""  # not even the table's header
    assert sha256(db) == before  # reading never writes: the header bytes are as they were


def test_the_library_raises_a_store_error_for_a_damaged_store(tmp_path):
    db = stored(tmp_path)
    damage_the_runs_table(db)
    before = sha256(db)
    store = RunStore(db)
    with pytest.raises(StoreError, match=r"it is damaged \(database disk image is malformed\)\. Restore"):
        store.list()
    with pytest.raises(StoreError, match="is damaged"):
        store.save(synthetic_run(5))
    assert sha256(db) == before


def test_a_file_that_is_not_a_database_is_named_as_damaged(tmp_path):
    db = tmp_path / "runs.sqlite3"
    db.write_bytes(b"these are not the runs you are looking for" * 200)
    with pytest.raises(StoreError, match=r"The run store \(runs\.sqlite3\) cannot be opened: it is damaged \(file is not a database\)"):
        RunStore(db).list()
    assert db.read_bytes().startswith(b"these are not")


def test_reading_a_store_never_writes_it(tmp_path):
    db = stored(tmp_path)
    before = sha256(db)
    store = RunStore(db)
    assert [r.name for r in store.list()] == ["run 2", "run 1", "run 0"]
    assert store.load(1).n_images == 300 and store.get(2).name == "run 1"
    store.list_trainings(), store.training_epochs(1), store.integrity_ok()
    store.close()
    assert sha256(db) == before
    assert not RunStore(tmp_path / "none.sqlite3").list() and not (tmp_path / "none.sqlite3").exists()


# ---- a read-only file ------------------------------------------------------------------------


@pytest.fixture
def read_only_store(tmp_path, file_modes_bite):
    folder = tmp_path / "store"
    folder.mkdir()
    db = stored(folder)
    db.chmod(0o444)
    folder.chmod(0o555)
    yield db
    folder.chmod(0o755)
    db.chmod(0o644)


def test_a_read_only_store_lists_and_shows_its_runs(read_only_store):
    before = sha256(read_only_store)
    listing = gtpred("runs", "--db", read_only_store, "list", obey_file_modes=True)
    assert listing.returncode == 0, listing.stderr
    assert [line.split()[-2:] for line in listing.stdout.splitlines()[1:]] == [["run", "2"], ["run", "1"], ["run", "0"]]
    shown = gtpred("runs", "--db", read_only_store, "show", "2", obey_file_modes=True)
    assert shown.returncode == 0 and json.loads(shown.stdout)["n_images"] == 300
    assert sha256(read_only_store) == before


def test_a_read_only_file_in_a_writable_folder_lists_too(tmp_path, file_modes_bite):
    db = stored(tmp_path)
    db.chmod(0o444)
    listing = gtpred("runs", "--db", db, "list", obey_file_modes=True)
    assert listing.returncode == 0 and "run 2" in listing.stdout, listing.stderr


def test_writing_a_read_only_store_gives_one_line_with_the_fix(read_only_store):
    result = gtpred("runs", "--db", read_only_store, "rename", "1", "new name", obey_file_modes=True)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "The run store (runs.sqlite3) is read-only for this process, so nothing can be stored in it." in line
    assert "Make the file and its folder writable" in line


def test_save_on_a_read_only_store_still_evaluates_and_writes_the_files(read_only_store, softmax_model, digits_dir, tmp_path):
    out = tmp_path / "out"
    result = gtpred(
        "evaluate", "--model", softmax_model, "--images", digits_dir, "--out", out, "--save",
        "--db", read_only_store, obey_file_modes=True,
    )
    assert result.returncode == 2
    assert "300 images evaluated" in result.stdout and "stored as run" not in result.stdout
    line = one_error_line(result)
    assert "the run was not stored (the files above are complete)" in line and "is read-only" in line
    assert len((out / "predictions.csv").read_text().splitlines()) == 301
    assert json.loads((out / "summary.json").read_text())["n_images"] == 300


def test_save_into_a_store_that_cannot_open_keeps_the_files(softmax_model, digits_dir, tmp_path):
    out = tmp_path / "out"
    result = gtpred("evaluate", "--model", softmax_model, "--images", digits_dir, "--out", out, "--save", "--db", tmp_path)
    assert result.returncode == 2
    assert "cannot be opened" in one_error_line(result)
    assert (out / "predictions.csv").exists() and (out / "summary.json").exists()


# ---- run names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, problem",
    [
        ("line one\n   99  2026-01-01  complete  fake row", "U+000A"),
        ("\x1b[31mred\x1b[0m", "U+001B"),
        ("tab\there", "U+0009"),
        ("txt.exe\u202egnp.", "U+202E"),  # right-to-left override: shows as "txt.exe.png"
        ("a\u2028b", "U+2028"),
    ],
)
def test_run_names_with_control_characters_are_refused(name, problem):
    with pytest.raises(RunNameError, match=r"A run name cannot hold control characters .*this one holds " + re.escape(problem)):
        check_run_name(name)


def test_run_names_are_at_most_200_characters():
    assert check_run_name("  " + "n" * MAX_RUN_NAME_CHARS + " ") == "n" * MAX_RUN_NAME_CHARS
    with pytest.raises(RunNameError, match=r"at most 200 characters; this one has 1,000,000\. Choose a shorter name"):
        check_run_name("n" * 1_000_000)
    assert check_run_name("Ünïcödé 数字 ✓ [x](https:evil.example) **bold**")  # text, not markup: fine


def test_a_typed_name_is_refused_where_it_is_typed(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id = store.save(synthetic_run(5), name="fine")
    with pytest.raises(RunNameError):
        store.rename(run_id, "x\ny")
    assert store.get(run_id).name == "fine"
    result = gtpred("evaluate", "--model", "m.keras", "--images", tmp_path, "--out", tmp_path / "out", "--save",
                    "--db", tmp_path / "runs.sqlite3", "--name", "a" * 201)
    assert result.returncode == 2 and "at most 200 characters" in one_error_line(result)
    assert not (tmp_path / "out").exists()  # refused before anything was evaluated


def test_names_given_by_programs_are_stored_printable_and_short(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    first = store.save(synthetic_run(5), name="epoch\n1\x1b[2J")
    second = store.save(synthetic_run(5), name="n" * 1_000_000)
    assert store.get(first).name == "epoch\\u000a1\\u001b[2J"
    assert len(store.get(second).name) == MAX_RUN_NAME_CHARS


def test_runs_list_prints_one_line_per_run_whatever_an_old_store_holds(tmp_path):
    db = stored(tmp_path, n_runs=2)
    with sqlite3.connect(db) as conn:  # names stored before names were checked
        conn.execute("UPDATE runs SET name = ? WHERE id = 1", ("ok\n    9  2026-01-01  complete  fake",))
        conn.execute("UPDATE runs SET name = ? WHERE id = 2", ("\x1b[31m" + "z" * 5000,))
    conn.close()
    listing = gtpred("runs", "--db", db, "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert len(lines) == 3 and "\x1b" not in listing.stdout
    assert lines[2].endswith("ok\\u000a    9  2026-01-01  complete  fake")
    assert len(lines[1]) < 300 and lines[1].endswith("…")


def test_printable_escapes_and_cuts():
    assert printable("a\tb\x1b[0m\u202e") == "a\\u0009b\\u001b[0m\\u202e"
    assert printable("x" * 300, limit=10) == "x" * 9 + "…"


# ---- soft delete, restore, purge -------------------------------------------------------------


def test_a_deleted_run_is_hidden_restorable_and_says_so(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    keep, gone = store.save(synthetic_run(10), name="keep"), store.save(synthetic_run(12), name="gone")
    original = store.load(gone)
    store.delete(gone)
    assert [r.id for r in store.list()] == [keep]
    for read in (store.get, store.load):
        with pytest.raises(RunDeletedError) as err:
            read(gone)
        assert err.value.run_id == gone and err.value.restorable and err.value.deleted_at
        assert isinstance(err.value, StoreError)
        assert str(err.value) == (
            f"Run {gone} was deleted on {err.value.deleted_at.replace('T', ' ')[:16]} UTC. The server's admin "
            f"can restore it with: python -m gtpred_core runs restore {gone}"
        )
    with pytest.raises(RunDeletedError):
        store.rename(gone, "renamed")
    assert [r.id for r in store.list(deleted=True)] == [gone]
    assert count_rows(store.path, "SELECT COUNT(*) FROM predictions WHERE run_id = ?", gone) == 12  # nothing lost yet
    store.restore(gone)
    again = store.load(gone)
    assert again.paths == original.paths and again.probabilities.tobytes() == original.probabilities.tobytes()
    assert [r.id for r in store.list()] == [gone, keep] and store.list(deleted=True) == []


def test_a_purged_run_leaves_a_tombstone_that_cannot_be_restored(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id = store.save(synthetic_run(10), name="to purge")
    with pytest.raises(StoreError, match=f"Run {run_id} is not deleted; only deleted runs are purged"):
        store.purge([run_id])
    store.delete(run_id)
    assert store.purge([run_id]) == [run_id]
    with pytest.raises(RunDeletedError, match="has since been purged: its predictions are gone. It cannot be restored") as err:
        store.load(run_id)
    assert err.value.restorable is False
    with pytest.raises(RunDeletedError, match="cannot be restored"):
        store.restore(run_id)
    (tombstone,) = store.list(deleted=True)
    assert tombstone.id == run_id and tombstone.name == "to purge" and tombstone.purged_at
    assert count_rows(store.path) == 0


def test_runs_deleted_longer_ago_than_the_setting_are_purged_at_the_next_write(tmp_path, monkeypatch):
    db = tmp_path / "runs.sqlite3"
    store = RunStore(db)
    old, recent, live = (store.save(synthetic_run(10), name=n) for n in ("old", "recent", "live"))
    store.delete(old), store.delete(recent)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET deleted_at = '2000-01-01T00:00:00+00:00' WHERE id = ?", (old,))
    conn.close()
    monkeypatch.setenv("GTPRED_KEEP_DELETED_DAYS", "30")
    later = RunStore(db)
    with pytest.raises(RunDeletedError) as err:
        later.get(old)
    assert err.value.restorable  # reading purges nothing
    later.save(synthetic_run(3), name="a new run")  # the first write purges what is due
    with pytest.raises(RunDeletedError) as err:
        later.get(old)
    assert not err.value.restorable
    later.restore(recent)
    assert later.load(recent).n_images == 10 and later.get(live).name == "live"


def test_the_runs_cli_deletes_restores_and_purges(tmp_path):
    db = stored(tmp_path, n_runs=2)
    deleted = gtpred("runs", "--db", db, "delete", "1")
    assert deleted.returncode == 0 and "runs restore 1" in deleted.stdout
    assert "run 0" not in gtpred("runs", "--db", db, "list").stdout
    assert "yes" in gtpred("runs", "--db", db, "list", "--deleted").stdout
    shown = gtpred("runs", "--db", db, "show", "1")
    assert shown.returncode == 2 and "Run 1 was deleted on" in one_error_line(shown)
    assert gtpred("runs", "--db", db, "restore", "1").returncode == 0
    assert gtpred("runs", "--db", db, "show", "1").returncode == 0
    gtpred("runs", "--db", db, "delete", "1")
    purged = gtpred("runs", "--db", db, "purge", "1")
    assert purged.returncode == 0 and "purged 1 deleted run(s): 1" in purged.stdout
    restore = gtpred("runs", "--db", db, "restore", "1")
    assert restore.returncode == 2 and "cannot be restored" in one_error_line(restore)
    assert "no (purged)" in gtpred("runs", "--db", db, "list", "--deleted").stdout


def test_a_version_3_store_is_read_as_it_is_and_migrated_by_the_first_write(tmp_path, monkeypatch):
    import gtpred_core.store as store_module

    db = tmp_path / "runs.sqlite3"
    current = store_module.RunStore(db)
    first, second = current.save(synthetic_run(10), name="a"), current.save(synthetic_run(10), name="b")
    current.close()
    # the store as gtpred wrote it before soft delete (v4) and embedding maps (v5): their columns
    # and index go, and the file says version 3
    with sqlite3.connect(db) as conn:
        for index in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%deleted_at%'").fetchall():
            conn.execute(f"DROP INDEX {index[0]}")
        for column in ("embedding", "purged_at", "deleted_at"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    before = sha256(db)
    store = RunStore(db)
    assert [r.id for r in store.list()] == [second, first] and store.get(first).name == "a"
    assert sha256(db) == before and store.schema_version == 3
    store.delete(first)  # a write: migrates to the current version, then soft-deletes
    assert store.schema_version == store_module.SCHEMA_VERSION and [r.id for r in store.list()] == [second]
    with pytest.raises(RunDeletedError):
        store.load(first)


# ---- one insert path, get by id, metrics once ------------------------------------------------


def test_save_and_the_streamed_writer_store_the_same_rows(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    run = synthetic_run(1000, seed=3)
    saved = store.save(run, name="same")
    writer = store.writer("same", chunk_rows=64)
    writer.start(run.info, run.class_names)
    for start in range(0, 1000, 100):
        part = slice(start, start + 100)
        writer.add_rows(run.paths[part], run.y_true[part], run.y_pred[part], run.probabilities[part])
    streamed = writer.finish(run)
    with sqlite3.connect(store.path) as conn:
        conn.row_factory = sqlite3.Row
        rows = {
            run_id: {k: v for k, v in dict(conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()).items()
                     if k not in ("id", "writer")}
            for run_id in (saved, streamed)
        }
        predictions = [
            conn.execute("SELECT idx, path, y_true, y_pred, probabilities FROM predictions WHERE run_id = ? ORDER BY idx",
                         (run_id,)).fetchall()
            for run_id in (saved, streamed)
        ]
    conn.close()
    assert rows[saved] == rows[streamed]
    assert [tuple(r) for r in predictions[0]] == [tuple(r) for r in predictions[1]]


def test_get_reads_one_row_by_its_id(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ids = [store.save(synthetic_run(3, seed=k), name=f"r{k}") for k in range(20)]
    conn = store._read_connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert store.get(ids[7]).name == "r7"
    conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM runs" in s]
    assert len(selects) == 1 and f"WHERE id = {ids[7]}" in selects[0]


def test_metrics_are_stored_once_and_older_documents_still_load(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    run = synthetic_run(50)
    run_id = store.save(run)
    with sqlite3.connect(store.path) as conn:
        document = json.loads(conn.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
    conn.close()
    assert "metrics" in document
    assert not {"accuracy", "top5_accuracy", "per_class", "macro_avg", "weighted_avg", "confusion_matrix"} & set(document)
    assert store.load(run_id).metrics == run.metrics
    old_style = {**run.summary(), "metrics": run.metrics.to_dict()}  # what gtpred stored before
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(old_style), run_id))
    conn.close()
    again = store.load(run_id)
    assert again.metrics == run.metrics and np.array_equal(again.y_pred, run.y_pred)

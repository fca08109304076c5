"""Stable codes: run statuses and warning codes are enums that stay equal to the strings stored
in the run store and written to summary.json, so old runs and JSON readers keep working."""

from __future__ import annotations

import json

from gtpred_core import Run, evaluate_folder
from gtpred_core.diagnostics import RunWarning, WarningCode
from gtpred_core.run import RunInfo, RunStatus
from gtpred_core.store import RunStore


def test_a_cancelled_run_carries_enum_codes_that_are_written_and_read_back_as_the_same_strings(softmax_model, digits_dir, tmp_path):
    import threading

    cancel = threading.Event()
    run = evaluate_folder(softmax_model, digits_dir, batch_size=16, cancel=cancel, progress=lambda done, total: cancel.set())
    assert run.info.status is RunStatus.CANCELLED and run.info.status == "cancelled"
    assert WarningCode.CANCELLED in run.warning_codes() and "cancelled" in run.warning_codes()
    summary = json.loads(json.dumps(run.summary()))
    assert summary["run"]["status"] == "cancelled" and "cancelled" in [w["code"] for w in summary["warnings"]]
    again = Run.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again.info.status is RunStatus.CANCELLED and again.info.head is run.info.head
    assert [type(w.code) for w in again.warnings] == [WarningCode] * len(again.warnings)
    store = RunStore(tmp_path / "runs.sqlite3")
    stored_id = store.save(run, name="cancelled")
    assert store.get(stored_id).status == RunStatus.CANCELLED
    assert store.load(stored_id).info.status is RunStatus.CANCELLED


def test_codes_written_by_a_newer_gtpred_stay_readable_strings():
    warning = RunWarning("a-code-from-the-future", "Something new.")
    assert warning.code == "a-code-from-the-future" and not isinstance(warning.code, WarningCode)
    info = RunInfo.from_dict({"status": "archived", "head": "mixture"})
    assert (info.status, info.head) == ("archived", "mixture")

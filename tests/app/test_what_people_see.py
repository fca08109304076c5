"""What a non-programmer reads on the pages (issue 13, item 9): the run caption says what its
seconds measure, a 100-class matrix says it scrolls, confidences are narrow percentage columns,
code wraps, History's times name their zone. Stored runs over real PNG files; real AppTests."""

from __future__ import annotations

import json

from app_helpers import no_exceptions, open_app, texts
from stored_runs import fresh_store
from synthetic_runs import synthetic_run

RESULTS = "gtpred_app/screens/results.py"


def _stored_run(tmp_path, store, n_classes: int) -> int:
    """A stored run of ``n_classes`` classes, 6 real PNGs each, evaluated in 2.1 s."""
    return store.save(synthetic_run(tmp_path / f"images-{n_classes}", n_classes), f"{n_classes} classes")


def test_the_run_caption_says_what_its_seconds_measure(tmp_path, monkeypatch):
    run_id = _stored_run(tmp_path, fresh_store(tmp_path, monkeypatch), 10)
    at = open_app(RESULTS, run=str(run_id))
    no_exceptions(at)
    assert "evaluated in 2.1 s (reading, decoding and predicting 60 images)" in texts(at)


def test_a_100_class_matrix_says_it_scrolls_and_a_10_class_one_does_not(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    many, few = _stored_run(tmp_path, store, 100), _stored_run(tmp_path, store, 10)
    at = open_app(RESULTS, run=str(many))
    no_exceptions(at)
    assert "100 classes: scroll inside the matrix, down and sideways, to see all of it" in texts(at)
    at = open_app(RESULTS, run=str(few))
    no_exceptions(at)
    assert "scroll inside the matrix" not in texts(at)


def _columns(at, key: str | None = None) -> dict:
    """The column configuration the app sent for the dataframe of widget ``key`` (else the first)."""
    frame = next(df for df in at.dataframe if key is None or key in df.proto.id)
    return json.loads(frame.proto.columns)


def test_a_cells_confidences_are_narrow_percentage_bars(tmp_path, monkeypatch):
    run_id = _stored_run(tmp_path, fresh_store(tmp_path, monkeypatch), 10)
    at = open_app(RESULTS, run=str(run_id))
    at.session_state["confusion"] = {"selection": {"cell": [{"true": "000_tench", "predicted": "000_tench"}]}}
    at.run()
    no_exceptions(at)
    confidence = _columns(at, "cell_files-000_tench-000_tench")["confidence"]
    assert confidence["type_config"] == {"type": "progress", "format": "percent", "min_value": 0, "max_value": 1}
    assert confidence["width"] == "small"


def test_mispredictions_show_confidences_as_narrow_percentage_bars(tmp_path, monkeypatch):
    run_id = _stored_run(tmp_path, fresh_store(tmp_path, monkeypatch), 10)
    at = open_app("gtpred_app/screens/mispredictions.py", run=str(run_id))
    no_exceptions(at)
    confidence = _columns(at, "mispredictions")["confidence"]
    assert confidence["type_config"]["format"] == "percent" and confidence["width"] == "small"


def test_code_on_the_evaluate_page_wraps():
    at = open_app()
    no_exceptions(at)
    assert at.code, "the Evaluate page shows code (the data pipeline check)"
    assert all(code.proto.wrap_lines for code in at.code)


def test_history_times_name_their_zone(tmp_path, monkeypatch):
    _stored_run(tmp_path, fresh_store(tmp_path, monkeypatch), 10)
    at = open_app("gtpred_app/screens/history.py")
    no_exceptions(at)
    created = _columns(at)["created"]
    assert created["label"] == "created (UTC)"
    assert at.dataframe[0].value["created"][0].endswith(" UTC")

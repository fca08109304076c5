"""What a non-programmer reads on the pages (issue 13, item 9): the run caption says what its
seconds measure, a 100-class matrix says it scrolls, confidences are narrow percentage columns,
code wraps, History's times name their zone. Stored runs over real PNG files; real AppTests."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from app_helpers import no_exceptions, open_app, texts
from gtpred_core import RunInfo, assemble_run
from stored_runs import fresh_store

RESULTS = "gtpred_app/screens/results.py"


def _stored_run(tmp_path, store, n_classes: int, per_class: int = 6) -> int:
    """A run of ``n_classes`` classes over real 16x16 PNGs, 2.1 s of evaluation, some mistakes."""
    rng = np.random.default_rng(n_classes)
    names = tuple(f"{k:03d}_class" for k in range(n_classes))
    y_true = np.repeat(np.arange(n_classes), per_class)
    y_pred = np.where(rng.random(len(y_true)) < 0.2, (y_true + 1) % n_classes, y_true)
    probabilities = rng.dirichlet(np.ones(n_classes), size=len(y_true)).astype(np.float32)
    probabilities[np.arange(len(y_true)), y_pred] += 2.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    root = tmp_path / f"images-{n_classes}"
    paths = []
    for i, t in enumerate(y_true):
        rel = f"{names[t]}/img_{i:04d}.png"
        (root / names[t]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), mode="L").save(root / rel)
        paths.append(rel)
    run = assemble_run(
        class_names=names,
        paths=paths,
        y_true=y_true,
        y_pred=y_pred,
        probabilities=probabilities,
        info=RunInfo(model="model.keras", images=str(root), seconds=2.1, n_files=len(paths)),
    )
    return store.save(run, f"{n_classes} classes")


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
    at.session_state["confusion"] = {"selection": {"cell": [{"true": "000_class", "predicted": "000_class"}]}}
    at.run()
    no_exceptions(at)
    confidence = _columns(at, "cell_files-000_class-000_class")["confidence"]
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

"""Mispredictions' detail view: where the model looked, for the predicted and the true class,
computed in the session's worker on click, with an opacity slider that recomputes nothing."""

from __future__ import annotations

import dataclasses
import shutil

from gtpred_core.demo import DEMO_MODEL

from app_helpers import no_exceptions, open_app, texts
from stored_runs import demo_runs, fresh_store

PAGE = "gtpred_app/screens/mispredictions.py"


def test_a_clicked_misprediction_shows_both_maps_and_the_slider_only_reblends(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    run = demo_runs()[1]  # natural order: the real mistakes
    run_id = store.save(run)
    rel = run.mispredictions()["file"].iloc[0]
    index = run.paths.index(rel)
    at = open_app(PAGE, run=str(run_id), file=rel)
    no_exceptions(at)
    assert len(at.get("image")) == 3  # the image, then under the predicted and the true class's maps
    shown = [t.value for t in at.text]
    assert f"Predicted: {run.class_names[run.y_pred[index]]}" in shown
    assert f"True: {run.class_names[run.y_true[index]]}" in shown
    assert "Grad-CAM" in texts(at)
    (kept,) = at.session_state["saliency_maps"].values()
    assert kept.maps.shape[0] == 2 and kept.targets == (int(run.y_pred[index]), int(run.y_true[index]))
    at.slider(key="mispredictions-saliency-opacity").set_value(0.9).run()
    no_exceptions(at)
    (again,) = at.session_state["saliency_maps"].values()
    assert again is kept and len(at.get("image")) == 3  # reblended, not asked of the worker again


def test_a_run_whose_model_is_gone_says_so_without_a_path(tmp_path, monkeypatch):
    store = fresh_store(tmp_path, monkeypatch)
    moved = tmp_path / "models" / "digits.keras"
    moved.parent.mkdir()
    shutil.copy(DEMO_MODEL, moved)
    run = demo_runs()[1]
    run = dataclasses.replace(run, info=dataclasses.replace(run.info, model=str(moved)))
    run_id = store.save(run)
    moved.unlink()
    rel = run.mispredictions()["file"].iloc[0]
    at = open_app(PAGE, run=str(run_id), file=rel)
    no_exceptions(at)
    notes = " ".join(i.value for i in at.info)
    assert "model file is no longer on the server" in notes and str(tmp_path) not in notes
    assert len(at.get("image")) == 1  # the image itself is still shown

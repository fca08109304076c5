"""Whole-folder evaluation: output heads, the class-order trap and its fixes, collapse, width errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gtpred_core import OutputWidthError, evaluate_folder, natural_order, outputs_to_probabilities
from gtpred_core.demo import demo_class_names


def test_the_class_order_trap_is_detected_and_natural_order_suggested(softmax_model, digits_dir):
    run = evaluate_folder(softmax_model, digits_dir)  # default: Keras' folder order
    assert run.class_names[:3] == ("Class_1", "Class_10", "Class_2")
    mismatch = [w for w in run.warnings if w.code == "class-order-mismatch"]
    assert len(mismatch) == 1 and "natural order" in mismatch[0].message
    assert run.suggested_class_order == demo_class_names()
    assert run.metrics.accuracy < 0.4  # reported honestly under the order in use
    fixed = run.relabel(run.suggested_class_order)
    assert fixed.metrics.accuracy > 0.85
    assert "class-order-mismatch" not in fixed.warning_codes()
    np.testing.assert_array_equal(fixed.y_pred, run.y_pred)  # no inference, same outputs


def test_natural_order_labels_file_and_class_indices_json_all_fix_the_trap(softmax_model, digits_dir, tmp_path):
    names = natural_order([f"Class_{i}" for i in range(1, 11)])
    labels_txt = tmp_path / "labels.txt"
    labels_txt.write_text("\n".join(names) + "\n")
    class_indices = tmp_path / "class_indices.json"
    class_indices.write_text(json.dumps({name: i for i, name in reversed(list(enumerate(names)))}))
    accuracies = []
    for order in ("natural", labels_txt, class_indices):
        run = evaluate_folder(softmax_model, digits_dir, class_order=order)
        assert run.class_names == tuple(names)
        assert run.suggested_class_order is None
        accuracies.append(run.metrics.accuracy)
    assert min(accuracies) > 0.85 and len(set(accuracies)) == 1


def test_logits_are_detected_softmaxed_and_warned(logits_model, digits_dir):
    run = evaluate_folder(logits_model, digits_dir, class_order="natural")
    assert run.info.head == "logits"
    assert "logits-output" in run.warning_codes()
    np.testing.assert_allclose(run.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert run.metrics.accuracy > 0.8


def test_single_sigmoid_unit_means_two_classes_with_index_1_positive(sigmoid_model, binary_dir):
    run = evaluate_folder(sigmoid_model, binary_dir)
    assert run.class_names == ("one", "zero") and run.info.head == "sigmoid"
    assert run.probabilities.shape == (run.n_images, 2)
    np.testing.assert_allclose(run.probabilities.sum(axis=1), 1.0, atol=1e-6)
    # index 1 ('zero') is predicted exactly when P(class 1) > 0.5
    np.testing.assert_array_equal(run.y_pred, (run.probabilities[:, 1] > 0.5).astype(int))
    assert run.metrics.accuracy > 0.95


def test_sigmoid_outputs_outside_0_1_are_logits():
    probabilities, head = outputs_to_probabilities(np.array([[-2.0], [0.0], [3.0]], np.float32))
    assert head == "sigmoid-logit"
    np.testing.assert_allclose(probabilities[:, 1], 1 / (1 + np.exp([2.0, 0.0, -3.0])), rtol=1e-6)


def test_output_width_that_does_not_match_the_classes_names_both_numbers(sigmoid_model, digits_dir):
    with pytest.raises(OutputWidthError, match=r"outputs 1 values per image but the folder has 10 classes"):
        evaluate_folder(sigmoid_model, digits_dir)


@pytest.mark.parametrize("fmt", ["softmax.keras", "softmax.h5", "softmax_savedmodel"])
def test_keras_h5_and_savedmodel_give_identical_predictions(softmax_model, digits_dir, fmt):
    reference = evaluate_folder(softmax_model, digits_dir, class_order="natural")
    run = evaluate_folder(softmax_model.parent / fmt, digits_dir, class_order="natural")
    assert run.paths == reference.paths
    np.testing.assert_allclose(run.probabilities, reference.probabilities, atol=1e-5)


def test_a_model_that_predicts_one_class_for_everything_is_flagged(softmax_model, digits_dir):
    run = evaluate_folder(softmax_model, digits_dir, class_order="natural", preprocess="rescale")
    # pixels divided by 255 twice (the model rescales itself): all inputs look black
    collapse = [w for w in run.warnings if w.code == "prediction-collapse"]
    assert collapse, run.warnings
    assert "Rescaling" in collapse[0].message and "--preprocess none" in collapse[0].message


def test_an_empty_class_folder_is_kept_and_warned(softmax_model, digits_dir, tmp_path):
    import shutil

    root = tmp_path / "val"
    shutil.copytree(digits_dir, root)
    for f in (root / "Class_7").iterdir():
        f.unlink()
    run = evaluate_folder(softmax_model, root, class_order="natural")
    assert "Class_7" in run.class_names and len(run.class_names) == 10
    assert any(w.code == "empty-class" and "Class_7" in w.message for w in run.warnings)
    assert run.metrics.per_class[run.class_names.index("Class_7")].support == 0

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
    with pytest.raises(OutputWidthError, match=r"outputs 1 values per image but the folder has 10 classes: a sigmoid head means 2 classes\."):
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


# ----- one head per model, the same on every path ---------------------------------------------------
@pytest.fixture(scope="module")
def one_unit_logit_models(digits, binary_dir, tmp_path_factory):
    """A binary classifier with one linear unit (the logit of 'zero', trained with
    from_logits=True), its bias moved so that the first file's output falls in 0..1 while most
    others fall outside: the case where "read the head from the first batch" and "read it from
    all outputs" disagree. Saved as .keras and as a SavedModel (whose graph gtpred cannot read)."""
    import keras
    import tensorflow as tf

    from gtpred_core import index_image_folder, predict_files
    from gtpred_core.model import from_keras_model

    images, labels = digits
    keep = (labels == 0) | (labels == 1)
    keras.utils.set_random_seed(3)
    x = np.repeat(tf.image.resize(images[keep][..., None].astype("float32"), (16, 16)).numpy(), 3, axis=-1)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, (labels[keep] == 0).astype("float32"), epochs=4, batch_size=64, verbose=0)
    files = index_image_folder(binary_dir).absolute_paths()
    first = float(predict_files(from_keras_model(model), files[:1]).outputs[0, 0])
    dense = model.layers[-1]
    dense.bias.assign(dense.bias.numpy() + (0.5 - first))
    outputs = predict_files(from_keras_model(model), files).outputs[:, 0]
    assert 0 <= outputs[0] <= 1 and np.mean((outputs < 0) | (outputs > 1)) > 0.5
    root = tmp_path_factory.mktemp("one-unit")
    model.save(root / "logit_unit.keras")
    model.export(root / "logit_unit_savedmodel", verbose=False)
    return root


HEAD_CASES = [
    # (model, folder, head choice, the head every path must use; None: read from the first batch)
    ("softmax", "digits", "auto", "softmax"),
    ("logits", "digits", "auto", "logits"),
    ("sigmoid", "binary", "auto", "sigmoid"),
    ("logit_unit.keras", "binary", "logit", "sigmoid-logit"),
    ("logit_unit_savedmodel", "binary", "auto", None),
]


@pytest.mark.parametrize("batch_size", [1, 32])
@pytest.mark.parametrize(("model_name", "folder_name", "choice", "expected"), HEAD_CASES, ids=[c[0] for c in HEAD_CASES])
def test_probabilities_are_bit_equal_with_and_without_a_sink(
    request, one_unit_logit_models, digits_dir, binary_dir, tmp_path, model_name, folder_name, choice, expected, batch_size
):
    from gtpred_core.store import RunStore

    fixtures = {"softmax": "softmax_model", "logits": "logits_model", "sigmoid": "sigmoid_model"}
    model = request.getfixturevalue(fixtures[model_name]) if model_name in fixtures else one_unit_logit_models / model_name
    folder = digits_dir if folder_name == "digits" else binary_dir
    alone = evaluate_folder(model, folder, batch_size=batch_size, head=choice)
    store = RunStore(tmp_path / "runs.sqlite3")
    writer = store.writer("streamed")
    streamed = evaluate_folder(model, folder, batch_size=batch_size, head=choice, sink=writer)
    assert alone.info.head == streamed.info.head == (expected or alone.info.head)
    assert alone.probabilities.tobytes() == streamed.probabilities.tobytes()
    assert store.load(writer.run_id).probabilities.tobytes() == alone.probabilities.tobytes()
    if model_name == "logit_unit_savedmodel":
        # The graph cannot tell, so the first batch decides: at batch size 1 that is one output
        # in 0..1 (read as a sigmoid), at 32 a batch with outputs outside it (a logit).
        assert alone.info.head == ("sigmoid" if batch_size == 1 else "sigmoid-logit")


def test_a_one_unit_logit_model_needs_the_users_word_and_then_reads_as_a_sigmoid_logit(one_unit_logit_models, binary_dir):
    from gtpred_core import ModelError

    with pytest.raises(ModelError, match=r"logit_unit.keras outputs a single value with a linear activation"):
        evaluate_folder(one_unit_logit_models / "logit_unit.keras", binary_dir)
    run = evaluate_folder(one_unit_logit_models / "logit_unit.keras", binary_dir, head="logit")
    assert run.info.head == "sigmoid-logit" and "logits-output" in run.warning_codes()
    from gtpred_core import index_image_folder, load_model, predict_files

    raw = predict_files(load_model(one_unit_logit_models / "logit_unit.keras"), index_image_folder(binary_dir).absolute_paths())
    np.testing.assert_allclose(run.probabilities[:, 1], 1 / (1 + np.exp(-raw.outputs[:, 0].astype(np.float64))), atol=1e-5)
    np.testing.assert_array_equal(run.y_pred, (raw.outputs[:, 0] > 0).astype(int))  # 'zero' when the logit is positive


def test_a_one_class_folder_is_refused_before_running_and_what_runs_is_stored_readably(
    sigmoid_model, one_unit_logit_models, binary_dir, tmp_path
):
    """Issue 14: a one-unit head on a one-class folder stored a run that could not be read back."""
    import shutil

    from gtpred_core import ModelError
    from gtpred_core.store import RunStore

    only_zeros = tmp_path / "only-zeros"
    shutil.copytree(binary_dir / "zero", only_zeros / "zero")
    store = RunStore(tmp_path / "runs.sqlite3")
    linear = one_unit_logit_models / "logit_unit.keras"
    with pytest.raises(ModelError, match="not a sigmoid"):
        evaluate_folder(linear, only_zeros, sink=store.writer("refused head"))
    with pytest.raises(OutputWidthError, match=r"outputs 1 values per image but the folder has 1 class: a sigmoid-logit head means 2 classes\."):
        evaluate_folder(linear, only_zeros, head="logit", sink=store.writer("logit on one class"))
    with pytest.raises(OutputWidthError, match=r"but the folder has 1 class: a sigmoid head means 2 classes\."):
        evaluate_folder(sigmoid_model, only_zeros, sink=store.writer("sigmoid on one class"))
    assert store.list() == []  # refused before anything was stored
    # The same images with the other class's folder present but empty: two classes, accepted.
    (only_zeros / "one").mkdir()
    for model, choice in ((sigmoid_model, "auto"), (linear, "logit")):
        writer = store.writer(f"{model.name} on zeros only")
        run = evaluate_folder(model, only_zeros, head=choice, sink=writer)
        stored = store.load(writer.run_id)
        assert stored.class_names == run.class_names == ("one", "zero")
        assert stored.probabilities.shape == (run.n_images, 2) and stored.paths == run.paths
        np.testing.assert_array_equal(stored.probabilities, run.probabilities)

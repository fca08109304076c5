"""Loading models: three formats, what is read from them, and what is refused."""

from __future__ import annotations

import pytest

from gtpred_core import ModelError, load_model
from gtpred_core.model import Head, resolve_head


@pytest.mark.parametrize(("name", "kind"), [("softmax.keras", "keras"), ("softmax.h5", "h5"), ("softmax_savedmodel", "savedmodel")])
def test_three_formats_load_with_their_input_and_output_read(softmax_model, name, kind):
    model = load_model(softmax_model.parent / name)
    assert (model.kind, model.input_size, model.channels, model.output_width) == (kind, (16, 16), 3, 10)


def test_keras_files_report_their_activation_and_scaling(softmax_model, logits_model, gray_model):
    assert load_model(softmax_model).activation == "softmax"
    assert load_model(logits_model).activation == "linear"
    assert load_model(gray_model).channels == 1
    assert load_model(softmax_model).rescales_itself is True
    assert load_model(softmax_model.parent / "softmax_savedmodel").rescales_itself is None


def test_a_tf_saved_model_save_folder_also_loads(tmp_path):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    tf.saved_model.save(model, str(tmp_path / "sm"))
    loaded = load_model(tmp_path / "sm")
    assert (loaded.input_size, loaded.channels, loaded.output_width) == ((8, 8), 1, 3)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path, suffix):
    import keras

    canary = tmp_path / "canary"
    # A lambda with the canary path as a literal (no closure), so Keras can serialise its bytecode.
    writes_canary = eval(f"lambda x: (open({str(canary)!r}, 'w').write('pwned'), x)[1]")
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Lambda(writes_canary), keras.layers.Flatten(), keras.layers.Dense(2)])
    path = tmp_path / f"evil{suffix}"
    model.save(path)
    assert canary.exists()  # the lambda really writes: building the model ran it once
    canary.unlink()
    with pytest.raises(ModelError, match=r"evil\.(keras|h5) was refused: it asks to run code"):
        load_model(path)
    assert not canary.exists()


def test_missing_unknown_and_non_model_paths_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="Model not found"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="weights.pt is not a model format gtpred reads"):
        load_model(tmp_path / "weights.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="not a TF SavedModel"):
        load_model(tmp_path / "folder")


def test_find_model_files_lists_models_and_savedmodel_folders(tmp_path):
    from gtpred_core.model import find_model_files

    (tmp_path / "a").mkdir()
    (tmp_path / "a/m.keras").write_bytes(b"")
    (tmp_path / "b/sm/variables").mkdir(parents=True)
    (tmp_path / "b/sm/saved_model.pb").write_bytes(b"")
    (tmp_path / "b/sm/variables/x.h5").write_bytes(b"")  # inside a SavedModel: not a model
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden/h.h5").write_bytes(b"")
    assert find_model_files(tmp_path) == ["a/m.keras", "b/sm"]
    assert find_model_files(tmp_path / "missing") == []


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory):
    """One real tiny model saved as .keras, .h5 and weights only, and the bytes of each."""
    import keras

    root = tmp_path_factory.mktemp("files")
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.save(root / "ok.keras")
    model.save(root / "ok.h5")
    model.save_weights(root / "only.weights.h5")
    return {name: (root / name).read_bytes() for name in ("ok.keras", "ok.h5", "only.weights.h5")}


@pytest.mark.parametrize(
    ("name", "content", "found", "fix"),
    [
        ("empty.keras", lambda f: b"", r"an empty file \(0 bytes\)", "complete .keras"),
        ("notes.keras", lambda f: b"not a zip at all\n", "a text file", "complete .keras"),
        ("noise.keras", lambda f: bytes(range(256)), "binary data of an unknown kind", "complete .keras"),
        ("cut.keras", lambda f: f["ok.keras"][: len(f["ok.keras"]) // 2], "a truncated or damaged zip archive", "cut short"),
        ("cut.h5", lambda f: f["ok.h5"][: len(f["ok.h5"]) // 2], "an HDF5 file that cannot be read: .*truncated", "Copy the file again"),
        ("weights.h5", lambda f: f["only.weights.h5"], r"an HDF5 file of weights only", r"not model.save_weights\(\)"),
        ("legacy.keras", lambda f: f["ok.h5"], "an HDF5 file, an .h5 model saved under another name", "Rename it to .h5"),
        ("renamed.h5", lambda f: f["ok.keras"], "a zip archive, a .keras model saved under another name", "Rename it to .keras"),
        ("text.h5", lambda f: b"hello", "a text file", "complete .keras"),
    ],
)
def test_a_file_that_is_not_a_keras_model_says_what_it_is(tmp_path, saved_files, name, content, found, fix):
    path = tmp_path / name
    path.write_bytes(content(saved_files))
    with pytest.raises(ModelError, match=rf"^{name.replace('.', '[.]')} is not a Keras model file \(it is {found}.*\)\. .*{fix}") as caught:
        load_model(path)
    assert "File not found" not in str(caught.value) and caught.value.path == str(path)


def test_a_zip_that_holds_no_model_says_so(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "images.keras", "w") as archive:
        archive.writestr("cat/1.png", b"png")
    with pytest.raises(ModelError, match=r"images.keras is not a Keras model file \(it is a zip archive without a Keras model inside \(no config.json\)\)"):
        load_model(tmp_path / "images.keras")


# ----- the output head, read once from the graph ----------------------------------------------------
def _saved_and_loaded(model, path):
    model.save(path)
    return load_model(path)


def _backbone():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="backbone")


def _graphs():
    """(name, model builder, expected activation, expected head): real layouts users save."""
    import keras

    def sequential(*layers):
        return keras.Sequential([keras.Input((8, 8, 3)), *layers])

    def functional_head(activation):
        inputs = keras.Input((8, 8, 3))
        outputs = keras.layers.Dense(3, activation=activation)(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, outputs, name="classifier")

    def functional_sigmoid_then_dropout():
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Dense(1)(_backbone()(inputs))
        x = keras.layers.Dropout(0.2)(keras.layers.Activation("sigmoid")(x))
        return keras.Model(inputs, x)

    return [
        ("backbone+dense softmax", lambda: sequential(_backbone(), keras.layers.Dense(3, activation="softmax")), "softmax", Head.SOFTMAX),
        ("backbone+dense+Softmax layer", lambda: sequential(_backbone(), keras.layers.Dense(3), keras.layers.Softmax()), "softmax", Head.SOFTMAX),
        ("dense+Activation softmax", lambda: sequential(keras.layers.Flatten(), keras.layers.Dense(3), keras.layers.Activation("softmax")), "softmax", Head.SOFTMAX),
        ("Sequential holding a functional classifier", lambda: sequential(functional_head("softmax")), "softmax", Head.SOFTMAX),
        ("Sequential holding a functional logits model", lambda: sequential(functional_head(None)), "linear", Head.LOGITS),
        ("dense, activation=None", lambda: sequential(keras.layers.Flatten(), keras.layers.Dense(3, activation=None)), "linear", Head.LOGITS),
        ("dense softmax, then Activation linear and Dropout", lambda: sequential(keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax"), keras.layers.Activation("linear"), keras.layers.Dropout(0.1)), "softmax", Head.SOFTMAX),
        ("functional: dense(1), Activation sigmoid, Dropout", functional_sigmoid_then_dropout, "sigmoid", Head.SIGMOID),
        ("one sigmoid unit", lambda: sequential(keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")), "sigmoid", Head.SIGMOID),
        ("one linear unit", lambda: sequential(keras.layers.Flatten(), keras.layers.Dense(1)), "linear", None),
    ]


@pytest.mark.parametrize(("layout", "build", "activation", "head"), _graphs(), ids=[g[0] for g in _graphs()])
def test_the_head_is_read_from_the_graph_through_nested_models(tmp_path, layout, build, activation, head):
    loaded = _saved_and_loaded(build(), tmp_path / "model.keras")
    assert (loaded.activation, loaded.head) == (activation, head)


def test_a_one_unit_linear_output_is_refused_unless_the_user_says_it_is_a_logit(tmp_path):
    import keras

    loaded = _saved_and_loaded(keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(1)]), tmp_path / "score.keras")
    with pytest.raises(ModelError, match=r"score.keras outputs a single value with a linear activation, not a sigmoid: it may be a regression model.*--head logit"):
        resolve_head(loaded)
    assert resolve_head(loaded, "logit") is Head.SIGMOID_LOGIT


def test_saying_logit_for_a_softmax_model_is_refused_and_the_savedmodel_head_is_left_to_its_outputs(softmax_model, logits_model):
    with pytest.raises(ModelError, match=r"softmax.keras ends in a softmax: its outputs are already probabilities"):
        resolve_head(load_model(softmax_model), "logit")
    assert resolve_head(load_model(logits_model), "logit") is Head.LOGITS
    saved = load_model(softmax_model.parent / "softmax_savedmodel")
    assert (saved.activation, saved.head, resolve_head(saved)) == (None, None, None)
    with pytest.raises(ModelError, match="Unknown head choice 'probit'"):
        resolve_head(saved, "probit")

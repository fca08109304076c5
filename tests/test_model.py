"""Loading models: three formats, what is read from them, and what is refused."""

from __future__ import annotations

import pytest

from gtpred_core import ModelError, load_model


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


def test_unreadable_and_unknown_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip at all")
    with pytest.raises(ModelError, match="broken.keras could not be loaded as a Keras model"):
        load_model(broken)
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

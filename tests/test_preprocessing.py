"""Preprocessing modes equal keras.applications.imagenet_utils.preprocess_input's."""

from __future__ import annotations

import numpy as np
import pytest

from gtpred_core import PreprocessError
from gtpred_core.preprocessing import apply_preprocess, check_preprocess


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_modes_match_keras_imagenet_utils(mode):
    from keras.applications import imagenet_utils

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    expected = imagenet_utils.preprocess_input(pixels.copy(), mode=mode)
    np.testing.assert_allclose(np.asarray(apply_preprocess(pixels, mode)), expected, rtol=1e-5, atol=1e-4)


def test_none_and_rescale():
    pixels = np.full((1, 2, 2, 1), 255.0, np.float32)
    assert np.asarray(apply_preprocess(pixels, "none")).max() == 255.0
    assert np.asarray(apply_preprocess(pixels, "rescale")).max() == pytest.approx(1.0)


def test_imagenet_modes_refuse_grayscale_and_unknown_modes_are_named():
    with pytest.raises(PreprocessError, match="defined for RGB images"):
        check_preprocess("caffe", 1)
    with pytest.raises(PreprocessError, match="Unknown preprocessing 'imagenet'"):
        check_preprocess("imagenet", 3)

"""The built-in demo: held-out digits from scikit-learn and a small CNN shipped with gtpred.

The folders are named ``Class_1`` .. ``Class_10`` (``Class_10`` holds the zeros) and the model
was trained with the classes in natural order, so Keras' folder order (``Class_1, Class_10,
Class_2, ...``) shows the class-order trap and ``natural`` shows the fix.

The demo's images ship as PNG files in ``demo_assets/demo_digits.zip`` (made by
``write_digits_folder`` from scikit-learn's digits) so the first demo on a fresh server only
unpacks them: importing scikit-learn and encoding 797 PNGs took seconds of the first click.
``python -m gtpred_core.demo train`` rebuilds the shipped model (needs TensorFlow);
``python -m gtpred_core.demo images`` rebuilds the shipped images.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .class_order import natural_order
from .settings import get_settings

DEMO_MODEL = Path(__file__).parent / "demo_assets" / "digits_cnn.keras"
#: The demo folder's 797 PNGs (``Class_k/img_n.png``), as ``write_digits_folder`` writes them.
DEMO_IMAGES_ZIP = Path(__file__).parent / "demo_assets" / "demo_digits.zip"
IMAGE_SIZE = 32
#: Digits with index below this train the demo model; the rest form the demo folder.
TRAIN_SPLIT = 1000


def class_name_for_digit(digit: int) -> str:
    return f"Class_{digit if digit else 10}"


def demo_class_names() -> tuple[str, ...]:
    """The demo's class names in natural order: the order the demo model was trained with."""
    return natural_order([class_name_for_digit(d) for d in range(10)])


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 scikit-learn digits as 32x32 uint8 images (0..255), with their digit labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    scale = IMAGE_SIZE // 8
    images = np.kron(digits.images, np.ones((scale, scale))) * (255.0 / 16.0)
    return images.round().clip(0, 255).astype(np.uint8), digits.target.astype(int)


def write_digits_folder(
    dest: str | Path, images: np.ndarray, digits: np.ndarray, *, ext: str = ".png", offset: int = 0
) -> Path:
    """Write images into ``dest/Class_<digit>/img_<n>.png`` folders (grayscale files)."""
    from PIL import Image

    dest = Path(dest)
    for digit in range(10):
        (dest / class_name_for_digit(digit)).mkdir(parents=True, exist_ok=True)
    for n, (image, digit) in enumerate(zip(images, digits)):
        Image.fromarray(image, mode="L").save(dest / class_name_for_digit(int(digit)) / f"img_{n + offset:04d}{ext}")
    return dest


def demo_folder() -> Path:
    """The demo image folder (the 797 held-out digits), written on first use into the cache."""
    dest = get_settings().cache_dir / "demo-digits"
    marker = dest.with_name(dest.name + ".complete")
    if not marker.exists():
        with zipfile.ZipFile(DEMO_IMAGES_ZIP) as shipped:
            shipped.extractall(dest)
        marker.write_text("ok\n")
    return dest


def write_demo_images_zip(out: Path = DEMO_IMAGES_ZIP) -> Path:
    """Rebuild the shipped demo images from scikit-learn's held-out digits (files in a fixed
    order with a fixed date, so the same digits give the same zip)."""
    images, digits = digit_images()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_digits_folder(tmp, images[TRAIN_SPLIT:], digits[TRAIN_SPLIT:], offset=TRAIN_SPLIT)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as shipped:
            for path in sorted(folder.rglob("*.png")):
                entry = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
                shipped.writestr(entry, path.read_bytes())
    return out


def train_demo_model(out: Path = DEMO_MODEL, epochs: int = 12) -> Path:
    """Train the shipped demo CNN on the first digits, classes in natural order."""
    import keras

    keras.utils.set_random_seed(0)
    images, digits = digit_images()
    names = demo_class_names()
    labels = np.array([names.index(class_name_for_digit(d)) for d in digits])
    x = np.repeat(images[:TRAIN_SPLIT, :, :, None], 3, axis=-1).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels[:TRAIN_SPLIT], epochs=epochs, batch_size=32, verbose=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["train"]:
        print(f"wrote {train_demo_model()}")
    elif sys.argv[1:] == ["images"]:
        print(f"wrote {write_demo_images_zip()}")
    else:
        print(f"demo folder: {demo_folder()}\ndemo model: {DEMO_MODEL}")

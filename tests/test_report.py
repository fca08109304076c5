"""The HTML report: what it says first, its size, and that it asks the network for nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gtpred_core import assemble_run, evaluate_folder
from gtpred_core.demo import DEMO_MODEL, demo_folder, digit_images, write_digits_folder
from gtpred_core.report import confusion_svg, report_html, write_report
from gtpred_core.run import RunInfo


@pytest.fixture(scope="module")
def demo_run():
    return evaluate_folder(DEMO_MODEL, demo_folder())  # Keras order: the class-order trap


def test_the_report_says_first_how_good_and_what_to_distrust(demo_run):
    page = report_html(demo_run)
    verdict = re.search(r'<p class="verdict" id="verdict">(.*?)</p>', page).group(1)
    assert f"{100 * demo_run.accuracy:.1f}%" in verdict
    assert "Do not trust this number yet" in verdict  # the class-order trap comes first
    assert page.index('id="verdict"') < page.index("Per class") < page.index("Confusion matrix")
    assert page.count('class="cell"') == len(demo_run.class_names) ** 2
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count('src="data:image/jpeg;base64,') >= 10  # thumbnails of the shown mistakes


def test_user_strings_are_escaped(tmp_path):
    names = ("<img src=x onerror=alert(1)>", "[x](https:evil.example)")
    images, labels = digit_images()
    paths, y = [], []
    for k, name in enumerate(names):
        (tmp_path / name).mkdir()
        for n in np.flatnonzero(labels == k)[:3]:
            from PIL import Image

            rel = f"{name}/<b>{n}.png"
            Image.fromarray(images[n]).save(tmp_path / rel)
            paths.append(rel)
            y.append(k)
    y = np.array(y)
    run = assemble_run(
        class_names=names, paths=paths, y_true=y, y_pred=1 - y,
        probabilities=np.eye(2, dtype=np.float32)[1 - y], info=RunInfo(images=str(tmp_path), model="m<script>.keras"),
    )
    page = report_html(run)
    assert "<img src=x" not in page and "<script" not in page and not re.search(r"<b>\d+\.png", page)
    assert re.search(r"&lt;b&gt;\d+\.png", page) and "m&lt;script&gt;.keras" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_2000_image_10_class_run_stays_under_10_mb(tmp_path):
    images, labels = digit_images()
    pick = np.arange(2000) % len(labels)
    root = write_digits_folder(tmp_path / "val", images[pick], labels[pick])
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=len(files)).astype(np.float32)
    names = tuple(sorted({f.split("/")[0] for f in files}))
    y_true = np.array([names.index(f.split("/")[0]) for f in files])
    run = assemble_run(
        class_names=names, paths=files, y_true=y_true, y_pred=probabilities.argmax(1),
        probabilities=probabilities, info=RunInfo(images=str(root)),
    )
    size = write_report(run, tmp_path / "report.html").stat().st_size
    assert size <= 10 * 1024 * 1024, size


def test_the_confusion_matrix_stays_readable_at_100_classes():
    names = [f"class_{i:03d}_with_a_longer_name" for i in range(100)]
    svg = confusion_svg(np.eye(100, dtype=np.int64) * 5, names)
    cell = float(re.search(r'class="cell" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg).group(1)) + 1
    font = float(re.search(r'font-size="(\d+)"', svg).group(1))
    assert cell >= font + 2  # row and column labels one cell apart never overlap
    assert svg.count('class="cell"') == 100 * 100

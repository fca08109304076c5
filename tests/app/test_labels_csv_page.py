"""The Evaluate page with a labels CSV instead of class folders: upload the CSV and a zip, see the
report (as text), run; the run keeps the CSV's row order."""

from __future__ import annotations

import csv
import io
import random
import zipfile

from gtpred_core.demo import DEMO_MODEL, demo_folder



from app_helpers import no_exceptions, open_app, stored_run


def _csv(rows: list[tuple[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["filename", "class"])
    writer.writerows(rows)
    return text.getvalue().encode()


def test_an_uploaded_labels_csv_is_reported_then_evaluated_in_its_row_order():
    images = sorted(demo_folder().rglob("*.png"))[::8]  # about 100 images, all 10 classes
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        for p in images:
            archive.writestr(f"images/{p.name}", p.read_bytes())  # flat: the CSV holds the labels
    rows = [(p.name, p.parent.name) for p in images]
    random.Random(3).shuffle(rows)
    rows.append(("gone.png", "Class_1"))
    rows.append(("[x](https:evil.example).png", "Class_1"))

    at = open_app()
    at.file_uploader(key="model_upload").upload("digits.keras", DEMO_MODEL.read_bytes(), "application/octet-stream")
    at.radio(key="images_layout").set_value("csv").run()
    at.radio(key="labels_csv_source").set_value("Upload the CSV and a .zip of the images").run()
    at.file_uploader(key="labels_csv_upload").upload("labels.csv", _csv(rows), "text/csv")
    at.file_uploader(key="labels_csv_zip").upload("images.zip", bundle.getvalue(), "application/zip")
    at.radio(key="class_order").set_value("natural")
    at.run()
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    report = "\n".join(t.value for t in at.text)
    assert f"labels.csv: {len(rows)} rows, {len(images)} images to evaluate" in report
    assert "2 row(s) name a file that will not be evaluated (first: row" in report
    assert "[x](https:evil.example).png" not in " ".join(m.value for m in at.markdown)  # text only
    at.button(key="run").click().run()
    no_exceptions(at)
    run = stored_run(at.session_state["run_id"])  # the run as the store keeps it
    assert list(run.paths) == [name for name, _ in rows[: len(images)]]  # the CSV's order
    assert run.accuracy > 0.8

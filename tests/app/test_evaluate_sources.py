"""The Evaluate page's sources on a server without a data root: it opens on upload, no error.

A non-programmer cannot act on "data root … does not exist (set GTPRED_DATA_ROOT)"; the page
offers the uploads, explains the server-folder option, and the hint for the admin goes to the
server log (and the README), never to the page.
"""

from __future__ import annotations

import io
import logging
import zipfile

from app_helpers import no_exceptions, open_app

EVALUATE = "gtpred_app/screens/evaluate.py"


def shown_text(at) -> str:
    return " ".join(str(e.value) for kind in (at.markdown, at.info, at.caption, at.warning, at.error) for e in kind)


def test_without_a_data_root_the_page_opens_on_upload_and_explains_the_server_option(tmp_path, monkeypatch, caplog):
    missing = tmp_path / "no-such-data-root"
    monkeypatch.setenv("GTPRED_DATA_ROOT", str(missing))
    with caplog.at_level(logging.WARNING, logger="gtpred.app"):
        at = open_app(EVALUATE)
    no_exceptions(at)
    assert not at.error and not at.warning
    assert at.radio(key="images_source").value == "Upload a .zip"
    assert at.file_uploader(key="images_zip").label.startswith("A .zip of the image folder")
    assert at.radio(key="model_source").value == "Upload a file"

    at.radio(key="images_source").set_value("A folder on the server")
    at.radio(key="model_source").set_value("On the server")
    at.run()
    no_exceptions(at)
    assert not at.error and not at.warning
    explained = [i.value for i in at.info if "no shared folder of data set up" in i.value]
    assert len(explained) == 2 and all("Upload the files instead" in i for i in explained)
    assert str(tmp_path) not in shown_text(at) and "GTPRED_DATA_ROOT" not in shown_text(at)
    # The admin's hint is in the server log, with the path and the setting to change.
    assert str(missing) in caplog.text and "Set GTPRED_DATA_ROOT" in caplog.text


def test_an_upload_works_on_a_server_without_a_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GTPRED_DATA_ROOT", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("GTPRED_CACHE_DIR", str(tmp_path / "cache"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name in ("val/cat/a.png", "val/cat/b.png", "val/dog/c.png"):
            bundle.writestr(name, b"not decoded until evaluation")
    at = open_app(EVALUATE)
    at.file_uploader(key="images_zip").upload("val.zip", buffer.getvalue(), "application/zip").run()
    no_exceptions(at)
    assert not at.error
    assert "3 images in 2 classes" in shown_text(at)


def test_with_a_data_root_the_page_still_opens_on_the_server_folder(tmp_path, monkeypatch):
    (tmp_path / "root" / "val").mkdir(parents=True)
    monkeypatch.setenv("GTPRED_DATA_ROOT", str(tmp_path / "root"))
    at = open_app(EVALUATE)
    no_exceptions(at)
    assert at.radio(key="images_source").value == "A folder on the server"
    assert at.selectbox(key="browse_child").options == ["val"]

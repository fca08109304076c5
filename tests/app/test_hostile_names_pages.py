"""Hostile names on every page, in Streamlit's own test runner (issue 14, items 1 and 2).

Runs of a data root whose class folders, files, model file, data set, runs and training carry
names that Markdown would turn into links, bold, code, images or HTML (``hostile_names``). Each
page is opened by its URL, as a shared link opens it, and everything it sends to a Markdown
renderer (Markdown, captions, alerts, headings, button labels and help texts) must hold each
name only escaped (``md``): the raw name never appears there. Widgets that show plain text
(selectbox options, ``st.text``, tables) show the name exactly. No page shows the data root,
the run store or the cache folder. The real browser walk is tests/browser/test_hostile_names.py.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from gtpred_app.ui.text import md

import hostile_names as H
from app_helpers import click_cell, no_exceptions, open_app, shown

#: Every name a user gave: class folders, files, the model file, the data set, runs, training.
NAMES = sorted(
    {*H.CLASS_FOR.values(), *H.HOSTILE_FILES, H.BROKEN_FILE, H.MODEL_FILE, H.DATASET, H.URL,
     H.RUN_A_NAME, H.RUN_B_NAME, H.TRAINING_NAME, H.RELABEL_SOURCE}
)
MARKDOWN_KINDS = ("markdown", "caption", "warning", "info", "error", "success", "title", "header", "subheader")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The hostile data root, a store holding its runs and training, and the app's settings
    pointing at them (data root, run store, cache)."""
    base = tmp_path_factory.mktemp("hostile-server")
    root, db, cache = base / "data", base / "runs.sqlite3", base / "cache"
    root.mkdir()
    H.write_hostile_data_root(root)
    (root / "no-classes").mkdir()
    (root / "no-classes" / "lonely.png").write_bytes((root / H.DATASET / H.BOLD / f"{H.BOLD}.png").read_bytes())
    patch = pytest.MonkeyPatch()
    for key, value in {"GTPRED_DATA_ROOT": root, "GTPRED_DB": db, "GTPRED_CACHE_DIR": cache}.items():
        patch.setenv(key, str(value))
    runs = H.store_hostile_runs(root, db)
    yield base, runs
    patch.undo()


def markdown_values(at) -> list[str]:
    """What the page handed to a Markdown renderer: text elements, labels and help texts."""
    values = [e.value for kind in MARKDOWN_KINDS for e in getattr(at, kind)]
    values += [b.label for b in at.button] + [b.help for b in at.button if b.help]
    values += [e.label for e in at.expander]
    return [str(v) for v in values]


def everything_shown(at) -> str:
    """All text the page shows, Markdown or not (tables and choosers included)."""
    parts = markdown_values(at) + [t.value for t in at.text] + [c.value for c in at.code]
    parts += [df.value.to_string() for df in at.dataframe if hasattr(df.value, "to_string")]
    parts += [str(option) for box in at.selectbox for option in box.options]
    return "\n".join(parts)


def raw_occurrences(name: str, value: str) -> list[int]:
    """Where ``name`` stands in ``value`` as Markdown would read it: not right after a backslash
    (``\\# heading`` holds ``# heading``, escaped)."""
    found, start = [], value.find(name)
    while start != -1:
        if not (start > 0 and value[start - 1] == "\\"):
            found.append(start)
        start = value.find(name, start + 1)
    return found


def assert_names_are_text(at, base, *expected: str) -> None:
    """No raw name reaches Markdown; each ``expected`` name is there, escaped; no server path."""
    no_exceptions(at)
    values = markdown_values(at)
    for value in values:
        for name in NAMES:
            assert not raw_occurrences(name, value), f"{name!r} reached Markdown unescaped in {value!r}"
    joined = "\n".join(values)
    for name in expected:
        assert md(name) in joined, f"{name!r} is not on the page: {joined[:2000]}"
    assert str(base) not in everything_shown(at)


def test_results_caption_sidebar_warnings_help_and_image_detail(hostile):
    base, runs = hostile
    at = open_app("gtpred_app/screens/results.py", run=str(runs.run_a), file=runs.mispredicted_file)
    # caption and sidebar: the model file and data set; warnings: the empty class and the
    # skipped file; the re-label button's help: the class names; the open image's classes
    assert_names_are_text(at, base, H.MODEL_FILE, H.DATASET, H.EMPTY_CLASS, f"{H.LINK}/{H.BROKEN_FILE}", H.WWW, H.BOLD)
    assert any(md(H.MODEL_FILE) in c.value for c in at.sidebar.caption)
    assert any(t.value == runs.mispredicted_file for t in at.text)  # the file's name, exactly


def test_a_relabelled_run_and_its_class_mapping(hostile):
    base, runs = hostile
    at = open_app("gtpred_app/screens/results.py", run=str(runs.run_b))
    assert_names_are_text(at, base, H.RELABEL_SOURCE, H.HTML, H.BACKTICK)
    at = open_app("gtpred_app/screens/class_mapping.py", run=str(runs.run_b))
    assert_names_are_text(at, base, H.RELABEL_SOURCE)


def test_mispredictions_table_gallery_and_detail(hostile):
    base, runs = hostile
    at = open_app("gtpred_app/screens/mispredictions.py", run=str(runs.run_a), file=runs.mispredicted_file)
    assert_names_are_text(at, base, H.MODEL_FILE, H.DATASET)
    at.button_group(key="mis_view").set_value("Gallery").run()
    assert_names_are_text(at, base, H.MODEL_FILE)
    assert any("→" in t.value and any(name in t.value for name in H.CLASS_FOR.values()) for t in at.text)


def test_history_run_names_in_the_heading_and_the_delete_question(hostile):
    base, runs = hostile
    at = open_app("gtpred_app/screens/history.py")
    no_exceptions(at)
    assert set(at.dataframe[0].value["name"]) == {H.RUN_A_NAME, H.RUN_B_NAME}  # a table cell: text
    at = click_cell(at, f"history-{at.session_state['history_version']}", 0, "name")
    assert_names_are_text(at, base, H.RUN_B_NAME)
    at.button(key="history_delete").click().run()
    assert_names_are_text(at, base, H.RUN_B_NAME)
    assert "cannot be undone" in at.warning[0].value


def test_compare_choosers_show_run_names_exactly_and_a_hostile_link_is_text(hostile):
    base, runs = hostile
    at = open_app("gtpred_app/screens/compare.py", a=str(runs.run_a), b=str(runs.run_b), file=runs.mispredicted_file)
    assert_names_are_text(at, base, H.BOLD)
    options = at.selectbox(key="compare_a").options
    assert any(H.RUN_A_NAME in o for o in options) and any(H.RUN_B_NAME in o for o in options)
    at = open_app("gtpred_app/screens/compare.py", a=H.LINK, b=str(runs.run_b))
    assert_names_are_text(at, base, repr(H.LINK))


def test_training_chooser_and_a_files_detail(hostile):
    base, runs = hostile
    at = open_app("gtpred_app/screens/training.py", training=str(runs.training), epoch="2", file=runs.mispredicted_file)
    assert_names_are_text(at, base, H.EMPTY_CLASS)
    assert any(H.TRAINING_NAME in o for o in at.selectbox(key="training").options)
    at = open_app("gtpred_app/screens/training.py", training=H.LINK)
    assert_names_are_text(at, base, repr(H.LINK))


def test_a_broken_link_to_a_run_is_text(hostile):
    base, _ = hostile
    at = open_app("gtpred_app/screens/results.py", run=H.LINK)
    assert_names_are_text(at, base, repr(H.LINK))


def test_evaluate_with_the_hostile_model_and_folder_chosen(hostile):
    base, _ = hostile
    at = open_app()
    at.radio(key="model_source").set_value("On the server").run()
    at.selectbox(key="model_server").set_value(f"models/{H.MODEL_FILE}")
    at.session_state["browse_rel"] = H.DATASET
    at.run()
    # the model's name, the folder browser's path, the folder's summary, the empty class
    assert_names_are_text(at, base, H.MODEL_FILE, H.DATASET, H.EMPTY_CLASS)
    assert f"models/{H.MODEL_FILE}" in at.selectbox(key="model_server").options  # text, exactly


def test_a_folder_error_names_the_folder_under_the_data_root_not_the_servers_path(hostile):
    base, _ = hostile
    at = open_app()
    at.session_state["browse_rel"] = "no-classes"
    at.run()
    assert_names_are_text(at, base)
    (error,) = [shown(e.value) for e in at.error]
    assert "no-classes" in error and "How to fix it" in error


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_upload_errors_name_the_upload_as_text_never_a_scratch_path(hostile):
    base, _ = hostile
    at = open_app()
    at.file_uploader(key="model_upload").upload(f"{H.LINK}.keras", b"not a model", "application/octet-stream")
    at.radio(key="images_source").set_value("Upload a .zip")
    at.run()
    at.file_uploader(key="images_zip").upload("val.zip", _zip({f"../{H.LINK}.png": b"x"}), "application/zip").run()
    assert_names_are_text(at, base)
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 2, errors
    model_error = next(e for e in errors if ".keras" in e)
    assert f"{H.LINK}.keras" in model_error and "scratch" not in model_error and "/" not in model_error.split("How to fix it")[0].replace("https:evil", "")
    assert any(H.LINK in e and ".." in e for e in errors)

"""Training: a stored training (one evaluation per epoch or checkpoint) over its epochs: the
curves, per-class recall, any epoch's confusion matrix, and the images that flipped between two
epochs or were never right (click any cell of a row to follow that image across the epochs). The
address names the training, the epoch and the open image (``?training=3&epoch=2&file=...``)."""

from __future__ import annotations

import streamlit as st

from gtpred_app.ui import charts, links, panels, state, store, tables
from gtpred_app.ui.errors import errors_shown
from gtpred_app.ui.images import with_thumbnails
from gtpred_app.ui.text import md

PAGE_SIZE = 20
ROW_HEIGHT = 44
RECORD_EXAMPLE = """\
from gtpred_core import PredictionRecorder, RunStore

recorder = PredictionRecorder("val/", store=RunStore())   # the app's GTPRED_DB
model.fit(train, epochs=10, callbacks=[recorder])
# or, for saved checkpoints:  python -m gtpred_core evaluate-checkpoints --models 'ckpt/*.keras' --images val/
"""


def _clickable_files(table, root: str, key: str, caption: str, labels: dict | None = None) -> None:
    """A page of files (a table with a ``file`` column) with thumbnails; a click anywhere on a
    row opens that file in the detail view. ``labels`` renames columns for display."""
    if table.empty:
        st.success("None.")
        return
    pages = tables.page_count(len(table), PAGE_SIZE)
    page = st.number_input(f"Page (of {pages:,}; {len(table):,} images)", 1, pages, 1, key=f"{key}-page") if pages > 1 else 1
    shown = with_thumbnails(tables.page_of(table, page, PAGE_SIZE), root, side=ROW_HEIGHT - 4)
    columns = [c for c in ("thumbnail", "file", "true", "predicted", "confidence", "pred_a", "pred_b", "direction") if c in shown]
    config = {"confidence": panels.percent_column()}
    clicked = panels.clicked_file(shown, columns, f"{key}-{page}", ROW_HEIGHT, {**config, **(labels or {})})
    st.caption(caption)
    if clicked:
        state.select_file(clicked, scope="training")


st.title("Training")

trainings = None
with errors_shown():
    trainings = store.run_store().list_trainings()
if trainings is None:
    st.stop()
if not trainings:
    st.info("No training recorded yet. Record one while training, or from saved checkpoints, into the same run store:")
    st.code(RECORD_EXAMPLE, language="python", wrap_lines=True)
    st.stop()

names = {t.id: f"#{t.id} {t.name} · {t.n_epochs} epoch(s) · {t.status} · {tables.when(t.created_at)}" for t in trainings}
raw = st.query_params.get(links.TRAINING)
linked = state.parse_id(raw)
if raw is not None and linked not in names:
    st.warning(
        f"This link names training {md(repr(raw))}, which is not in this server's history: it was deleted, "
        "or the link was made on another server. The trainings stored here are listed below.",
        icon=":material/link_off:",
    )
ids = list(names)
training_id = st.selectbox("Training", ids, index=ids.index(linked) if linked in ids else 0, format_func=names.get, key="training")
if linked != training_id:  # another training than the address names: its epoch and file do not apply
    st.query_params.pop(links.EPOCH, None)
    st.query_params.pop(links.FILE, None)
st.query_params[links.TRAINING] = str(training_id)

history = None
with errors_shown():
    history = store.training_history(training_id)
if history is None:
    st.stop()
if not len(history):
    st.info("This training has no recorded epoch yet.")
    st.stop()
numbers = history.epochs
root = history.last.run.info.images

collapsed = history.collapsed_epochs()
if collapsed:
    st.warning(
        f"**Predictions collapse onto one class at epoch {', '.join(map(str, collapsed))}.** "
        "The model predicts nearly one class for everything there; see that epoch below for the reason.",
        icon=":material/warning:",
    )

st.header("Over the epochs")
curves = history.curves()
accuracy_col, loss_col = st.columns(2)
with accuracy_col:
    st.altair_chart(charts.accuracy_with_band(curves[curves["kind"] == "accuracy"], history.accuracy_band()), width="stretch")
    st.caption("The shaded band is the evaluated accuracy's 95% interval: two epochs whose bands overlap a lot may not really differ.")
with loss_col:
    loss = curves[curves["kind"] == "loss"]
    if loss.empty:
        st.info("No loss recorded (checkpoints evaluated after training carry no Keras logs).")
    else:
        st.altair_chart(charts.epoch_lines(loss, "Loss"), width="stretch")
best = history.best_epoch()
if best is not None:
    (st.success if best.distinguishable else st.info)(best.sentence(), icon=":material/trophy:")
st.altair_chart(charts.recall_heatmap(history.recall_by_epoch(), history.last.run.class_names), width="stretch")
st.dataframe(
    history.epoch_table(),
    hide_index=True,
    column_config={
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "top5": st.column_config.NumberColumn("top-5", format="percent"),
        "collapsed": st.column_config.CheckboxColumn("collapsed"),
    },
)

st.header("One epoch")
linked_epoch = state.parse_id(st.query_params.get(links.EPOCH))
epoch = st.select_slider(
    "Epoch", options=numbers, value=linked_epoch if linked_epoch in numbers else numbers[-1], key=f"epoch-{training_id}"
)
st.query_params[links.EPOCH] = str(epoch)
run = history.at(epoch).run
links.copy_link(links.page_url("training", **{links.TRAINING: training_id, links.EPOCH: epoch}), key="training-link")
st.markdown(f"Epoch **{epoch}**: accuracy **{run.accuracy:.1%}** on {run.n_images:,} images" if run.accuracy is not None else f"Epoch **{epoch}**")
panels.run_warnings(run)
matrix_col, cell_col = st.columns([3, 2])
with matrix_col:
    cell = panels.clicked_confusion_cell(run, key=f"epoch_confusion-{training_id}")
with cell_col:
    if cell is None:
        st.info("Click a cell of the matrix to see the images in it.")
    else:
        true_name, pred_name = cell
        files = run.cell_files(true_name, pred_name)
        st.text(f"Epoch {epoch}: true {true_name}, predicted {pred_name}: {len(files):,} images")
        _clickable_files(files, root, f"epoch_cell-{training_id}-{epoch}-{true_name}-{pred_name}", "Click a row to follow the image across the epochs below.")

st.header("Images across the epochs")
listing, detail = st.columns([3, 2], gap="large")
with listing:
    flips_tab, never_tab = st.tabs(["Flipped between two epochs", "Never predicted right"])
    with flips_tab:
        first_col, second_col = st.columns(2)
        first = first_col.selectbox("From epoch", numbers, index=0, key=f"flip_from-{training_id}")
        second = second_col.selectbox("To epoch", numbers, index=len(numbers) - 1, key=f"flip_to-{training_id}")
        if first == second:
            st.info("Choose two different epochs.")
        else:
            with errors_shown():
                comparison = store.comparison(history.at(first).run_id, history.at(second).run_id)
                st.caption(
                    f"{len(comparison.flips_in('right-to-wrong')):,} right → wrong and "
                    f"{len(comparison.flips_in('wrong-to-right')):,} wrong → right from epoch {first} to {second}."
                )
                _clickable_files(
                    comparison.flips_table(),
                    root,
                    f"epoch_flips-{training_id}-{first}-{second}",
                    "Click a row to follow the image across the epochs.",
                    labels={"pred_a": f"epoch {first}", "pred_b": f"epoch {second}"},
                )
    with never_tab:
        _clickable_files(history.never_right(), root, f"never_right-{training_id}", f"Wrong at every one of the {len(history)} epochs; the prediction shown is the last epoch's.")

with detail:
    rel = state.selected_file(run, scope="training")
    if rel is None:
        st.info("Click an image in a table (any cell of its row) to see it large with its probabilities at each epoch.")
    else:
        link = links.page_url("training", **{links.TRAINING: training_id, links.EPOCH: epoch, links.FILE: rel})
        panels.large_image(run, rel, link, key="training-image")
        by_epoch = history.file_by_epoch(rel)
        st.altair_chart(charts.file_probability_lines(history.file_probabilities(rel)), width="stretch")
        st.dataframe(
            by_epoch,
            hide_index=True,
            column_config={
                "confidence": panels.percent_column(),
                "p_true": panels.percent_column("P(true class)", help="The model's probability for the true class."),
            },
        )
        panels.prediction(run, run.file_position(rel), who=f"Epoch {epoch}")

"""Compare: two stored runs on the files both evaluated: accuracy, per-class deltas, the
confusion difference, and every image that flipped between right and wrong (click any cell of
its row to see it with both runs' predictions). The address names both runs and the open image
(``?a=1&b=2&file=...``)."""

from __future__ import annotations

import streamlit as st

from gtpred_core import GtpredError

from gtpred_app.ui import charts, links, panels, state, store, tables
from gtpred_app.ui.errors import errors_shown
from gtpred_app.ui.images import with_thumbnails
from gtpred_app.ui.text import md

PAGE_SIZE = 25
ROW_HEIGHT = 44
DIRECTIONS = {"all": "All flips", "right-to-wrong": "Right → wrong", "wrong-to-right": "Wrong → right"}


def _percent(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "n/a"


def _points(ece: float | None) -> str:
    """A calibration error (0..1) as the Calibration page writes it: "3.2 points"."""
    return f"{100 * ece:.1f} points" if ece is not None else "n/a"


st.title("Compare two runs")
st.write(
    "Run B against run A, file by file and class by class (classes are matched by name, so runs "
    "in different class orders compare correctly). Every difference is B minus A."
)

stored = None
with errors_shown():
    stored = [r for r in store.run_store().list() if store.openable(r)]
if stored is None:
    st.stop()


def _label(row) -> str:
    return f"#{row.id} {row.name} · {_percent(row.accuracy)} · {tables.when(row.created_at)}"


labels = {r.id: _label(r) for r in stored}


def _linked(param: str) -> int | None:
    """The run the address names for ``param`` (a or b), after saying why one cannot be shown."""
    raw = st.query_params.get(param)
    run_id = state.parse_id(raw)
    if raw is None or run_id in labels:
        return run_id
    if run_id is None:
        st.warning(f"This link names no stored run ({param}={md(repr(raw))} is not a run number).", icon=":material/link_off:")
        return None
    try:
        row = store.run_store().get(run_id)
    except GtpredError as err:
        state.explain_missing_run(run_id, err)
        st.stop()
    if store.openable(row):  # e.g. a training's epoch: not listed above, comparable all the same
        labels[run_id] = _label(row)
        return run_id
    st.warning(f"Run #{run_id} is {row.status}: it has no complete results to compare.", icon=":material/warning:")
    return None


linked_a, linked_b = _linked(links.RUN_A), _linked(links.RUN_B)
ids = list(labels)
if len(ids) < 2:
    st.info(
        "Comparing needs two stored runs: on Evaluate, turn on “Compare with a second model on the "
        "same images” to evaluate two models in one pass, or evaluate a model twice (say before and "
        "after a change)."
    )
    st.page_link(links.screen("evaluate"), label="Go to Evaluate", icon=":material/play_arrow:")
    st.stop()
pick_a, pick_b = st.columns(2)
a = pick_a.selectbox("Run A (before)", ids, index=ids.index(linked_a) if linked_a in ids else 1, format_func=labels.get, key="compare_a")
b = pick_b.selectbox("Run B (after)", ids, index=ids.index(linked_b) if linked_b in ids else 0, format_func=labels.get, key="compare_b")
st.query_params[links.RUN_A], st.query_params[links.RUN_B] = str(a), str(b)
if a == b:
    st.info("Choose two different runs.")
    st.stop()
links.copy_link(links.page_url("compare", **{links.RUN_A: a, links.RUN_B: b}), key="compare-link")

comparison = run_a = run_b = None
with errors_shown():
    comparison = store.comparison(a, b)
    run_a, run_b = store.loaded_run(a), store.loaded_run(b)
if comparison is None:
    st.stop()

if comparison.same_images:
    st.caption(f"Both runs evaluated the same {comparison.n_common:,} images.")
else:
    st.warning(
        f"**The two runs were not made on the same images.** They are compared on the "
        f"**{comparison.n_common:,} files both evaluated**; {comparison.only_in_a:,} file(s) only in "
        f"A and {comparison.only_in_b:,} only in B are left out of every number below.",
        icon=":material/warning:",
    )

verdict = comparison.verdict()
(st.success if verdict.significant else st.info)(f"**{verdict.headline()}**", icon=":material/balance:")
st.markdown(verdict.sentence(emphasis="**"))
st.caption(
    "McNemar's test looks only at the images one run gets right and the other wrong, and asks whether "
    "that split is further from even than chance would make it; below 0.05 the difference is called "
    "significant. The interval is the range the accuracy difference very likely lies in."
)

acc_a, acc_b, n_flips = st.columns(3)
acc_a.metric("Accuracy A", _percent(comparison.metrics_a.accuracy))
delta = comparison.accuracy_delta
acc_b.metric("Accuracy B", _percent(comparison.metrics_b.accuracy), delta=f"{delta:+.1%}" if delta is not None else None)
n_flips.metric(
    "Flipped images",
    f"{len(comparison.flips):,}",
    help=f"{len(comparison.flips_in('right-to-wrong')):,} right → wrong, "
    f"{len(comparison.flips_in('wrong-to-right')):,} wrong → right",
)

st.header("Calibration and suspect labels")
cal_a, cal_b, common = st.columns(3)
cal_a.metric("Calibration error A (ECE)", _points(comparison.ece_a))
ece_delta = comparison.ece_delta
cal_b.metric(
    "Calibration error B (ECE)",
    _points(comparison.ece_b),
    delta=f"{100 * ece_delta:+.1f} points" if ece_delta is not None else None,
    delta_color="inverse",
    help="How far confidence is from how often the model is right, on the common files: lower is better.",
)
if comparison.suspects_in_common is None:
    common.metric("Suspect labels in both", "n/a", help="A run's class order looks wrong: its suspect labels wait for the right order.")
else:
    common.metric(
        "Suspect labels in both",
        f"{len(comparison.suspects_in_common):,}",
        help=f"Files whose label both models doubt ({comparison.n_suspects_a:,} suspects in A, "
        f"{comparison.n_suspects_b:,} in B): the first to review.",
    )
    if comparison.suspects_in_common:
        st.caption("Suspect in both runs (review candidates, not proof):")
        st.dataframe({"file": list(comparison.suspects_in_common)}, hide_index=True, height=min(300, 35 * len(comparison.suspects_in_common) + 38))

st.header("Per class")
st.dataframe(
    comparison.per_class_table(),
    hide_index=True,
    column_config={
        "recall_a": st.column_config.NumberColumn("recall A", format="percent"),
        "recall_b": st.column_config.NumberColumn("recall B", format="percent"),
        "recall_delta": st.column_config.NumberColumn("recall B − A", format="%+.3f"),
        "precision_delta": st.column_config.NumberColumn("precision B − A", format="%+.3f"),
        "f1_delta": st.column_config.NumberColumn("F1 B − A", format="%+.3f"),
        "b": st.column_config.NumberColumn("only A right", help="Images of this class only run A gets right (McNemar's b)."),
        "c": st.column_config.NumberColumn("only B right", help="Images of this class only run B gets right (McNemar's c)."),
        "p_value": st.column_config.NumberColumn(
            "McNemar p",
            format="%.3f",
            help="Could this class's change in recall be chance? Below 0.05: probably not. With many "
            "classes, a few fall below 0.05 by chance alone.",
        ),
    },
)

st.header("Confusion matrix difference")
st.caption("Images per cell in B minus A; rows are the true class, columns the predicted class. Blue: more in B, red: fewer.")
with panels.matrix_frame(comparison.class_names):
    st.altair_chart(
        charts.confusion_delta_heatmap(comparison.confusion_delta_cells(), comparison.class_names),
        width="content",
    )

st.header("Flipped images")
direction = st.segmented_control(
    "Show", list(DIRECTIONS), format_func=DIRECTIONS.get, default="all", key="flip_direction"
) or "all"
flips = comparison.flips_table(None if direction == "all" else direction)
listing, detail = st.columns([3, 2], gap="large")
with listing:
    if flips.empty:
        st.success("No image flipped" + ("." if direction == "all" else " this way."))
    else:
        pages = tables.page_count(len(flips), PAGE_SIZE)
        page = st.number_input(f"Page (of {pages:,}; {len(flips):,} images)", 1, pages, 1, key=f"flip_page-{a}-{b}-{direction}") if pages > 1 else 1
        shown = with_thumbnails(tables.page_of(flips, page, PAGE_SIZE), run_a.info.images, side=ROW_HEIGHT - 4)
        key = f"flips-{a}-{b}-{direction}-{page}"
        clicked = panels.clicked_file(
            shown,
            ["thumbnail", "file", "true", "pred_a", "confidence_a", "pred_b", "confidence_b"],
            key,
            ROW_HEIGHT,
            {
                "pred_a": "predicted by A",
                "confidence_a": panels.percent_column("A's confidence"),
                "pred_b": "predicted by B",
                "confidence_b": panels.percent_column("B's confidence"),
            },
        )
        if clicked:
            state.select_file(clicked, scope="compare")

with detail:
    rel = state.selected_file(run_a, scope="compare")
    index_a = run_a.file_position(rel) if rel else None
    index_b = run_b.file_position(rel) if rel else None
    if index_a is None or index_b is None:
        st.info("Click a row (any cell) to see the image large with both runs' predictions.")
    else:
        # The file lies under A's images root; B's when A's folder has gone.
        link = links.page_url("compare", **{links.RUN_A: a, links.RUN_B: b, links.FILE: rel})
        panels.large_image(run_a if run_a.image_path(rel).exists() else run_b, rel, link, key="compare-image")
        left, right = st.columns(2)
        with left:
            panels.prediction(run_a, index_a, who="Run A")
        with right:
            panels.prediction(run_b, index_b, who="Run B")

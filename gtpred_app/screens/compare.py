"""Compare: two stored runs on the files both evaluated: accuracy, per-class deltas, the
confusion difference, and every image that flipped between right and wrong (click one to see it
with both runs' predictions)."""

from __future__ import annotations

import streamlit as st

from gtpred_core import views

from gtpred_app.ui import charts, links, panels, store
from gtpred_app.ui.errors import errors_shown

PAGE_SIZE = 25
ROW_HEIGHT = 44
DIRECTIONS = {"all": "All flips", "right-to-wrong": "Right → wrong", "wrong-to-right": "Wrong → right"}


def _percent(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "n/a"


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
if len(stored) < 2:
    st.info("Comparing needs two stored runs: evaluate a model twice (say before and after a change), or open the History.")
    st.page_link(links.screen("evaluate"), label="Go to Evaluate", icon=":material/play_arrow:")
    st.stop()

labels = {r.id: f"#{r.id} {r.name} · {_percent(r.accuracy)} · {r.created_at[:16].replace('T', ' ')}" for r in stored}
ids = list(labels)
pick_a, pick_b = st.columns(2)
a = pick_a.selectbox("Run A (before)", ids, index=1, format_func=labels.get, key="compare_a")
b = pick_b.selectbox("Run B (after)", ids, index=0, format_func=labels.get, key="compare_b")
if a == b:
    st.info("Choose two different runs.")
    st.stop()

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

st.header("Per class")
st.dataframe(
    views.comparison_per_class(comparison),
    hide_index=True,
    column_config={
        "recall_a": st.column_config.NumberColumn("recall A", format="percent"),
        "recall_b": st.column_config.NumberColumn("recall B", format="percent"),
        "recall_delta": st.column_config.NumberColumn("recall B − A", format="%+.3f"),
        "precision_delta": st.column_config.NumberColumn("precision B − A", format="%+.3f"),
        "f1_delta": st.column_config.NumberColumn("F1 B − A", format="%+.3f"),
    },
)

st.header("Confusion matrix difference")
st.caption("Images per cell in B minus A; rows are the true class, columns the predicted class. Blue: more in B, red: fewer.")
st.altair_chart(
    charts.confusion_delta_heatmap(views.confusion_delta_cells(comparison), comparison.class_names),
    width="content",
)

st.header("Flipped images")
direction = st.segmented_control(
    "Show", list(DIRECTIONS), format_func=DIRECTIONS.get, default="all", key="flip_direction"
) or "all"
flips = views.flips_table(comparison, None if direction == "all" else direction)
listing, detail = st.columns([3, 2], gap="large")
with listing:
    if flips.empty:
        st.success("No image flipped" + ("." if direction == "all" else " this way."))
    else:
        pages = views.page_count(len(flips), PAGE_SIZE)
        page = st.number_input(f"Page (of {pages:,}; {len(flips):,} images)", 1, pages, 1, key=f"flip_page-{a}-{b}-{direction}") if pages > 1 else 1
        shown = views.with_thumbnails(views.page_of(flips, page, PAGE_SIZE), run_a.info.images, side=ROW_HEIGHT - 4)
        key = f"flips-{a}-{b}-{direction}-{page}"
        clicked = panels.clicked_file(
            shown,
            ["thumbnail", "file", "true", "pred_a", "confidence_a", "pred_b", "confidence_b"],
            key,
            ROW_HEIGHT,
            {
                "pred_a": "predicted by A",
                "confidence_a": st.column_config.ProgressColumn("A's confidence", format="percent", min_value=0, max_value=1),
                "pred_b": "predicted by B",
                "confidence_b": st.column_config.ProgressColumn("B's confidence", format="percent", min_value=0, max_value=1),
            },
        )
        if clicked:
            st.session_state["compare_file"] = (a, b, clicked)

with detail:
    chosen = st.session_state.get("compare_file")
    rel = chosen[2] if chosen and chosen[:2] == (a, b) else None
    index_a = views.file_position(run_a, rel) if rel else None
    index_b = views.file_position(run_b, rel) if rel else None
    if index_a is None or index_b is None:
        st.info("Click a row to see the image large with both runs' predictions.")
    else:
        # The file lies under A's images root; B's when A's folder has gone.
        panels.large_image(run_a if views.image_path(run_a, rel).exists() else run_b, rel)
        left, right = st.columns(2)
        with left:
            panels.prediction(run_a, index_a, who="Run A")
        with right:
            panels.prediction(run_b, index_b, who="Run B")

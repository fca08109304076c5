"""Evaluate: choose a model, images, class order and preprocessing; check what was found; run."""

from __future__ import annotations

import streamlit as st

from gtpred_core import PREPROCESS_MODES, check_model_fits, resolve_class_order
from gtpred_core.class_order import class_mapping_table
from gtpred_core.sources.audit import AUDIT_EXAMPLE, FindingKind
from gtpred_core.demo import DEMO_MODEL, demo_folder
from gtpred_core.evaluation import BACKENDS
from gtpred_core.preprocessing import check_preprocess

from gtpred_app.ui import running, sources, state
from gtpred_app.ui.errors import errors_shown
from gtpred_app.ui.text import md

st.title("Evaluate an image classifier")
st.write(
    "Check a Keras model on a folder of labelled images laid out one sub-folder per class, "
    "exactly as Keras reads it: accuracy, per-class numbers, the confusion matrix, and every "
    "misprediction with its image."
)

with st.container(border=True):
    st.markdown(
        "**New here? Try the demo.** A small digit classifier shipped with gtpred, evaluated on "
        "797 digit images. It shows the class-order trap (Keras sorts `Class_10` before "
        "`Class_2`) and its one-click fix."
    )
    if st.button("Run the demo", type="primary", icon=":material/rocket_launch:", key="run_demo", disabled=running.is_busy()):
        with st.spinner("Preparing the demo images and model…"):
            demo_model = state.cached_model(DEMO_MODEL)
            demo_images = state.indexed_folder(str(demo_folder()))
        state.start_evaluation(demo_model, demo_images, "keras", preprocess="none", batch_size=32, label="the demo", origin="demo")
demo_progress = st.container()  # drawn last (below): the rest of the page is fresh while a run goes



def chosen_model(second: bool = False):
    """The model chosen in this chooser, read by the worker and described; None until then."""
    path = sources.choose_model(second)
    if path is None:
        return None
    with errors_shown():
        facts = state.cached_model(path)
        height, width = facts.input_size
        st.markdown(
            f"**{md(facts.name)}** takes {height or 'any'} × {width or 'any'} pixel images with "
            f"{facts.channels} channel(s) and outputs **{facts.output_width}** values per image "
            f"(rescales its own pixels: {({True: 'yes', False: 'no'}).get(facts.rescales_itself, 'unknown')})."
        )
        return facts
    return None


st.header("1. Model")
model = chosen_model()
second_model = None
two_models = st.toggle(
    "Compare with a second model on the same images",
    key="two_models",
    help="Both models are evaluated in one pass (each image is read and decoded once), and Compare "
    "opens with the two runs: which images each gets wrong, class by class.",
)
if two_models:
    second_model = chosen_model(second=True)

st.header("2. Images")
folder = None
by_csv = sources.labelled_by_csv()
labels_csv = sources.choose_labels_csv() if by_csv else None
images_path = None if by_csv else sources.choose_images()
if images_path is not None:
    with errors_shown():
        folder = state.indexed_folder(str(images_path))
        st.markdown(f"**{len(folder.files):,} images in {len(folder.class_names)} classes** in {md(images_path.name)}")
        if folder.ignored:
            with st.expander(f"{len(folder.ignored):,} files are not images and will be ignored"):
                st.code("\n".join(folder.ignored[:200]) + ("\n…" if len(folder.ignored) > 200 else ""), wrap_lines=True)
        for name in folder.empty_classes:
            st.warning(f"The class folder '{md(name)}' holds no images; it stays a class, as in Keras.")
if labels_csv is not None:
    with errors_shown():
        folder = sources.labels_csv_folder(labels_csv)

st.header("3. Class order and preprocessing")
order_spec = sources.choose_class_order()
preprocess = st.radio(
    "Preprocessing",
    list(PREPROCESS_MODES),
    captions=list(PREPROCESS_MODES.values()),
    key="preprocess",
)
batch_size = st.number_input("Batch size", min_value=1, max_value=1024, value=32, step=8, key="batch_size")
backend = st.radio(
    "Where inference runs",
    list(BACKENDS),
    captions=list(BACKENDS.values()),
    key="backend",
    horizontal=True,
)

st.header("4. Check and run")
ready = False
if folder is None or model is None or order_spec is None:
    st.info("Choose a model, the images and the class order above; the checks show here.")
else:
    with errors_shown():
        folder = sources.labels_csv_folder(labels_csv, order_spec) if labels_csv is not None else folder
        order = resolve_class_order(order_spec, folder.class_names, folder.counts)
        mapping = class_mapping_table(folder.class_names, folder.counts, order.names)
        st.dataframe(
            mapping[["class", "images", "in_use_index"]],
            hide_index=True,
            height=min(400, 35 * (len(mapping) + 1) + 3),
            column_config={"in_use_index": st.column_config.NumberColumn(f"output index ({order.source} order)")},
        )
        for chosen in (model, second_model):
            if chosen is not None:
                check_model_fits(chosen, len(order.names))
                check_preprocess(preprocess, chosen.channels)
        if not two_models:
            ready = True
        elif second_model is None:
            st.info("Choose the second model above, or turn off the comparison.")
        elif backend != "local":
            st.info("Two models are evaluated together on this server: choose “local” under where inference runs.")
        else:
            ready = True

run_label = "Run both and compare" if two_models else "Run"
if st.button(run_label, type="primary", icon=":material/play_arrow:", disabled=not ready or running.is_busy(), key="run"):
    state.start_evaluation(
        model, folder, order, preprocess=preprocess, batch_size=int(batch_size), backend=backend,
        label=folder.source or images_path.name, origin="form", second_model=second_model if two_models else None,
    )
form_progress = st.container()

with st.expander("Checking your own data pipeline", icon=":material/checklist:"):
    st.markdown(
        "gtpred reads the folder itself, in a fixed order. When you compute predictions with your "
        "own pipeline (a `tf.data` dataset, `flow_from_directory`, a `PyDataset`, a generator), "
        "`audit_data_source` checks what it will really feed `predict`/`evaluate`, so every "
        "prediction is paired with its own file and label:"
    )
    st.code(AUDIT_EXAMPLE, language="python", wrap_lines=True)
    st.markdown("What it reports, and the fix for each:")
    st.markdown("\n".join(f"- **`{kind.code}`**: {kind.problem} *Fix:* {kind.fix}" for kind in FindingKind))

# Last: following a run keeps this script in a polling loop, and what a script has not drawn yet
# stays greyed out from the previous rerun until it ends. So the whole page is drawn first.
running.show_job({"demo": demo_progress, "form": form_progress})

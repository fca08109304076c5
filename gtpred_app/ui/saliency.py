"""Why a misprediction: its saliency maps for the predicted and the true class, side by side.

The maps are computed on click in the session's inference worker (the model stays warm there)
and kept in the session per (model file, image), so moving the opacity slider reruns nothing
but the blend. The overlay itself is ``gtpred_core.explain.overlay``: this module only lays out.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gtpred_core import Run
from gtpred_core.explain import overlay
from gtpred_core.worker import Explain, Explained

from . import state
from .errors import errors_shown
from .images import enlarged_image

#: Maps kept per session (each is 2 x H x W floats at the model's input size).
KEPT_EXPLANATIONS = 32


def explain_in_worker(message: Explain) -> Explained:
    """The one call into the workers for saliency: the shared pool answers it like a describe,
    never behind somebody's run."""
    return state.session_worker().explain(message)


def explained(run: Run, rel: str) -> Explained:
    """File ``rel``'s maps (predicted class, then true class), computed once per session."""
    message = Explain.for_file(run, rel)
    model = Path(message.model)
    version = model.stat().st_mtime_ns if model.is_file() else 0
    key = (str(model), version, str(message.image), message.targets, message.preprocess)
    kept: dict = st.session_state.setdefault("saliency_maps", {})
    if key not in kept:
        with st.spinner("Finding where the model looked…"):
            kept[key] = explain_in_worker(message)
        while len(kept) > KEPT_EXPLANATIONS:
            kept.pop(next(iter(kept)))
    return kept[key]


def saliency_pair(run: Run, rel: str, key: str = "saliency") -> None:
    """The image under its maps for the predicted and the true class, with an opacity slider."""
    index = run.file_position(rel)
    if index is None:
        return
    st.subheader("Where the model looked")
    if not Path(run.info.model).exists():
        st.info("This run's model file is no longer on the server, so where it looked cannot be shown.")
        return
    with errors_shown():
        maps = explained(run, rel)
        opacity = st.slider("Map opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}-opacity")
        image = enlarged_image(run.image_path(rel), 256)
        names = [run.class_names[t] for t in maps.targets]
        for column, heat, title, name in zip(st.columns(2), maps.maps, ("Predicted", "True"), names):
            column.image(overlay(image, heat, opacity), width="stretch")
            column.text(f"{title}: {name}")  # a class name is text, never Markdown
        method = "Grad-CAM" if maps.method == "grad-cam" else "occlusion (a SavedModel has no layers to read)"
        st.caption(f"Red: the evidence the model used for that class ({method}, {maps.seconds:.1f} s).")

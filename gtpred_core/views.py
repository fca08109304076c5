"""Nothing page-specific lives here any more: a run's tables are ``Run`` methods, a comparison's
are ``RunComparison`` methods, a training's are ``TrainingHistory`` methods, and presentation
(thumbnails, dates, paging) is in ``gtpred_app/ui``.

``find_model_files`` (now in ``gtpred_core.model``) is re-exported until the Evaluate page's
source chooser imports it from there; then this module goes.
"""

from .model import find_model_files

__all__ = ["find_model_files"]

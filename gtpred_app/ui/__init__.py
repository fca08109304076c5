"""Helpers shared by the pages: the current run and its links, cached loading, errors, charts,
and presentation (thumbnails, dates, paging).

The only place besides the page scripts that imports streamlit (``images`` and ``tables`` do not,
so they are tested without a session). Nothing here computes numbers about a run: that is
``Run``, ``RunComparison`` and ``TrainingHistory`` in the core.
"""

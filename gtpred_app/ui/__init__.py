"""Streamlit-only helpers shared by the pages: the current run, cached loading, errors, charts.

The only place besides the page scripts that imports streamlit. Nothing here computes numbers
about a run: that is ``gtpred_core.views``.
"""

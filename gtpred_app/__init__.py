"""gtpred's Streamlit app: ``navigation.main()`` routes to one script per screen in ``screens/``.

The screens live in ``screens/``, not in a folder named ``pages/``: Streamlit lists a ``pages/``
folder next to the entry script by itself (its first multipage API) until ``st.navigation`` has
run once, so on a freshly started server a page URL opened first was served from that automatic
listing, without the entry script's set-up (measured: lowercase names, an "app" entry, narrow
layout). With no ``pages/`` folder, every request runs the entry script first.
"""

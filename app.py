"""gtpred's web app from a checkout: ``streamlit run app.py``. An installed copy runs the same
``main()`` through ``gtpred app``. The screens are in ``gtpred_app/screens/``."""

from gtpred_app.navigation import main

main()

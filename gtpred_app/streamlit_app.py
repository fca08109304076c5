"""gtpred's web app from an installed copy (``gtpred app`` runs this file): the same ``main()`` as
the checkout's ``app.py``."""

from gtpred_app.navigation import main

main()

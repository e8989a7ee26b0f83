"""WSGI entry point for gunicorn: ``gunicorn webapp.wsgi:app``."""

import gc

from webapp import create_app

app = create_app()
# What is built by now (modules, the app, its settings and catalogs) lives as long as the
# worker: freeze it out of the collector's passes, so that a full collection during a
# request walks only what requests made (a shorter pause in the latency's tail).
gc.freeze()

"""Celery entry point: ``celery -A webapp.worker worker`` (what ``cardtrace worker`` runs)."""

from webapp import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

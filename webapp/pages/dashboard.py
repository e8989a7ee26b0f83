"""Pages: dashboard (see :mod:`webapp.pages`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_dashboard", __name__)

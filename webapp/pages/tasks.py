"""Pages: tasks (see :mod:`webapp.pages`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_tasks", __name__)

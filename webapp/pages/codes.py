"""Pages: codes (see :mod:`webapp.pages`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_codes", __name__)

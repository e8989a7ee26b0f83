"""Pages: merchant (see :mod:`webapp.pages`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_merchant", __name__)

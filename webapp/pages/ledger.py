"""Pages: ledger (see :mod:`webapp.pages`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_ledger", __name__)

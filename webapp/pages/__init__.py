"""The back office's pages: server-rendered views over the domain services.

Each module holds one blueprint; the views parse a form, call one service, and render.
They hold no domain logic: the same services answer the JSON API and the CLI.

==============  =======================================  ===============================
module          pages                                    roles
==============  =======================================  ===============================
dashboard       ``/dashboard``                           every staff role
applications    ``/applications``... (officers' review)  reviewer, approver, analyst,
                                                         auditor (read-only)
merchant        ``/merchant``... (the merchant's own)    merchant
codes           ``/codes`` (code lookup)                 merchant and staff but the
                                                         administrator
alerts          ``/alerts``...                           analyst; reviewer, approver,
                                                         auditor read-only
ledger          ``/ledger``... (the ledger explorer)     every staff role
rules           ``/rules``... (real-time risk rules)     analyst, approver; auditor
                                                         read-only
tasks           ``/tasks/<id>`` (progress of long work)  whoever started the task
imports         ``/imports``... (CSV imports of codes)   administrator
==============  =======================================  ===============================
"""

from __future__ import annotations

from importlib import import_module

from flask import Blueprint, Flask

from webapp.accounts.web import AccountsState
from webapp.pages.common import navigation

MODULES = (
    "dashboard",
    "applications",
    "merchant",
    "codes",
    "alerts",
    "ledger",
    "rules",
    "tasks",
    "imports",
)


def init_pages(app: Flask) -> None:
    """Register every page blueprint; their unsafe requests are CSRF-checked forms."""
    accounts: AccountsState = app.extensions["cardtrace.accounts"]
    for name in MODULES:
        bp: Blueprint = import_module(f"webapp.pages.{name}").bp
        app.register_blueprint(bp)
        accounts.form_blueprints.add(bp.name)
    app.jinja_env.globals["navigation"] = navigation

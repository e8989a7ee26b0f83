"""Pages: CSV imports of issuance, transfers and sales, run as tasks (administrator only).

``/imports`` takes a CSV file and what it holds (issuance, with an optional expiry date;
transfers; sales), checks it before anything runs (size, UTF-8 text, the header's
columns), stores it under ``<instance>/imports`` by a random id and starts a
``code-import`` run; the run's progress shows on ``/tasks/<id>``, its report (the counts
and batches, or every bad line by number, nothing imported) on ``/imports/<id>``. The
stored file is deleted when the run ends. Every entry is signed by the platform on its
party's behalf: the page never takes a private key.

The file holds raw PINs: they are read by the import only, never shown, logged or stored
in the database (the import's reasons name a bad line's column, never its values).
"""

from __future__ import annotations

import codecs
import csv
import secrets
from datetime import date
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename

from provenance.errors import NotFoundError
from provenance.imports import COLUMNS, ImportFailedError, check_columns
from webapp.accounts.roles import Role
from webapp.accounts.web import current_session, login_required
from webapp.pages.common import current_user, page
from webapp.pages.tasks import STATE_LABELS, launch, show_progress, status_json
from webapp.runtime import db_session
from webapp.task_runs import (
    RunKind,
    RunState,
    TaskRun,
    get_run,
    import_upload_path,
    import_uploads,
    runs_of,
)

bp = Blueprint("pages_imports", __name__)

# The largest file accepted (app config ``IMPORT_MAX_BYTES`` overrides it).
MAX_IMPORT_BYTES = 50 * 1024 * 1024
# Room for the form's other fields and the multipart boundaries around the file.
_FORM_OVERHEAD = 64 * 1024
_CHUNK = 1 << 20
_MAX_NAME = 100

KIND_CHOICES = (
    ("issuance", _l("Issuance (batch, product, serial, pin)")),
    ("transfers", _l("Transfers (from, to, and the code)")),
    ("sales", _l("Sales (merchant, buyer, amount, currency, and the code)")),
)


class UploadRefusedError(Exception):
    """An upload refused before anything runs: the message for the page, the field, the
    HTTP status."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def max_import_bytes() -> int:
    return int(current_app.config.get("IMPORT_MAX_BYTES", MAX_IMPORT_BYTES))


def _size_label(size: int) -> str:
    """A limit as people read it: "50 MB", "1 KB"."""
    if size >= 1024 * 1024:
        return f"{format_decimal(size / (1024 * 1024), format='#,##0.#')} MB"
    return f"{format_decimal(max(size // 1024, 1), format='#,##0')} KB"


@bp.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before the app's before-request hooks, whose CSRF check reads the form: the
    # import's own limit replaces the app-wide one for the upload only.
    if endpoint == "pages_imports.start_import":
        request.max_content_length = max_import_bytes() + _FORM_OVERHEAD


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    live = current_session()
    if live is None or Role(live.user.role) is not Role.ADMINISTRATOR:
        return error.get_response()
    message = _(
        "The file is larger than the limit of %(size)s.", size=_size_label(max_import_bytes())
    )
    return _form(413, {}, message, "file")


def _form(
    status: int = 200,
    form: dict[str, str] | None = None,
    error: str | None = None,
    field: str | None = None,
) -> Response:
    runs = runs_of(db_session(), current_user().username, RunKind.IMPORT)
    return page(
        "pages/imports/form.html",
        status=status,
        form=form or {"kind": "issuance"},
        error=error,
        field=field,
        kinds=KIND_CHOICES,
        max_size=_size_label(max_import_bytes()),
        runs=[(run, status_json(run), run.parameters()) for run in runs],
    )


@bp.get("/imports")
@login_required(Role.ADMINISTRATOR)
def imports() -> Response:
    return _form()


def _expiry(form: dict[str, str]) -> str | None:
    """The issuance's expiry date (YYYY-MM-DD), if given."""
    if not form["expires"]:
        return None
    if form["kind"] != "issuance":
        raise UploadRefusedError(_("An expiry date applies to issuance only; clear it."), "expires")
    try:
        return date.fromisoformat(form["expires"]).isoformat()
    except ValueError:
        raise UploadRefusedError(_("The expiry date: a date as YYYY-MM-DD."), "expires") from None


def _store(stream: IO[bytes], target: Path, limit: int) -> int:
    """Copy the upload to ``target``, checking it is UTF-8 text within ``limit`` bytes.

    Raises:
        UploadRefusedError: too large, empty, or not text (the partial copy is removed).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    try:
        with target.open("xb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadRefusedError(
                        _(
                            "The file is larger than the limit of %(size)s.",
                            size=_size_label(limit),
                        ),
                        "file",
                        413,
                    )
                # A NUL never occurs in CSV text; UTF-16 files and binaries are full of them.
                if b"\0" in chunk:
                    raise UnicodeError("NUL byte")
                decoder.decode(chunk)
                out.write(chunk)
            decoder.decode(b"", final=True)
        if size == 0:
            raise UploadRefusedError(_("The file is empty."), "file")
    except UnicodeError:
        target.unlink(missing_ok=True)
        raise UploadRefusedError(
            _(
                "The file is not CSV text: it holds bytes that are not UTF-8 text (a "
                "spreadsheet, an image or an archive renamed .csv?). Save it as CSV, UTF-8."
            ),
            "file",
        ) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size


def _check_header(path: Path, kind: str) -> None:
    """Raises UploadRefusedError: the header lacks a column the kind needs."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        try:
            header = next(csv.reader(f), None)
        except csv.Error:
            header = None
    if not header:
        raise UploadRefusedError(
            _("The file's first line must be the header of its columns."), "file"
        )
    required = COLUMNS[kind]
    try:
        check_columns(header, required)
    except ImportFailedError:
        missing = ", ".join(c for c in required if c not in header)
        raise UploadRefusedError(
            _("The file's header lacks the column(s): %(columns)s.", columns=missing), "file"
        ) from None


def _accept_upload(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Check the upload and store it; returns its id and the run's parameters.

    Raises:
        UploadRefusedError: a bad kind, expiry date or file (nothing is left stored).
    """
    if form["kind"] not in COLUMNS:
        raise UploadRefusedError(
            _("Choose what the file holds: issuance, transfers or sales."), "kind"
        )
    expires = _expiry(form)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise UploadRefusedError(_("Choose a CSV file."), "file")
    directory = import_uploads()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    upload_id = secrets.token_hex(16)
    path = import_upload_path(upload_id)
    size = _store(upload.stream, path, max_import_bytes())
    try:
        _check_header(path, form["kind"])
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    params = {
        "kind": form["kind"],
        "expires": expires,
        "upload": upload_id,
        "file": secure_filename(upload.filename)[:_MAX_NAME] or "upload.csv",
        "size": size,
    }
    return upload_id, params


@bp.post("/imports")
@login_required(Role.ADMINISTRATOR)
def start_import() -> ResponseReturnValue:
    """Check and store the uploaded file, then import it as a task and show its progress."""
    form = {name: request.form.get(name, "").strip() for name in ("kind", "expires")}
    try:
        upload_id, params = _accept_upload(form)
    except UploadRefusedError as e:
        return _form(e.status, form, e.message, e.field)
    try:
        run_id = launch(RunKind.IMPORT, params)
    except BaseException:
        import_upload_path(upload_id).unlink(missing_ok=True)
        raise
    if _ended(run_id):
        # Ended without the task (the broker was unreachable): the file goes all the same.
        import_upload_path(upload_id).unlink(missing_ok=True)
    return show_progress(run_id)


def _ended(run_id: str) -> bool:
    run = db_session().get(TaskRun, run_id)
    return run is not None and run.run_state.finished


@bp.get("/imports/<run_id>")
@login_required(Role.ADMINISTRATOR)
def report(run_id: str) -> Response:
    """A code import's report: the counts and batches, or its bad lines by number."""
    run = get_run(db_session(), run_id, viewer=None)
    if run.kind != RunKind.IMPORT.value:
        raise NotFoundError(f"no code import {run_id[:40]!r}")
    return page(
        "pages/imports/report.html",
        run=run,
        task=status_json(run),
        params=run.parameters(),
        outcome=run.outcome(),
        kinds=dict(KIND_CHOICES),
        state_labels=STATE_LABELS,
        failed=run.run_state is RunState.FAILED,
    )

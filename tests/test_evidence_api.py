"""Evidence export over the cases API: a background task with steps, its package as a
zip that verifies offline, the chain-of-custody entry, and problem+json refusals that
write nothing."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import bagit
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.evidence import verify_package
from provenance.ledger import LedgerEntry
from tests.cases_support import build_case
from tests.ledger_support import NOW, register_party
from tests.personal_keys_support import personal_key
from tests.test_analysis_alerts import entries
from webapp.accounts.roles import Role
from webapp.runtime import current_runtime

PROBLEM = "application/problem+json"
RECIPIENT = "某市公安局 economic crime unit"


def _officer(client: FlaskClient, session: Session) -> dict[str, str]:
    token = personal_key(client.application, session, "li.investigator", Role.ANALYST)
    return {"Authorization": f"Bearer {token}"}


def _case(client: FlaskClient, session: Session) -> int:
    with client.application.app_context():
        return build_case(session, current_runtime().ledger).id


def _exports(client: FlaskClient) -> Path:
    return Path(client.application.extensions["cardtrace"].settings.instance_path) / "exports"


def _written(client: FlaskClient) -> list[str]:
    root = _exports(client)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _export(client: FlaskClient, case_id: int, auth: dict[str, str], **body: Any) -> Any:
    return client.post(
        f"/api/v1/cases/{case_id}/evidence",
        json={"lang": "en", "recipient": RECIPIENT} | body,
        headers=auth,
    )


def _finished(client: FlaskClient, status_url: str, auth: dict[str, str]) -> dict[str, Any]:
    # The embedded default runs the task in-process, so a few reads are plenty.
    for _ in range(50):
        status: dict[str, Any] = client.get(status_url, headers=auth).get_json()
        if status["state"] in ("done", "failed"):
            return status
    raise AssertionError(f"export never finished: {status}")


@pytest.fixture()
def exported(client: FlaskClient, session: Session) -> dict[str, Any]:
    auth = _officer(client, session)
    case_id = _case(client, session)
    started = _export(client, case_id, auth)
    assert started.status_code == 202, started.get_json()
    body: dict[str, Any] = started.get_json()
    return {"auth": auth, "case": case_id, "started": started, "body": body}


def test_an_export_is_accepted_with_its_id_and_status_url(exported: dict[str, Any]) -> None:
    body, started = exported["body"], exported["started"]
    url = f"/api/v1/cases/{exported['case']}/evidence/{body['id']}"
    assert body["status_url"] == url and started.headers["Location"] == url
    assert body["state"] in ("queued", "running", "done")


def test_an_export_runs_its_steps_to_done_with_the_hash_and_size(
    client: FlaskClient, exported: dict[str, Any]
) -> None:
    status = _finished(client, exported["body"]["status_url"], exported["auth"])
    assert status["state"] == "done", status
    assert [(s["name"], s["state"]) for s in status["steps"]] == [
        ("package", "done"),
        ("archive", "done"),
    ]
    assert len(status["package_sha256"]) == 64 and status["size"] > 0
    assert status["requested_by"] == "li.investigator" and status["recipient"] == RECIPIENT
    assert status["failure"] is None


def test_the_downloaded_package_verifies_offline(
    client: FlaskClient, exported: dict[str, Any], tmp_path: Path
) -> None:
    status = _finished(client, exported["body"]["status_url"], exported["auth"])
    response = client.get(exported["body"]["status_url"] + "/archive", headers=exported["auth"])
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert f"filename={status['archive_name']}" in response.headers["Content-Disposition"]
    content = response.get_data()
    assert len(content) == status["size"]
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert response.headers["X-Package-SHA256"] == status["package_sha256"]
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        zf.extractall(tmp_path / "unpacked")
    [package] = list((tmp_path / "unpacked").iterdir())
    with client.application.app_context():
        ledger = current_runtime().ledger
        report = verify_package(package, ledger.catalog, trusted_key=ledger.platform.public_key)
    assert report.case == f"CASE-{exported['case']}"
    assert bagit.Bag(str(package)).is_valid()
    tagmanifest = (package / "tagmanifest-sha256.txt").read_bytes()
    assert hashlib.sha256(tagmanifest).hexdigest() == status["package_sha256"]


def test_the_export_is_recorded_on_the_ledger_by_the_officer_for_the_recipient(
    client: FlaskClient, session: Session, exported: dict[str, Any]
) -> None:
    status = _finished(client, exported["body"]["status_url"], exported["auth"])
    entry = session.scalars(
        select(LedgerEntry).where(LedgerEntry.seq == status["custody_seq"])
    ).one()
    body = json.loads(entry.record)["entry"]["body"]
    assert entry.type == "case.export"
    assert body["by"] == "li.investigator" and body["recipient"] == RECIPIENT
    assert body["package_sha256"] == status["package_sha256"]
    assert body["case"] == exported["case"] and body["language"] == "en"


def test_an_export_leaves_the_working_directory_alone(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A threaded server's other requests would see a changed cwd while the export runs,
    # even if it is put back afterwards: so it must not change at all.
    auth = _officer(client, session)
    case_id = _case(client, session)
    before = os.getcwd()
    changes: list[str] = []
    real_chdir = os.chdir

    def chdir(path: Any) -> None:
        changes.append(str(path))
        real_chdir(path)

    monkeypatch.setattr(os, "chdir", chdir)
    started = _export(client, case_id, auth)
    assert started.status_code == 202
    assert _finished(client, started.get_json()["status_url"], auth)["state"] == "done"
    assert changes == [] and os.getcwd() == before


@pytest.mark.parametrize(
    "body",
    [
        {"lang": "fr", "recipient": RECIPIENT},
        {"lang": "en", "recipient": ""},
        {"lang": "en", "recipient": "x" * 201},
        {"lang": "en", "recipient": "police\nforged line"},
        {"lang": "en"},
        {"lang": "en", "recipient": RECIPIENT, "exported_by": "someone.else"},
    ],
    ids=["unknown-language", "empty-recipient", "long-recipient", "newline", "none", "extra"],
)
def test_bad_input_is_a_422_problem_that_writes_nothing(
    client: FlaskClient, session: Session, body: dict[str, Any]
) -> None:
    auth = _officer(client, session)
    case_id = _case(client, session)
    size = entries(session)
    response = client.post(f"/api/v1/cases/{case_id}/evidence", json=body, headers=auth)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.get_json()["code"] == "invalid-input"
    assert entries(session) == size and _written(client) == []


def test_an_unknown_case_is_a_404_problem_that_writes_nothing(
    client: FlaskClient, session: Session
) -> None:
    auth = _officer(client, session)
    _case(client, session)
    size = entries(session)
    response = _export(client, 99999, auth)
    assert response.status_code == 404 and response.mimetype == PROBLEM
    assert response.get_json()["code"] == "case-not-found"
    assert entries(session) == size and _written(client) == []


def test_another_cases_export_id_is_not_found(
    client: FlaskClient, session: Session, exported: dict[str, Any]
) -> None:
    auth = exported["auth"]
    other = client.post("/api/v1/cases", json={"title": "another"}, headers=auth).get_json()["id"]
    export_id = exported["body"]["id"]
    for suffix in ("", "/archive"):
        response = client.get(f"/api/v1/cases/{other}/evidence/{export_id}{suffix}", headers=auth)
        assert response.status_code == 404 and response.mimetype == PROBLEM
        assert response.get_json()["code"] == "evidence-export-not-found"
    for bad in ("0" * 32, "..%2F..%2Fkeys", "not-an-id"):
        response = client.get(f"/api/v1/cases/{exported['case']}/evidence/{bad}", headers=auth)
        assert response.status_code == 404, bad


def test_without_an_investigators_credential_nothing_is_exported_or_shown(
    client: FlaskClient, session: Session, exported: dict[str, Any]
) -> None:
    case_id, status_url = exported["case"], exported["body"]["status_url"]
    written, size = _written(client), entries(session)
    with client.application.app_context():
        register_party(session, current_runtime().ledger, "shop-evidence", kind="merchant")
        session.flush()
    merchant = personal_key(
        client.application, session, "shop.owner", Role.MERCHANT, party="shop-evidence"
    )
    auditor = personal_key(client.application, session, "qian.auditor", Role.AUDITOR)
    size = entries(session)
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": f"Bearer {merchant}"}, 403),
    ):
        for response in (
            _export(client, case_id, headers),
            client.get(status_url, headers=headers),
            client.get(status_url + "/archive", headers=headers),
        ):
            assert response.status_code == status and response.mimetype == PROBLEM
            if status == 401:
                assert "Bearer" in response.headers["WWW-Authenticate"]
    # An auditor reads cases but may not export evidence.
    refused = _export(client, case_id, {"Authorization": f"Bearer {auditor}"})
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    assert entries(session) == size and _written(client) == written


def test_a_refused_export_fails_with_its_reason_and_writes_no_package(
    client: FlaskClient, session: Session
) -> None:
    # The task re-reads its export: a case gone by the time it runs is refused there.
    from webapp.api_cases import evidence_exports
    from webapp.tasks import export_evidence

    size = entries(session)
    with client.application.app_context():
        exports = evidence_exports()
        queued = exports.create(
            99999, officer="li.investigator", recipient="x", language="en", now=NOW
        )
        export_evidence.apply((queued.id,))
        status = exports.read(queued.id)
        package = exports.package_dir(queued.id)
    assert status.state == "failed" and status.failure is not None
    assert status.failure.code == "case-not-found"
    assert str(_exports(client)) not in status.failure.detail
    assert not package.exists() and entries(session) == size

"""The read-only ledger API, and the ledger commands of the CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provenance.checkpoint import verify_checkpoint
from provenance.merkle import verify_consistency, verify_inclusion
from tests.ledger_support import NOW, register_party
from tests.processes import run
from webapp.runtime import current_runtime


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture()
def filled(app: Flask, session: Session) -> Flask:
    with app.app_context():
        ledger = current_runtime().ledger
        ledger.ensure_genesis(session, name="test", now=NOW)
        ledger.issue_checkpoint(session, now=NOW)
        for i in range(5):
            register_party(session, ledger, f"party-{i}", now=NOW)
        ledger.issue_checkpoint(session, now=NOW)
        session.flush()
    return app


def test_latest_checkpoint_is_a_signed_note(filled: Flask, client: FlaskClient) -> None:
    response = client.get("/api/v1/ledger/checkpoint")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    keys = client.get("/api/v1/ledger/keys").get_json()
    public = Ed25519PublicKey.from_public_bytes(b64(keys["platform_key"]))
    checkpoint = verify_checkpoint(response.data, keys["origin"], keys["origin"], public)
    assert checkpoint.size == 6


def test_entry_and_its_inclusion_proof_verify(filled: Flask, client: FlaskClient) -> None:
    entry = client.get("/api/v1/ledger/entries/3").get_json()
    assert json.loads(entry["record"])["seq"] == 3
    proof = client.get("/api/v1/ledger/proofs/inclusion?seq=3").get_json()
    assert proof["size"] == 6
    verify_inclusion(
        bytes.fromhex(entry["leaf_hash"]),
        3,
        6,
        [b64(h) for h in proof["proof"]],
        b64(proof["root"]),
    )


def test_consistency_proof_between_checkpoints_verifies(filled: Flask, client: FlaskClient) -> None:
    body = client.get("/api/v1/ledger/proofs/consistency?old=1&new=6").get_json()
    verify_consistency(
        1, 6, b64(body["old_root"]), b64(body["new_root"]), [b64(h) for h in body["proof"]]
    )


def test_keys_lists_every_registered_key(filled: Flask, client: FlaskClient) -> None:
    keys = client.get("/api/v1/ledger/keys").get_json()
    assert {k["party"] for k in keys["keys"]} == {"platform"} | {f"party-{i}" for i in range(5)}
    assert keys["note_verifier_key"].startswith(keys["origin"] + "+")


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v1/ledger/entries/99", 404, "not-found"),
        ("/api/v1/ledger/entries/-1", 404, "not-found"),
        ("/api/v1/ledger/proofs/inclusion?seq=abc", 422, "invalid-input"),
        ("/api/v1/ledger/proofs/inclusion", 422, "invalid-input"),
        ("/api/v1/ledger/proofs/inclusion?seq=9", 422, "bad-proof"),
        ("/api/v1/ledger/proofs/inclusion?seq=1&size=99", 422, "bad-proof"),
        ("/api/v1/ledger/proofs/inclusion?seq=1&size=99999999999999999999", 422, "invalid-input"),
        ("/api/v1/ledger/proofs/consistency?old=6&new=1", 422, "bad-proof"),
        ("/api/v1/ledger/checkpoints/4", 404, "not-found"),
    ],
)
def test_bad_requests_get_problem_documents(
    filled: Flask, client: FlaskClient, url: str, status: int, code: str
) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code


def test_no_checkpoint_yet_is_not_found(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/v1/ledger/checkpoint")
    assert response.status_code == 404


# --- the CLI, as a user runs it --------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    assert run(["init"], folder).returncode == 0
    demo = run(["demo", "--scale", "0.003"], folder)
    assert demo.returncode == 0, demo.stderr
    return folder


def test_exported_demo_bundle_verifies(instance: Path) -> None:
    result = run(["ledger", "export", "-o", "b.jsonl"], instance)
    assert result.returncode == 0, result.stderr
    key = instance / "instance" / "keys" / "log-signing.pub.pem"
    verified = run(["ledger", "verify", "b.jsonl", "--platform-key", str(key)], instance)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK: entries 0..")


def test_one_byte_change_fails_verify_naming_the_entry(instance: Path) -> None:
    assert run(["ledger", "export", "-o", "c.jsonl"], instance).returncode == 0
    raw = (instance / "c.jsonl").read_bytes()
    lines = raw.split(b"\n")
    target = 4  # the third entry's line (after the header and the checkpoint)
    position = sum(len(line) + 1 for line in lines[:target]) + lines[target].index(b'"name":"') + 9
    changed = raw[:position] + bytes([raw[position] ^ 0x20]) + raw[position + 1 :]
    (instance / "c.jsonl").write_bytes(changed)
    key = instance / "instance" / "keys" / "log-signing.pub.pem"
    result = run(["ledger", "verify", "c.jsonl", "--platform-key", str(key)], instance)
    assert result.returncode == 1
    assert result.stderr.startswith("FAILED: entry 2:")


def test_verify_needs_no_database(instance: Path, tmp_path: Path) -> None:
    assert run(["ledger", "export", "-o", str(tmp_path / "d.jsonl")], instance).returncode == 0
    key = instance / "instance" / "keys" / "log-signing.pub.pem"
    result = run(
        ["ledger", "verify", str(tmp_path / "d.jsonl"), "--platform-key", str(key)],
        tmp_path,
        CARDTRACE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
    )
    assert result.returncode == 0, result.stderr


def test_audit_of_the_demo_passes(instance: Path) -> None:
    result = run(["ledger", "audit"], instance)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")


def test_consistency_between_two_saved_checkpoints(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    old = run(["ledger", "checkpoint"], tmp_path).stdout
    assert run(["demo", "--scale", "0.003"], tmp_path).returncode == 0
    new = run(["ledger", "checkpoint"], tmp_path).stdout
    (tmp_path / "old.note").write_text(old)
    (tmp_path / "new.note").write_text(new)
    old_size, new_size = int(old.split("\n")[1]), int(new.split("\n")[1])
    assert old_size < new_size
    with _proof_app(tmp_path).test_client() as client:
        url = f"/api/v1/ledger/proofs/consistency?old={old_size}&new={new_size}"
        body = client.get(url).data
    (tmp_path / "proof.json").write_bytes(body)
    key = tmp_path / "instance" / "keys" / "log-signing.pub.pem"
    args = ["ledger", "consistency", "old.note", "new.note", "--platform-key", str(key)]
    result = run([*args, "--proof", "proof.json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: the checkpoint of size {new_size} extends")
    # A proof from a rewritten history does not connect the two signed checkpoints.
    forged = json.loads(body)
    forged["proof"] = [base64.b64encode(bytes(32)).decode()] * len(forged["proof"])
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    result = run([*args, "--proof", "forged.json"], tmp_path)
    assert result.returncode == 1
    assert "does not extend" in result.stderr
    # Swapped checkpoints are refused, not silently accepted.
    swapped = run(
        [
            "ledger",
            "consistency",
            "new.note",
            "old.note",
            "--platform-key",
            str(key),
            "--proof",
            "proof.json",
        ],
        tmp_path,
    )
    assert swapped.returncode == 1
    assert "smaller than the old one" in swapped.stderr


def _proof_app(instance: Path) -> Flask:
    from webapp import create_app

    return create_app({"instance_path": instance / "instance"})


def test_checkpoint_task_signs_the_new_head_once(app: Flask, session: Session) -> None:
    from webapp.tasks import beat_schedule, issue_checkpoint

    with app.app_context():
        ledger = current_runtime().ledger
        ledger.ensure_genesis(session, name="test", now=NOW)
        first = issue_checkpoint.delay().get(timeout=10)
        register_party(session, ledger, "late", now=NOW)
        second = issue_checkpoint.delay().get(timeout=10)
        again = issue_checkpoint.delay().get(timeout=10)
    assert (first["size"], second["size"]) == (1, 2)
    assert again == second
    assert beat_schedule(60)["issue-checkpoint"]["task"] == "cardtrace.issue_checkpoint"

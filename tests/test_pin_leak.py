"""No raw PIN reaches the database or the logs, through any entry point.

Unmistakable PINs go in through the CSV import, the JSON API (good and malformed
requests), the command line and the demo's supply chain; then the whole SQLite file (and
its WAL), a dump of the PostgreSQL database, every file in the instance folder and every
line of output and log are searched for them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.processes import cardtrace_command, clean_env, free_port, run, stop, wait_for_http
from tests.services import fresh_postgres_database

ISSUER, PRODUCT = "tencent-cards", "tencent-cards.qq-coin-100"
PLANTED = [f"{n}" for n in (918273645546372819, 719283746556473829, 182736455463728190)]
SERIALS = ["62970000000001", "62970000000002", "62970000000003"]


def _leaks(blob: bytes, pins: list[str]) -> list[str]:
    return [pin for pin in pins if pin.encode() in blob]


def _exercise(folder: Path, env: dict[str, str]) -> bytes:
    """Run every entry point with planted PINs; return all the output they produced."""
    output = b""

    def cmd(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        nonlocal output
        result = subprocess.run(
            [*cardtrace_command(), *args],
            cwd=folder,
            env=clean_env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output += (result.stdout + result.stderr).encode()
        return result

    assert cmd(["init"]).returncode == 0
    assert cmd(["demo", "--scale", "0.003"]).returncode == 0
    csv_file = folder / "issue.csv"
    csv_file.write_text(
        "batch,product,serial,pin\n"
        + "".join(f"leak-batch,{PRODUCT},{s},{p}\n" for s, p in zip(SERIALS, PLANTED, strict=True))
    )
    keys = folder / "instance" / "keys" / "demo-parties" / f"{ISSUER}.pem"
    result = cmd(
        ["codes", "import", str(csv_file), "--kind", "issuance", "--key", f"{ISSUER}={keys}"]
    )
    assert result.returncode == 0, result.stderr
    bad = folder / "bad.csv"
    bad.write_text(f"batch,product,serial,pin\nleak-bad,{PRODUCT},{SERIALS[0]},{PLANTED[0]}X\n")
    assert cmd(["codes", "import", str(bad), "--kind", "issuance"]).returncode == 1
    result = cmd(
        [
            "codes",
            "verify",
            "--merchant",
            "shop-longmen",
            "--issuer",
            ISSUER,
            "--product",
            PRODUCT,
            "--serial",
            SERIALS[1],
        ],
        stdin=PLANTED[1] + "\n",
    )
    assert result.returncode == 0, result.stderr
    created = cmd(
        ["apikeys", "create", "--party", "platform", "--scope", "codes:verify", "--name", "till"]
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    # The JSON API under gunicorn, with its access log on.
    port = free_port()
    server = subprocess.Popen(
        [*cardtrace_command(), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=folder,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        for pin in (PLANTED[2], PLANTED[2] + "!!", PLANTED[2] * 9):
            body = {
                "merchant": "shop-longmen",
                "code": {"issuer": ISSUER, "product": PRODUCT, "serial": SERIALS[2], "pin": pin},
            }
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/codes/verify",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    output += response.read()
            except urllib.error.HTTPError as e:
                output += e.read()
    finally:
        stop(server)
        assert server.stdout is not None
        output += server.stdout.read()
    return output


def _instance_files(folder: Path) -> bytes:
    blob = b""
    for path in (folder / "instance").rglob("*"):
        if path.is_file():
            blob += path.read_bytes()
    return blob


def test_no_planted_pin_in_sqlite_files_or_output(tmp_path: Path) -> None:
    output = _exercise(tmp_path, {})
    assert _leaks(output, PLANTED) == []
    assert _leaks(_instance_files(tmp_path), PLANTED) == []
    # The fingerprints did arrive: the planted codes are known to the store.
    result = run(
        [
            "codes",
            "verify",
            "--merchant",
            "shop-longmen",
            "--issuer",
            ISSUER,
            "--product",
            PRODUCT,
            "--serial",
            SERIALS[0],
        ],
        tmp_path,
    )
    assert "unknown-origin" not in result.stdout


def test_no_planted_pin_in_a_postgresql_dump(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        env = {"CARDTRACE_DATABASE_URL": url.render_as_string(hide_password=False)}
        output = _exercise(tmp_path, env)
        dump = _pg_dump(url)
    assert b"leak-batch" in dump  # the dump is of the right database
    assert _leaks(dump, PLANTED) == []
    assert _leaks(output, PLANTED) == []


def _pg_dump(url: URL) -> bytes:
    result = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            url.database or "",
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return result.stdout


def test_demo_supply_chain_pins_stay_out_of_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's own codes: every PIN it generated is absent from the database and logs."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    from provenance.db import write_transaction
    from provenance.ledger import Ledger, PlatformSigner
    from provenance.scenario import SupplyChain
    from tests.keys import FINGERPRINT_KEY
    from tests.ledger_support import PLATFORM_KEY
    from webapp.catalog import build_catalog
    from webapp.database import make_engine, upgrade

    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    engine = make_engine(make_url(f"sqlite:///{tmp_path / 'demo.db'}"))
    upgrade(engine)
    ledger = Ledger(build_catalog(), PlatformSigner(PLATFORM_KEY))
    keys: dict[str, Ed25519PrivateKey] = {}
    with Session(engine) as session:
        with write_transaction(session):
            ledger.ensure_genesis(session, name="demo", now=datetime.now(UTC))
        chain = SupplyChain(
            session,
            ledger,
            fingerprint_key=FINGERPRINT_KEY,
            party_keys=lambda p: keys.setdefault(p, Ed25519PrivateKey.generate()),
            clock=lambda: datetime.now(UTC),
            scale=0.003,
        )
        chain.run()
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    engine.dispose()
    pins = [code.pin for code in chain.codes]
    assert len(pins) > 500
    store = b"".join(p.read_bytes() for p in tmp_path.glob("demo.db*"))
    assert _leaks(store, pins) == []
    assert _leaks(caplog.text.encode(), pins) == []

"""Verify before sale in front of Flask (webapp.verify_fast) and the API keys kept on
PostgreSQL (webapp.accounts.key_cache): the same answers as the Flask view, every other
request handed to the view, and a revoked or rotated key refused once announced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from provenance.db import write_transaction
from provenance.parties import PLATFORM_PARTY
from tests.codes_support import (
    ISSUER,
    PRODUCT,
    SHOP,
    Chain,
    b64,
    build_chain,
    fp,
    person,
    pin,
    sale_body,
    serial,
)
from tests.ledger_support import NOW, make_ledger
from tests.services import fresh_postgres_database, own_engines_app
from tests.test_accounts_support import PASSWORD
from webapp.accounts.apikeys import create_key, create_personal_key, revoke_key, rotate_key
from webapp.accounts.key_cache import KeyCache
from webapp.accounts.roles import Role
from webapp.accounts.service import create_user
from webapp.database import make_engine, upgrade
from webapp.runtime import current_runtime
from webapp.verify_fast import VERIFY_PATH, VerifyFastPath


@dataclass
class Store:
    url: URL
    platform: str  # a full API key of the platform's sale system
    shop: str  # the shop's own key
    no_scope: str  # a key without codes:verify
    revoked: str
    personal: str
    signers: dict[str, Any]  # the parties' signing keys of the chain built


def _store(url: URL) -> Store:
    engine = make_engine(url)
    upgrade(engine)
    ledger = make_ledger()
    with Session(engine) as session, write_transaction(session):
        chain = build_chain(session, ledger)
        ledger.issue_checkpoint(session, now=NOW)

        def key(party: str, scopes: str) -> str:
            return create_key(session, "k", party, scopes, now=NOW, actor="t").token

        revoked = key(PLATFORM_PARTY, "codes:verify")
        revoke_key(session, revoked[4:16], now=NOW, actor="t")
        create_user(session, "shop.clerk", "Clerk", Role.MERCHANT, PASSWORD, now=NOW, party=SHOP)
        personal = create_personal_key(session, "till", "shop.clerk", now=NOW, actor="t").token
        store = Store(
            url,
            key(PLATFORM_PARTY, "codes:verify"),
            key(SHOP, "codes:verify"),
            key(PLATFORM_PARTY, "ledger:read"),
            revoked,
            personal,
            chain.keys,
        )
    ledger.close()
    engine.dispose()
    return store


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[URL]:
    if kind == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path, key_dir: Path) -> Iterator[Any]:
    with _database(request.param, tmp_path) as url:
        store = _store(url)
        with own_engines_app(url, tmp_path / "instance", key_dir, lambda: NOW) as app:
            yield app, store


def _raw(i: int, **overrides: str) -> dict[str, str]:
    return {"issuer": ISSUER, "product": PRODUCT, "serial": serial(i), "pin": pin(i), **overrides}


def _post(client: FlaskClient, token: str | None, body: Any, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, bytes | str):
        kwargs.setdefault("content_type", "application/json")
        return client.post(VERIFY_PATH, data=body, headers=headers, **kwargs)
    return client.post(VERIFY_PATH, json=body, headers=headers, **kwargs)


def _middleware(app: Flask) -> VerifyFastPath:
    layer = app.wsgi_app
    assert isinstance(layer, VerifyFastPath)
    return layer


def _both_ways(app: Flask, send: Any) -> tuple[Any, Any]:
    """The answer with the fast path, then with the Flask view alone."""
    client = app.test_client()
    fast = send(client)
    app.config["VERIFY_FAST_PATH"] = False
    try:
        slow = send(app.test_client())
    finally:
        app.config["VERIFY_FAST_PATH"] = True
    return fast, slow


def _same(fast: Any, slow: Any) -> None:
    assert fast.status_code == slow.status_code
    assert fast.get_json() == slow.get_json()
    assert fast.get_data() == slow.get_data()
    assert dict(fast.headers) == dict(slow.headers)


def test_plain_verifies_are_answered_in_front_of_flask_as_the_view_answers_them(
    served: Any,
) -> None:
    app, store = served
    layer = _middleware(app)
    bodies: list[dict[str, Any]] = [
        {"merchant": SHOP, "code": _raw(0)},  # held and listed: allowed
        {"merchant": SHOP, "code": _raw(12)},
        {"merchant": SHOP, "code": _raw(5, pin="not-its-pin")},  # same serial, other PIN
        {"merchant": SHOP, "code": _raw(90_000)},  # unknown
        {"merchant": SHOP, "fingerprint": b64(fp(1))},
        {"merchant": "shop-elsewhere", "code": _raw(1)},  # not the holder
    ]
    # The view first: it learns the product, as a process does on its first verify.
    assert _post(app.test_client(), store.platform, bodies[0]).status_code == 200
    for token in (store.platform, store.shop):
        for body in bodies:
            if token == store.shop and body["merchant"] != SHOP:
                continue
            before = layer.served
            fast, slow = _both_ways(app, lambda c, t=token, b=body: _post(c, t, b))
            assert layer.served == before + 1, body
            assert fast.status_code == 200, fast.get_json()
            _same(fast, slow)
            answer = fast.get_json()
            assert {str(step["seq"]) for step in answer["custody"]} == set(
                answer["proofs"]["entries"]
            )


@pytest.mark.parametrize(
    "case",
    [
        "bad-json",
        "extra-field",
        "missing-code",
        "wrong-type",
        "form-body",
        "unknown-key",
        "revoked-key",
        "no-scope",
        "other-merchant",
        "personal-key",
        "with-cookie",
        "unknown-product",
        "no-key",
        "malformed-fingerprint",
    ],
)
def test_every_other_verify_is_answered_by_the_view(served: Any, case: str) -> None:
    app, store = served
    layer = _middleware(app)
    _post(app.test_client(), store.platform, {"merchant": SHOP, "code": _raw(0)})
    plain = {"merchant": SHOP, "code": _raw(0)}
    token: str | None = store.platform
    body: Any = plain
    extra: dict[str, Any] = {}
    if case == "bad-json":
        body = b'{"merchant": "shop-longmen", "code": '
    elif case == "extra-field":
        body = {**plain, "price": 10}
    elif case == "missing-code":
        body = {"merchant": SHOP}
    elif case == "wrong-type":
        body = {"merchant": SHOP, "code": {**_raw(0), "serial": 7}}
    elif case == "form-body":
        body = "merchant=shop"
        extra = {"content_type": "application/x-www-form-urlencoded"}
    elif case == "unknown-key":
        token = store.platform[:-4] + "abcd"
    elif case == "revoked-key":
        token = store.revoked
    elif case == "no-scope":
        token = store.no_scope
    elif case == "other-merchant":
        token, body = store.shop, {"merchant": "shop-elsewhere", "code": _raw(0)}
    elif case == "personal-key":
        token = store.personal
    elif case == "unknown-product":
        body = {"merchant": SHOP, "code": _raw(0, product="no-such-product")}
    elif case == "no-key":
        token = None
    elif case == "malformed-fingerprint":
        body = {"merchant": SHOP, "fingerprint": "zz"}

    def send(client: FlaskClient) -> Any:
        if case == "with-cookie":
            client.set_cookie("session", "anything")
        return _post(client, token, body, **extra)

    served_before = layer.served
    fast, slow = _both_ways(app, send)
    assert layer.served == served_before
    _same(fast, slow)
    if case not in ("personal-key", "with-cookie"):  # both may verify, through the view
        assert fast.status_code >= 400
        assert fast.mimetype == "application/problem+json"


def test_a_sale_context_goes_to_the_view_and_its_risk_step(served: Any) -> None:
    app, store = served
    layer = _middleware(app)
    context = {"buyer": person("buyer", "buyer-77"), "amount": "100.00"}
    before = (layer.served, layer.handed_on)
    answer = _post(
        app.test_client(), store.platform, {"merchant": SHOP, "code": _raw(0), "context": context}
    )
    assert answer.status_code == 200, answer.get_json()
    assert "risk" in answer.get_json()
    assert (layer.served, layer.handed_on) == (before[0], before[1] + 1)


def test_a_sale_and_a_revocation_committed_elsewhere_are_seen_by_the_next_requests(
    served: Any,
) -> None:
    app, store = served
    with app.app_context():
        reader = current_runtime().reader()
        assert reader is not None and reader is not current_runtime().engine
    if reader.dialect.name == "sqlite":
        with reader.connect() as connection:  # the read engine cannot write
            assert connection.exec_driver_sql("PRAGMA query_only").scalar() == 1
            with pytest.raises(DBAPIError):
                connection.exec_driver_sql("DELETE FROM api_key")
    client = app.test_client()
    plain = {"merchant": SHOP, "code": _raw(0)}
    assert _post(client, store.platform, plain).get_json()["decision"] == "allow"
    engine = make_engine(store.url)
    chain = Chain(make_ledger(), store.signers)
    with Session(engine) as session, write_transaction(session):
        chain.append(session, SHOP, "code.sale", sale_body(0))
    sold = _post(client, store.platform, plain).get_json()
    assert "already-sold" in {r["code"] for r in sold["reasons"]}
    with Session(engine) as session, write_transaction(session):
        revoke_key(session, store.platform[4:16], now=NOW, actor="t")
    refused = _refused_within(client, store.platform, 2.0)  # at once on SQLite
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "api-key-revoked"
    chain.ledger.close()
    engine.dispose()


def test_the_keys_limit_holds_in_front_of_flask(served: Any) -> None:
    app, store = served
    with app.app_context():
        runtime = current_runtime()
        with runtime.make_session() as session, write_transaction(session):
            token = create_key(
                session,
                "slow",
                PLATFORM_PARTY,
                "codes:verify",
                now=NOW,
                actor="t",
                rate_per_minute=2,
            ).token
    client = app.test_client()
    layer = _middleware(app)
    _post(client, store.platform, {"merchant": SHOP, "code": _raw(1)})  # the product learnt
    served_before = layer.served
    answers = [_post(client, token, {"merchant": SHOP, "code": _raw(0)}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].get_json()["code"] == "rate-limited"
    assert layer.served == served_before + 2  # the two allowed were counted in front


# --- the keys kept on PostgreSQL ------------------------------------------------------------


def _key_reads(app: Flask) -> list[str]:
    statements: list[str] = []
    with app.app_context():
        reader = current_runtime().reader()
    assert reader is not None

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "api_key" in statement:
            statements.append(statement)

    event.listen(reader, "before_cursor_execute", record)
    return statements


def _cache(app: Flask) -> KeyCache:
    with app.app_context():
        cache = current_runtime().key_cache()
    assert cache is not None
    assert cache.wait_listening(10)
    return cache


def _refused_within(client: FlaskClient, token: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        answer = _post(client, token, {"merchant": SHOP, "code": _raw(0)})
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


@pytest.fixture()
def on_postgres(tmp_path: Path, key_dir: Path) -> Iterator[tuple[Flask, Store]]:
    with fresh_postgres_database() as url:
        store = _store(url)
        with own_engines_app(url, tmp_path / "instance", key_dir, lambda: NOW) as app:
            yield app, store


def test_a_machine_key_is_read_once_and_refused_once_revoked(
    on_postgres: tuple[Flask, Store],
) -> None:
    app, store = on_postgres
    cache = _cache(app)
    client = app.test_client()
    plain = {"merchant": SHOP, "code": _raw(0)}
    assert _post(client, store.platform, plain).status_code == 200
    reads = _key_reads(app)
    for _ in range(3):
        assert _post(client, store.platform, plain).status_code == 200
    assert reads == []  # kept: no read of the key's row (its last use was recorded too)
    assert len(cache) == 1
    engine = make_engine(store.url)
    with Session(engine) as session, write_transaction(session):
        revoke_key(session, store.platform[4:16], now=NOW, actor="t")
    refused = _refused_within(client, store.platform, 2.0)
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "api-key-revoked"
    engine.dispose()


def test_a_rotated_key_stops_working_and_its_new_secret_works(
    on_postgres: tuple[Flask, Store],
) -> None:
    app, store = on_postgres
    _cache(app)
    client = app.test_client()
    plain = {"merchant": SHOP, "code": _raw(0)}
    assert _post(client, store.platform, plain).status_code == 200
    engine = make_engine(store.url)
    with Session(engine) as session, write_transaction(session):
        new = rotate_key(session, store.platform[4:16], now=NOW, actor="t").token
    assert _refused_within(client, store.platform, 2.0).status_code == 401
    assert _post(client, new, plain).status_code == 200
    engine.dispose()


def test_without_its_listener_the_cache_keeps_nothing_and_a_revocation_holds_at_once(
    on_postgres: tuple[Flask, Store],
) -> None:
    app, store = on_postgres
    cache = _cache(app)
    client = app.test_client()
    plain = {"merchant": SHOP, "code": _raw(0)}
    assert _post(client, store.platform, plain).status_code == 200
    engine = make_engine(store.url)
    with engine.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        ).all()
    assert ended
    deadline = time.monotonic() + 5
    while cache.listening and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not cache.listening and len(cache) == 0
    with Session(engine) as session, write_transaction(session):
        revoke_key(session, store.platform[4:16], now=NOW, actor="t")
    # Not listening: the row is read, and the revocation holds on the very next request.
    answer = _post(client, store.platform, plain)
    assert answer.status_code == 401
    assert cache.wait_listening(10)  # and it listens again
    assert _post(client, store.shop, plain).status_code == 200
    assert len(cache) == 1
    engine.dispose()


def test_the_server_announces_key_changes_but_not_their_last_use(
    on_postgres: tuple[Flask, Store],
) -> None:
    _, store = on_postgres
    import psycopg

    conninfo = store.url.set(drivername="postgresql").render_as_string(hide_password=False)
    engine = make_engine(store.url)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute("LISTEN cardtrace_api_key")
        with engine.begin() as conn:
            conn.execute(text("UPDATE api_key SET last_used_at = now()"))
        assert list(listener.notifies(timeout=0.5)) == []
        with Session(engine) as session, write_transaction(session):
            revoke_key(session, store.shop[4:16], now=NOW, actor="t")
        notices = list(listener.notifies(timeout=2.0, stop_after=1))
        assert [n.payload for n in notices] == [store.shop[4:16]]
    engine.dispose()


def test_a_batch_reads_one_snapshot_while_a_sale_commits_between_its_statements(
    served: Any,
) -> None:
    app, store = served
    engine = make_engine(store.url)
    ledger = make_ledger()
    chain = Chain(ledger, store.signers)
    with app.app_context():
        reader = current_runtime().reader()
    assert reader is not None
    sold: list[bool] = []

    def sell_in_between(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        # After the codes were read, before their custody events are: a sale commits.
        if "code_event" in statement and not sold:
            sold.append(True)
            with Session(engine) as session, write_transaction(session):
                chain.append(session, SHOP, "code.sale", sale_body(0))

    event.listen(reader, "before_cursor_execute", sell_in_between)
    try:
        body = {"merchant": SHOP, "items": [{"code": _raw(0)}, {"code": _raw(1)}]}
        answer = app.test_client().post(
            "/api/v1/codes/verify-batch",
            json=body,
            headers={"Authorization": f"Bearer {store.platform}"},
        )
    finally:
        event.remove(reader, "before_cursor_execute", sell_in_between)
    assert sold and answer.status_code == 200, answer.get_json()
    first = answer.get_json()["results"][0]
    steps = [step["type"] for step in first["custody"]]
    # The verdict and its custody come from the same moment: before the sale.
    assert first["decision"] == "allow"
    assert "code.sale" not in steps
    # The sale is there for the next request.
    again = _post(app.test_client(), store.platform, {"merchant": SHOP, "code": _raw(0)})
    assert "already-sold" in {r["code"] for r in again.get_json()["reasons"]}
    ledger.close()
    engine.dispose()

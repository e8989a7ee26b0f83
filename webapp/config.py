"""Configuration: ``CARDTRACE_*`` environment variables and the instance folder.

Every problem with a setting becomes one :class:`ConfigError` line that names the
setting; secrets never appear in those lines.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from provenance.errors import ConfigError
from provenance.instance import validate_origin

PREFIX = "CARDTRACE_"

SESSION_KEY_FILE = "session.key"
FINGERPRINT_KEY_FILE = "fingerprint.key"
LOG_SIGNING_KEY_FILE = "log-signing.pem"
LOG_PUBLIC_KEY_FILE = "log-signing.pub.pem"
PERSONAL_DATA_KEY_FILE = "personal-data.key"

# Values people paste from tutorials; production refuses them.
_WEAK_SECRETS = frozenset(
    {"", "dev", "development", "secret", "changeme", "change-me", "test", "please-change-me"}
)
_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "memory")


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTORY_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TESTING = "testing"


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings. Build with :func:`load_settings`."""

    env: Environment
    instance_path: Path
    database_url: URL
    broker_url: str | None
    result_backend: str | None
    key_dir: Path
    log_origin: str
    secret_key: str | None = field(default=None, repr=False)
    checkpoint_interval_s: int = 300
    # "offline" (the imported extracts) or "package.module:factory" for a live service.
    registries: str = "offline"
    # Where the real-time risk state lives: Redis at this URL, or (None) the database.
    redis_url: str | None = field(default=None, repr=False)
    # Reverse proxies in front of the web app whose X-Forwarded-For/-Proto to trust:
    # the client's address (lockouts, rate limits, audit) is read through them.
    proxy_hops: int = 0

    @property
    def embedded_tasks(self) -> bool:
        return self.broker_url is None

    def database_url_display(self) -> str:
        return self.database_url.render_as_string(hide_password=True)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(PREFIX + name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_database_url(raw: str, setting: str = "CARDTRACE_DATABASE_URL") -> URL:
    """Parse a SQLAlchemy database URL.

    Raises:
        ConfigError: naming ``setting`` when the URL is malformed or of an unsupported kind.
    """
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(
            f"{setting} is not a valid database URL (expected e.g. "
            "'postgresql+psycopg://user@host:5432/db' or 'sqlite:////path/cardtrace.db')"
        ) from e
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"{setting}: unsupported database {backend!r}; use postgresql or sqlite")
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if backend == "postgresql" and not url.database:
        raise ConfigError(f"{setting}: the PostgreSQL URL names no database")
    return url


def _parse_broker_url(raw: str | None, setting: str) -> str | None:
    if raw is None:
        return None
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in _BROKER_SCHEMES or (scheme != "memory" and not rest):
        raise ConfigError(
            f"{setting} is not a valid broker URL (expected e.g. 'redis://127.0.0.1:6379/0' "
            "or 'amqp://guest@127.0.0.1:5672//')"
        )
    return raw


def _parse_redis_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    scheme, sep, rest = str(raw).partition("://")
    if not sep or scheme not in ("redis", "rediss", "unix") or not rest:
        raise ConfigError(
            "CARDTRACE_REDIS_URL is not a valid Redis URL (expected e.g. "
            "'redis://127.0.0.1:6379/2', 'rediss://host:6380/0' or 'unix:///run/redis.sock')"
        )
    return str(raw)


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read and validate the settings.

    Args:
        environ: the environment to read (default: ``os.environ``).
        overrides: values that win over the environment (tests, ``create_app(test_config)``),
            keyed by :class:`Settings` field name.

    Raises:
        ConfigError: a setting is malformed; the message names it.
    """
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})

    raw_env = overrides.pop("env", None) or _get(environ, "ENV") or "development"
    try:
        env = Environment(str(raw_env))
    except ValueError as e:
        choices = ", ".join(m.value for m in Environment)
        raise ConfigError(f"CARDTRACE_ENV must be one of {choices}; got {raw_env!r}") from e

    instance = Path(
        overrides.pop("instance_path", None) or _get(environ, "INSTANCE") or "instance"
    ).absolute()

    raw_db = overrides.pop("database_url", None) or _get(environ, "DATABASE_URL")
    if raw_db is None:
        database_url = make_url(f"sqlite:///{instance / 'cardtrace.db'}")
    elif isinstance(raw_db, URL):
        database_url = raw_db
    else:
        database_url = parse_database_url(str(raw_db))

    broker_url = _parse_broker_url(
        overrides.pop("broker_url", None) or _get(environ, "BROKER_URL"), "CARDTRACE_BROKER_URL"
    )
    result_backend = overrides.pop("result_backend", None) or _get(environ, "RESULT_BACKEND")
    if result_backend is None and broker_url is not None:
        result_backend = broker_url if broker_url.startswith("redis") else "rpc://"

    key_dir = Path(
        overrides.pop("key_dir", None) or _get(environ, "KEY_DIR") or instance / "keys"
    ).absolute()
    log_origin = validate_origin(
        overrides.pop("log_origin", None) or _get(environ, "LOG_ORIGIN") or "cardtrace.local/log"
    )
    secret_key = overrides.pop("secret_key", None) or _get(environ, "SECRET_KEY")

    raw_interval = overrides.pop("checkpoint_interval_s", None) or _get(
        environ, "CHECKPOINT_INTERVAL"
    )
    try:
        interval = int(raw_interval) if raw_interval is not None else 300
        if interval < 1:
            raise ValueError
    except ValueError as e:
        raise ConfigError(
            f"CARDTRACE_CHECKPOINT_INTERVAL must be a positive number of seconds; "
            f"got {raw_interval!r}"
        ) from e

    registries = str(overrides.pop("registries", None) or _get(environ, "REGISTRIES") or "offline")
    if registries != "offline" and not _FACTORY_RE.fullmatch(registries):
        raise ConfigError(
            "CARDTRACE_REGISTRIES must be 'offline' or 'package.module:factory' (a callable "
            f"taking a database session and returning Registries); got {registries!r}"
        )

    redis_url = _parse_redis_url(overrides.pop("redis_url", None) or _get(environ, "REDIS_URL"))

    raw_hops = overrides.pop("proxy_hops", None) or _get(environ, "PROXY_HOPS")
    try:
        proxy_hops = int(raw_hops) if raw_hops is not None else 0
        if not 0 <= proxy_hops <= 5:
            raise ValueError
    except ValueError as e:
        raise ConfigError(
            "CARDTRACE_PROXY_HOPS must be the number of reverse proxies in front of the web "
            f"app, 0 to 5; got {raw_hops!r}"
        ) from e

    if overrides:
        raise ConfigError(f"unknown settings: {', '.join(sorted(overrides))}")

    return Settings(
        env=env,
        instance_path=instance,
        database_url=database_url,
        broker_url=broker_url,
        result_backend=result_backend,
        key_dir=key_dir,
        log_origin=log_origin,
        secret_key=secret_key,
        checkpoint_interval_s=interval,
        registries=registries,
        redis_url=redis_url,
        proxy_hops=proxy_hops,
    )


@dataclass(frozen=True, slots=True)
class Secrets:
    """The platform's secrets, loaded from the key directory."""

    session_key: str = field(repr=False)
    fingerprint_key: bytes = field(repr=False)
    log_signing_key: Ed25519PrivateKey = field(repr=False)

    @property
    def log_public_key(self) -> bytes:
        return self.log_signing_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


def _read_secret_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"CARDTRACE_KEY_DIR: {path} is not a regular file")
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(
            f"CARDTRACE_KEY_DIR: {path} is missing; run 'cardtrace init' to create the "
            "platform's secrets"
        ) from e
    except OSError as e:
        raise ConfigError(f"CARDTRACE_KEY_DIR: cannot read {path}: {e.strerror}") from e


def _check_private(path: Path, settings: Settings) -> None:
    if settings.env is Environment.PRODUCTION and path.stat().st_mode & 0o077:
        raise ConfigError(
            f"CARDTRACE_KEY_DIR: {path} is readable by other users; run 'chmod 600 {path}'"
        )


def load_signing_key(path: Path, setting: str = "CARDTRACE_KEY_DIR") -> Ed25519PrivateKey:
    raw = _read_secret_file(path)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{setting}: {path} is not a PEM Ed25519 private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{setting}: {path} holds a key that is not Ed25519")
    return key


def load_secrets(settings: Settings) -> Secrets:
    """Load the session, fingerprint and log-signing secrets.

    ``CARDTRACE_SECRET_KEY`` overrides the session key file.

    Raises:
        ConfigError: a file is missing, unreadable or malformed, or (in production) a
            secret is weak or readable by others.
    """
    key_dir = settings.key_dir
    if settings.secret_key is not None:
        session_key = settings.secret_key
    else:
        path = key_dir / SESSION_KEY_FILE
        if path.exists():
            _check_private(path, settings)
        session_key = _read_secret_file(path).decode("ascii", "replace").strip()
    if settings.env is Environment.PRODUCTION and (
        session_key.lower() in _WEAK_SECRETS or len(session_key) < 32
    ):
        raise ConfigError(
            "CARDTRACE_SECRET_KEY is a default or shorter than 32 characters; production "
            "refuses it (generate one with 'cardtrace init' or 'openssl rand -hex 32')"
        )

    fp_path = key_dir / FINGERPRINT_KEY_FILE
    if fp_path.exists():
        _check_private(fp_path, settings)
    fingerprint_key = _read_secret_file(fp_path)
    if len(fingerprint_key) != 32:
        raise ConfigError(
            f"CARDTRACE_KEY_DIR: {fp_path} must hold exactly 32 bytes; it holds "
            f"{len(fingerprint_key)}"
        )

    log_path = key_dir / LOG_SIGNING_KEY_FILE
    if log_path.exists():
        _check_private(log_path, settings)
    log_key = load_signing_key(log_path)
    return Secrets(
        session_key=session_key, fingerprint_key=fingerprint_key, log_signing_key=log_key
    )


def _write_private(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


def ensure_secrets(settings: Settings) -> list[str]:
    """Create whichever platform secrets are missing, readable only by the owner.

    Existing files are never overwritten; they are loaded to prove they are usable.

    Returns:
        The names of the files created (empty when nothing was missing).

    Raises:
        ConfigError: the key directory cannot be created, or an existing secret is unusable.
    """
    created: list[str] = []
    try:
        settings.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"CARDTRACE_KEY_DIR: cannot create {settings.key_dir}: {e.strerror}"
        ) from e
    if not settings.key_dir.is_dir():
        raise ConfigError(f"CARDTRACE_KEY_DIR: {settings.key_dir} is not a directory")

    session_path = settings.key_dir / SESSION_KEY_FILE
    if settings.secret_key is None and not session_path.exists():
        _write_private(session_path, os.urandom(32).hex().encode("ascii") + b"\n")
        created.append(SESSION_KEY_FILE)

    fp_path = settings.key_dir / FINGERPRINT_KEY_FILE
    if not fp_path.exists():
        _write_private(fp_path, os.urandom(32))
        created.append(FINGERPRINT_KEY_FILE)

    pd_path = settings.key_dir / PERSONAL_DATA_KEY_FILE
    if not pd_path.exists():
        _write_private(pd_path, os.urandom(32))
        created.append(PERSONAL_DATA_KEY_FILE)

    log_path = settings.key_dir / LOG_SIGNING_KEY_FILE
    if not log_path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(log_path, pem)
        created.append(LOG_SIGNING_KEY_FILE)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pub_path = settings.key_dir / LOG_PUBLIC_KEY_FILE
        pub_path.unlink(missing_ok=True)
        pub_path.write_bytes(public)
        created.append(LOG_PUBLIC_KEY_FILE)

    load_secrets(settings)
    load_personal_data_key(settings)
    return created


def load_personal_data_key(settings: Settings) -> bytes:
    """The key that encrypts personal data at rest (ID numbers, bank accounts, documents).

    Kept apart from :class:`Secrets` so that the ledger and card codes run without it.

    Raises:
        ConfigError: the file is missing, unreadable, readable by others (production), or
            not 32 bytes.
    """
    path = settings.key_dir / PERSONAL_DATA_KEY_FILE
    if path.exists():
        _check_private(path, settings)
    key = _read_secret_file(path)
    if len(key) != 32:
        raise ConfigError(
            f"CARDTRACE_KEY_DIR: {path} must hold exactly 32 bytes; it holds {len(key)}"
        )
    return key

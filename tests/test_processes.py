"""The production entry points, run for real: gunicorn, a Celery worker on Redis, compose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import cardtrace_command, clean_env, free_port, run, stop, wait_for_http
from tests.services import REQUIRED, redis_url
from webapp import create_app
from webapp.tasks import ping

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def dockerfile_instruction(name: str) -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(name + " "):
            parsed: list[str] = json.loads(line[len(name) + 1 :])
            return parsed
    raise AssertionError(f"no {name} in the Dockerfile")


def test_image_entry_point_is_the_cardtrace_command() -> None:
    assert dockerfile_instruction("ENTRYPOINT") == ["cardtrace"]
    assert dockerfile_instruction("CMD") == compose()["services"]["web"]["command"]


def test_compose_file_is_valid() -> None:
    if (
        shutil.which("docker")
        and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        validator = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        validator = ["docker-compose"]
    elif REQUIRED:
        pytest.fail("no docker compose client to validate docker-compose.yml")
    else:
        pytest.skip("no docker compose client")
    result = subprocess.run(
        [*validator, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env={**os.environ, "POSTGRES_PASSWORD": "example"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}


def test_web_command_serves_healthz_under_gunicorn(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    command = list(compose()["services"]["web"]["command"])
    port = free_port()
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--workers") + 1] = "2"
    proc = subprocess.Popen(
        [*cardtrace_command(), *command],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = json.loads(wait_for_http(f"http://127.0.0.1:{port}/healthz", proc))
    finally:
        stop(proc)
    assert body["status"] == "ok"


def test_serve_refuses_production_without_secrets(tmp_path: Path) -> None:
    result = run(["serve", "--bind", "127.0.0.1:1"], tmp_path, CARDTRACE_ENV="production")
    assert result.returncode == 2
    assert result.stderr.startswith("cardtrace: error: CARDTRACE_KEY_DIR")


def test_task_runs_in_process_on_the_embedded_default(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    app = create_app({"instance_path": tmp_path / "instance", "env": "testing"})
    with app.app_context():
        result = ping.delay().get(timeout=10)
    assert result["pid"] == os.getpid()


def test_task_runs_through_a_real_worker_on_redis(tmp_path: Path) -> None:
    broker = redis_url()
    env = {"CARDTRACE_BROKER_URL": broker, "CARDTRACE_INSTANCE": str(tmp_path / "instance")}
    assert run(["init"], tmp_path, **env).returncode == 0
    queue = f"cardtrace-test-{uuid.uuid4().hex[:8]}"
    command = compose()["services"]["worker"]["command"]
    worker = subprocess.Popen(
        [
            *cardtrace_command(),
            *command,
            "--pool",
            "solo",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=tmp_path,
        env=clean_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = create_app({"broker_url": broker, "instance_path": tmp_path / "instance"})
        celery = app.extensions["celery"]
        result = celery.send_task("cardtrace.ping", queue=queue).get(timeout=60)
    finally:
        stop(worker)
    assert result["pid"] == worker.pid
    assert result["database"] == "sqlite"


def test_worker_without_a_broker_explains_why(tmp_path: Path) -> None:
    result = run(["worker"], tmp_path)
    assert result.returncode == 1
    assert "CARDTRACE_BROKER_URL is not set" in result.stderr

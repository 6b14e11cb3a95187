"""The image's way of running (issue 16, item 1): the wheel, installed (not editable) into a fresh
virtual environment, migrates SQLite and PostgreSQL from an empty folder and serves /healthz under
gunicorn. The dependencies come from this suite's environment (a path line in the new venv), so the
test costs seconds: what it checks is what the wheel itself carries."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests import db as testdb

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.wheel, pytest.mark.timeout(300)]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)])
    # issue 16, item 7: -v shows the build backend's warnings (a licence table, for one)
    assert "deprecat" not in (built.stdout + built.stderr).lower(), built.stdout[-3000:]
    [wheel] = (tmp / "dist").glob("qinling_field-*.whl")
    target = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(target)])
    _run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install", "--no-deps",
          "--no-index", "--no-compile", str(wheel)])
    site = Path(_run([str(target / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                .stdout.strip())
    (site / "zz_suite_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return target


def _env(instance: Path, database_url: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = instance.parent / "audit-log-key.pem"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENFORCE_", "PYTHON"))}
    env.update(ENFORCE_ENV="production", ENFORCE_SECRET_KEY="wheel-test-secret-key-0123456789",
               ENFORCE_INSTANCE_PATH=str(instance), ENFORCE_DATABASE_URL=database_url,
               ENFORCE_AUDIT_LOG_KEY=str(key), ENFORCE_LOG_JSON="false", PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'enforce.db'}"
        return
    if testdb.postgres_url() is None:
        pytest.skip("PostgreSQL runs when ENFORCE_DATABASE_URL points at it (.ci/run)")
    yield testdb.scratch_database_url(tmp_path, "wheel")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_installed_wheel_migrates_and_serves_healthz(venv: Path, database_url: str, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _env(tmp_path / "instance", database_url)
    where = _run([str(venv / "bin" / "python"), "-c", "import server; print(server.__file__)"], cwd=empty, env=env)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not this checkout

    upgraded = _run([str(venv / "bin" / "enforce"), "db", "upgrade"], cwd=empty, env=env)
    assert "Running upgrade  -> 762e2751f87f" in upgraded.stderr
    heads = _run([str(venv / "bin" / "enforce"), "db", "current"], cwd=empty, env=env)
    assert re.search(r"[0-9a-f]{12} \(head\)", heads.stdout), heads.stdout + heads.stderr

    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed after the server
    server = subprocess.Popen([str(venv / "bin" / "python"), "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                               "server:create_app()"], cwd=empty, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        body = None
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    body = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("gunicorn never answered /healthz within 60 s")
        assert body is not None, (tmp_path / "gunicorn.log").read_text()
        assert body["status"] == "ok" and body["checks"]["database"]["detail"] == database_url.split(":")[0].split("+")[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

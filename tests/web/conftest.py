"""Web page tests: one app on its own migrated database with the demo data, shared by the module.

Browser tests also serve it with a real WSGI server in a thread and drive Debian's Chromium with
Playwright. They are marked ``browser`` and skip only when /usr/bin/chromium is absent, or when
``TEST_SKIP_BROWSER=1`` (set by .ci/run for the PostgreSQL pass: the pages run once per CI).
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests import db as testdb

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "Qinling-2026"
HTML = {"Accept": "text/html"}


def browser_skip_reason() -> str | None:
    if os.environ.get("TEST_SKIP_BROWSER") == "1":
        return "TEST_SKIP_BROWSER=1: the browser tests run in the SQLite pass of .ci/run"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is absent: apt-get install -y chromium (.ci/run does)"
    return None


def demo_app(tmp: Path) -> Flask:
    from server.extensions import db
    from server.modules.demo import operations as demo

    # as `make run`: tasks in-process (whatever broker the suite was given), long ones on threads
    app = testdb.fresh_app(tmp, "web", BROKER_URL="memory://", TASK_THREADS=2)
    with app.app_context():
        demo.load(db.session, targets=400, inspectors=40)
        db.session.commit()
    return app


@pytest.fixture(scope="module")
def web_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from server.extensions import db

    app = demo_app(tmp_path_factory.mktemp("web"))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/console/login", headers=HTML)
    return client.post("/console/login", headers=HTML, data={"username": username, "password": password,
                                                             "csrf_token": csrf_of(page.get_data(as_text=True))})


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live(web_app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(web_app)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield chromium
        chromium.close()

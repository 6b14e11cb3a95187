"""Helpers for the field app's browser tests (tests/web/test_field_*.py): a phone-sized persistent
Chromium profile (so "close the browser and reopen it" keeps IndexedDB and the service worker),
enrolment, unlocking, media files made on the fly, and waits on the app's own state."""
from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path
from typing import Any

from tests.web.conftest import CHROMIUM, PASSWORD, SCREENSHOTS

PIN = "246810"
PHONE = {"width": 390, "height": 844}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
SITE = {"latitude": 33.993588, "longitude": 109.929098, "accuracy": 12}


def phone(browser: Any, profile: Path, *, offline: bool = False) -> Any:
    """A persistent phone profile: IndexedDB, the service worker and its cache survive a close."""
    return browser.browser_type.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=ARGS, viewport=PHONE, device_scale_factor=1,
        is_mobile=True, has_touch=True, geolocation=SITE, permissions=["geolocation"], offline=offline,
        locale="zh-CN", timezone_id="Asia/Shanghai", service_workers="allow")


def shot(page: Any, name: str, full: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"field-{name}.png"), full_page=full)


def enrol(page: Any, base: str, username: str = "inspector01", pin: str = PIN) -> None:
    page.goto(base + "/field/")
    page.fill("#f-username", username)
    page.fill("#f-password", PASSWORD)
    page.fill("#f-pin", pin)
    page.fill("#f-pin2", pin)
    page.click("#enrol-submit")
    page.wait_for_selector("#worklist", timeout=60000)


def unlock(page: Any, pin: str = PIN) -> None:
    page.wait_for_selector("#f-pin", timeout=30000)
    page.fill("#f-pin", pin)
    page.click("#unlock-submit")


def wait_until(page: Any, expression: str, timeout: int = 30000) -> None:
    """Poll ``expression`` in the page until it is true. Not ``page.wait_for_function``: that evaluates
    a string inside the page, which the field app's CSP (no 'unsafe-eval') refuses, as it should."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout / 1000
    while True:
        try:
            if page.evaluate(f"!!({expression})"):
                return
        except PlaywrightError as exc:  # the page is navigating (a reload): ask again on the new page
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} ms: {expression}")
        page.wait_for_timeout(100)


def wait_ready(page: Any) -> None:
    wait_until(page, "window.__qf && window.__qf.ready === true")


def wait_controlled(page: Any) -> None:
    """The service worker controls the page (the shell is cached): the app can boot offline."""
    wait_until(page, "navigator.serviceWorker.controller !== null")


def app_eval(page: Any, script: str) -> Any:
    return page.evaluate(f"(async () => {{ const qf = window.__qf; {script} }})()")


def jpeg(path: Path, seed: int) -> str:
    from PIL import Image

    image = Image.new("RGB", (320, 240), (seed * 70 % 256, 120, 200 - seed * 30 % 200))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def video(path: Path, megabytes: int) -> str:
    """An ISO-BMFF ('ftyp mp42') file of the given size: what the server's sniffer accepts as video/mp4."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
        fh.write(head)
        digest.update(head)
        remaining = megabytes * 1024 * 1024 - len(head)
        while remaining > 0:
            block = os.urandom(min(remaining, 1 << 20))
            fh.write(block)
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()

"""The field app's harder cases in Chromium at 390×844: a wrong PIN opens nothing; a revoked device
wipes itself; an edit to the same field from two devices shows the conflict on both; a video
upload dropped in the middle resumes with at most one chunk sent again; a 5,000-operation outbox
(three days offline) syncs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.web.field_helpers import (PIN, app_eval, enrol, phone, shot, unlock, video, wait_controlled, wait_ready,
                                     wait_until)

pytestmark = pytest.mark.browser


def _inspection(page: Any, index: int = -1) -> str:
    return app_eval(page, f"""
        const me = await qf.store.get("device");
        const all = (await qf.store.entitiesOf("inspection")).filter((i) => i.status !== "cancelled" &&
            (i.members || []).some((m) => m.user_id === me.user_id));
        all.sort((a, b) => a.id.localeCompare(b.id));
        return all.at({index}).id;""")


def _sync(page: Any, timeout: float = 120, media: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app_eval(page, "await qf.sync.syncNow('test'); return true;")
        state = app_eval(page, """return {depth: await qf.outbox.depth(), error: qf.sync.status.last_error,
            media: (await qf.media.list()).filter((m) => m.state !== "done").length};""")
        if state["depth"] == 0 and (not media or state["media"] == 0):
            return
        page.wait_for_timeout(300)
    raise AssertionError(f"not synced: {state}")


def test_a_wrong_pin_opens_nothing(browser: Any, live: Any, tmp_path: Path) -> None:
    ctx = phone(browser, tmp_path / "p")
    page = ctx.new_page()
    enrol(page, live.url, "inspector02")
    page.goto(f"{live.url}/field/#/settings")
    page.click("#lock-now")
    unlock(page, "999999")
    page.wait_for_selector("#pin-error")
    shot(page, "09-wrong-pin")
    assert app_eval(page, "return qf.vault.isUnlocked();") is False
    # the stored values are ciphertext: nothing can be read without the PIN's key
    assert app_eval(page, "try { await qf.store.get('tokens'); return 'read'; } catch (e) { return String(e.message); }") == "locked"
    raw = app_eval(page, "const box = await (await qf.store.db()).get('vault', 'package'); return Object.keys(box).sort();")
    assert raw == ["ct", "iv"]
    unlock(page, PIN)
    page.wait_for_selector("#lock-now")  # back where it was locked (settings)
    assert app_eval(page, "return (await qf.store.get('tokens')).device_id.length;") == 36
    ctx.close()


def test_a_revoked_device_wipes_itself(browser: Any, live: Any, web_app: Any, tmp_path: Path) -> None:
    from server.extensions import db
    from server.modules.devices import operations as devices

    ctx = phone(browser, tmp_path / "p")
    page = ctx.new_page()
    enrol(page, live.url, "inspector02")
    device_id = app_eval(page, "return (await qf.store.get('device')).device_id;")
    with web_app.app_context():
        devices.revoke(db.session, devices.get_device(db.session, device_id), "遗失 / lost in the field")
        db.session.commit()
    app_eval(page, "await qf.sync.syncNow('test'); return true;")
    page.wait_for_selector("#wiped", timeout=30000)
    shot(page, "10-revoked")
    names = page.evaluate("(async () => (await indexedDB.databases()).map((d) => d.name))()")
    assert "qinling-field" not in names
    page.reload()
    page.wait_for_selector("#enrol")  # nothing left: the app asks to enrol again
    ctx.close()


def test_the_same_field_edited_on_two_devices_shows_the_conflict_on_both(browser: Any, live: Any, tmp_path: Path) -> None:
    first = phone(browser, tmp_path / "a")
    second = phone(browser, tmp_path / "b")
    a, b = first.new_page(), second.new_page()
    enrol(a, live.url)
    enrol(b, live.url)
    inspection_id = _inspection(a)
    # both edit the same field of the same record from the same base version; A syncs first
    second.set_offline(True)
    app_eval(a, f"await qf.outbox.editRecord('{inspection_id}', {{findings: '排口无异常'}}); return true;")
    app_eval(b, f"await qf.outbox.editRecord('{inspection_id}', {{findings: '排口有黑色废水'}}); return true;")
    _sync(a)
    second.set_offline(False)
    _sync(b)
    b.goto(f"{live.url}/field/#/sync")
    b.wait_for_selector("#problems .conflict")
    assert "排口无异常" in b.inner_text("#problems .conflict .cur")
    assert "排口有黑色废水" in b.inner_text("#problems .conflict .yours")
    shot(b, "11-conflict", full=True)
    _sync(a)
    a.goto(f"{live.url}/field/#/sync")
    a.wait_for_selector("#s-conflicts")
    assert int(a.inner_text("#s-conflicts")) >= 1
    a.goto(f"{live.url}/field/#/i/{inspection_id}/record")
    a.wait_for_selector("#record-form")
    assert "1" in a.inner_text("main p.error")
    first.close()
    second.close()


def test_a_dropped_video_upload_resumes_with_at_most_one_chunk_sent_again(browser: Any, live: Any, web_app: Any,
                                                                         tmp_path: Path) -> None:
    from server.extensions import db
    from server.modules.evidence.models import EvidenceItem, EvidenceStatus

    clip = tmp_path / "bodycam.mp4"
    digest = video(clip, 32)  # 8 chunks of 4 MiB
    profile = tmp_path / "p"
    ctx = phone(browser, profile)
    page = ctx.new_page()
    enrol(page, live.url)
    wait_controlled(page)
    inspection_id = _inspection(page, 0)
    offsets: list[int] = []
    page.on("request", lambda r: offsets.append(int(r.headers.get("upload-offset", "-1")))
            if r.method == "PATCH" and "/mobile/v1/uploads/" in r.url else None)
    ctx.set_offline(True)
    page.goto(f"{live.url}/field/#/i/{inspection_id}")
    page.wait_for_selector("#video-input", state="attached")
    page.set_input_files("#video-input", str(clip))
    wait_until(page, "document.querySelectorAll('#media-list .media[data-sha]:not([data-sha=\"\"])').length >= 1",
                           timeout=120000)
    # a slow mountain link (4 MiB/s up), and it drops once three chunks have been acknowledged
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                   "uploadThroughput": 4 * 1024 * 1024})
    ctx.set_offline(False)
    app_eval(page, "qf.sync.syncNow('test'); return true;")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = app_eval(page, "const m = (await qf.media.list()).find((x) => x.kind === 'video'); return m.offset || 0;")
        if done >= 3 * 4 * 1024 * 1024:
            break
        page.wait_for_timeout(50)
    ctx.set_offline(True)
    cdp.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                   "uploadThroughput": -1})
    wait_until(page, "!window.__qf.sync.status.running", timeout=60000)
    partial = app_eval(page, "const m = (await qf.media.list()).find((x) => x.kind === 'video'); return [m.state, m.offset, !!m.upload_url];")
    assert partial[0] == "uploading" and partial[2] and 0 < partial[1] < 32 * 1024 * 1024
    # the app is closed in the dead zone and opened again once there is signal: it resumes
    ctx.close()
    ctx = phone(browser, profile)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.on("request", lambda r: offsets.append(int(r.headers.get("upload-offset", "-1")))
            if r.method == "PATCH" and "/mobile/v1/uploads/" in r.url else None)
    page.goto(f"{live.url}/field/")
    unlock(page)
    wait_ready(page)
    _sync(page, media=True)
    chunk = 4 * 1024 * 1024
    sent_again = len(offsets) - len(set(offsets))
    assert sent_again <= 1, offsets
    assert sorted(set(offsets)) == list(range(0, 32 * 1024 * 1024, chunk)), offsets
    with web_app.app_context():
        item = db.session.scalar(sa.select(EvidenceItem).where(EvidenceItem.sha256 == digest))
        assert item is not None and item.status == EvidenceStatus.VERIFIED
    ctx.close()


def test_a_five_thousand_operation_outbox_syncs(browser: Any, live: Any, web_app: Any, tmp_path: Path) -> None:
    from server.extensions import db
    from server.modules.sync.models import InspectionNote

    ctx = phone(browser, tmp_path / "p")
    page = ctx.new_page()
    enrol(page, live.url, "inspector02")
    inspection_id = _inspection(page, 0)
    ctx.set_offline(True)
    app_eval(page, f"""
        const items = [];
        for (let i = 0; i < 5000; i++) items.push(["note", "append", {{id: crypto.randomUUID(),
            inspection_id: "{inspection_id}", text: `第${{i}}条 / day ${{Math.floor(i / 1700) + 1}}`}}]);
        await qf.outbox.enqueueMany(items); return true;""")
    assert app_eval(page, "return await qf.outbox.depth();") == 5000
    ctx.set_offline(False)
    _sync(page, timeout=300)
    with web_app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(InspectionNote).where(
            InspectionNote.inspection_id == inspection_id, InspectionNote.text.like("第%条 / day %")))
        assert count == 5000
    ctx.close()


def test_an_expired_colleague_cannot_be_recorded_and_the_app_locks_when_idle(browser: Any, live: Any, web_app: Any,
                                                                            tmp_path: Path) -> None:
    import datetime as dt

    from server.extensions import db
    from server.modules.users.models import Certificate

    ctx = phone(browser, tmp_path / "p")
    page = ctx.new_page()
    enrol(page, live.url)
    inspection_id, colleague = app_eval(page, """
        const me = await qf.store.get("device");
        const all = (await qf.store.entitiesOf("inspection")).filter((i) =>
            (i.members || []).some((m) => m.user_id === me.user_id) && i.members.length > 1);
        all.sort((a, b) => a.id.localeCompare(b.id));
        return [all[0].id, all[0].members.find((m) => m.user_id !== me.user_id).user_id];""")
    with web_app.app_context():
        certificates = db.session.scalars(sa.select(Certificate).where(Certificate.user_id == colleague)).all()
        kept = {c.id: (c.valid_from, c.valid_until) for c in certificates}
        for c in certificates:
            c.valid_from, c.valid_until = dt.date(2019, 1, 1), dt.date(2020, 1, 1)
        db.session.commit()
    try:
        app_eval(page, "await qf.sync.syncNow('test'); return true;")  # the package says so; then offline
        ctx.set_offline(True)
        page.goto(f"{live.url}/field/#/i/{inspection_id}")
        page.wait_for_selector("#second-inspector")
        option = page.locator(f'#second-inspector option[value="{colleague}"]')
        assert option.get_attribute("disabled") is not None
        assert page.locator(f'#team .member.bad[data-user="{colleague}"]').count() == 1
        page.locator(f'#team .member.bad[data-user="{colleague}"]').scroll_into_view_if_needed()
        shot(page, "17-expired-colleague")
    finally:
        with web_app.app_context():
            for c in db.session.scalars(sa.select(Certificate).where(Certificate.id.in_(list(kept)))):
                c.valid_from, c.valid_until = kept[c.id]
            db.session.commit()
    # idle in the middle of the record: the key is forgotten, the PIN asked again, nothing typed is lost
    page.goto(f"{live.url}/field/#/i/{inspection_id}/record")
    page.wait_for_selector("#r-findings")
    page.fill("#r-findings", "未保存的检查情况：排口旁有暗管")
    page.evaluate("localStorage.setItem('qf-idle-ms', '1500')")
    page.wait_for_selector("#f-pin", timeout=20000)
    assert app_eval(page, "return qf.vault.isUnlocked();") is False
    page.evaluate("localStorage.removeItem('qf-idle-ms')")
    unlock(page)
    page.wait_for_selector("#r-findings")
    assert page.input_value("#r-findings") == "未保存的检查情况：排口旁有暗管"
    ctx.close()


def test_a_new_version_is_offered_never_forced(browser: Any, live: Any, tmp_path: Path, monkeypatch: Any) -> None:
    import shutil

    from server.web import field_app

    ctx = phone(browser, tmp_path / "p")
    page = ctx.new_page()
    enrol(page, live.url, "inspector02")
    wait_controlled(page)
    page.goto(f"{live.url}/field/#/settings")
    page.wait_for_selector("#lock-now")
    # the server now has a new build (another service worker)
    newer = tmp_path / "field"
    shutil.copytree(field_app.FIELD_DIR, newer)
    worker = newer / "sw.js"
    worker.write_text(worker.read_text(encoding="utf-8") + "\n// next version\n", encoding="utf-8")
    monkeypatch.setattr(field_app, "FIELD_DIR", newer)
    page.evaluate("(async () => { const reg = await navigator.serviceWorker.getRegistration('/field/'); await reg.update(); })()")
    page.wait_for_selector("#update", timeout=30000)
    page.wait_for_timeout(500)
    assert page.locator("#lock-now").count() == 1  # nothing reloaded: still where the inspector was
    shot(page, "18-update-offered")
    page.click("#update")
    wait_until(page, "window.__qf && window.__qf.ready === true && !document.getElementById('update')", timeout=30000)
    unlock(page)  # the reload forgot the key, as any restart does
    page.wait_for_selector("#lock-now")
    ctx.close()

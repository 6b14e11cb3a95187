"""The field app (/field/) end to end in Debian's Chromium at 390×844: enrol, download the offline
package, go offline, reload, check in, fill the 现场检查笔录, attach three photos and a video, take the
party's signature, close the browser and reopen it offline, then come back online: the server holds
the record, the check-in, the signature and verified evidence items whose SHA-256 equal the files'."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.web.field_helpers import (PIN, app_eval, enrol, jpeg, phone, shot, unlock, video, wait_controlled,
                                     wait_ready, wait_until)

pytestmark = pytest.mark.browser


def _my_assigned_inspection(page: Any) -> str:
    return app_eval(page, """
        const me = await qf.store.get("device");
        const all = await qf.store.entitiesOf("inspection");
        const mine = all.filter((i) => i.status === "assigned" && (i.members || []).some((m) => m.user_id === me.user_id));
        mine.sort((a, b) => a.id.localeCompare(b.id));
        return mine[0].id;""")


def _wait_synced(page: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = app_eval(page, """
            const depth = await qf.outbox.depth();
            const media = await qf.media.list();
            return depth === 0 && media.length > 0 && media.every((m) => m.state === "done");""")
        if done:
            return
        if not app_eval(page, "return qf.sync.status.running;"):
            app_eval(page, "qf.sync.syncNow('test'); return true;")
        page.wait_for_timeout(500)
    raise AssertionError(f"not synced within {timeout} s: " + str(app_eval(page, """
        return {depth: await qf.outbox.depth(), error: qf.sync.status.last_error,
                media: (await qf.media.list()).map((m) => [m.kind, m.state, m.offset, m.size])};""")))


def test_a_whole_inspection_offline_lands_intact(browser: Any, live: Any, web_app: Any, tmp_path: Path) -> None:
    from server.extensions import db
    from server.modules.evidence.models import EvidenceItem, EvidenceStatus
    from server.modules.sync.models import CheckIn, InspectionRecord

    profile = tmp_path / "profile"
    photos = [tmp_path / f"photo{i}.jpg" for i in range(3)]
    photo_hashes = [jpeg(path, i) for i, path in enumerate(photos)]
    clip = tmp_path / "clip.mp4"
    clip_hash = video(clip, 24)

    # 1. enrol while online; the package is downloaded; the service worker takes control
    ctx = phone(browser, profile)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(live.url + "/field/")
    page.wait_for_selector("#enrol")
    shot(page, "00-enrol")
    enrol(page, live.url)
    wait_controlled(page)
    shot(page, "01-worklist")
    page.click("#tab-cert")
    page.wait_for_selector("#cert-qr svg")
    assert page.inner_text("#cert-number").startswith("陕")
    shot(page, "12-certificate")
    page.click("#tab-settings")
    page.wait_for_selector("#storage")
    shot(page, "13-settings")
    page.click("#lang")  # English switch
    page.wait_for_selector("#tab-list:has-text('Work list')")
    shot(page, "14-settings-en")
    page.click("#lang")
    page.click("#tab-list")
    inspection_id = _my_assigned_inspection(page)

    # 2. the network goes off; the page reloads and still works (PIN unlocks the local data)
    ctx.set_offline(True)
    page.reload()
    page.wait_for_selector("#f-pin")
    shot(page, "15-locked-offline")
    unlock(page)
    page.wait_for_selector("#worklist")
    wait_ready(page)
    assert page.locator(f'#worklist a.card[data-id="{inspection_id}"]').count() == 1

    # 3. on site, offline: check in, the record, three photos and a video, the party's signature
    page.goto(f"{live.url}/field/#/i/{inspection_id}")
    page.wait_for_selector("#checkin")
    page.click("#dossier summary")
    shot(page, "16-inspection-full", full=True)
    assert page.locator("#team .member.ok").count() >= 2
    page.click("#checkin")
    page.wait_for_selector("#checkin-state:has-text('✓')")
    shot(page, "02-inspection")
    page.click("#open-record")
    page.wait_for_selector("#record-form")
    page.click("#record-save")  # required fields still empty: refused with the fields marked
    page.wait_for_selector("#form-error:not(:empty)")
    assert page.locator(".invalid").count() >= 1
    shot(page, "03-record-invalid")
    page.fill("#r-started_at", "2026-12-08T09:30")
    page.check("#r-identity_shown")
    page.fill("#r-party_representative", "王建国")
    page.fill("#r-findings", "雨水排口有黄色废水外排，现场采样2份")
    page.select_option("select[name='checklist.outlets']", "不符合")
    shot(page, "04-record", full=True)
    page.click("#record-save")
    page.wait_for_selector("#checkin")
    colleague = page.locator("#second-inspector option:not([disabled])").nth(1).get_attribute("value")
    page.select_option("#second-inspector", colleague)
    page.set_input_files("#photo-input", [str(p) for p in photos])
    wait_until(page, "document.querySelectorAll('#media-list .media[data-sha]:not([data-sha=\"\"])').length >= 3",
                           timeout=60000)
    page.set_input_files("#video-input", str(clip))
    wait_until(page, "document.querySelectorAll('#media-list .media[data-sha]:not([data-sha=\"\"])').length >= 4",
                           timeout=120000)
    shot(page, "05-media")
    page.click("#open-sign")
    page.wait_for_selector("#sigpad")
    box = page.locator("#sigpad").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 100)
    page.mouse.down()
    for step in range(12):
        page.mouse.move(box["x"] + 40 + step * 25, box["y"] + 60 + (step % 3) * 30)
    page.mouse.up()
    page.click("#sig-save")
    page.wait_for_selector("#sig-state:has-text('✓')", timeout=30000)
    shot(page, "06-signature")
    signature_hash = app_eval(page, "return (await qf.media.list()).find((m) => m.kind === 'signature').sha256;")
    captures = app_eval(page, "return (await qf.media.list()).map((m) => [m.id, m.kind, m.sha256]);")

    # 4. the browser is closed and reopened with no network: everything is still there
    ctx.close()
    ctx = phone(browser, profile, offline=True)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(f"{live.url}/field/#/sync")
    unlock(page)
    page.wait_for_selector("#s-depth")
    depth = int(page.inner_text("#s-depth"))
    assert depth >= 8  # status, record edits, check-in, 4 manifests + signature manifest, signature field
    assert app_eval(page, "return (await qf.media.list()).length;") == 5
    shot(page, "07-sync-offline")

    # 5. the network comes back: push, pull, uploads
    ctx.set_offline(False)
    _wait_synced(page)
    page.goto(f"{live.url}/field/#/sync")
    page.wait_for_selector("#s-depth")
    assert page.inner_text("#s-depth") == "0"
    shot(page, "08-sync-done")
    ctx.close()

    with web_app.app_context():
        items = db.session.scalars(sa.select(EvidenceItem).where(EvidenceItem.inspection_id == inspection_id)).all()
        verified = {i.sha256 for i in items if i.status == EvidenceStatus.VERIFIED}
        by_capture = {i.client_id: i for i in items}
        photo_ids = [cid for cid, kind, _ in captures if kind == "photo"]
        assert sorted(sha for _, kind, sha in captures if kind == "photo") == sorted(photo_hashes)
        assert all(by_capture[cid].manifest["second_inspector_id"] == int(colleague) for cid in photo_ids)
        assert set(photo_hashes) | {clip_hash, signature_hash} <= verified
        record = db.session.scalar(sa.select(InspectionRecord).where(InspectionRecord.inspection_id == inspection_id))
        assert record.fields["findings"] == "雨水排口有黄色废水外排，现场采样2份"
        assert record.fields["party_signature_sha256"] == signature_hash
        assert record.fields["checklist"]["outlets"] == "不符合"
        check_ins = db.session.scalars(sa.select(CheckIn).where(CheckIn.inspection_id == inspection_id)).all()
        assert any(abs(c.lat - 33.993588) < 1e-5 and abs(c.lon - 109.929098) < 1e-5 for c in check_ins)
    assert PIN

"""Issue 14 item 3: the receiving side sees a transfer from the hand-over on (衔接办法 第6、7条);
earlier only what the bureau explicitly shares: a consultation (会商, 第24条) with the office
consulted, a request for the procuratorate's early involvement (提前介入), and a refusal to the
procuratorate that supervises it (第14条)."""
from __future__ import annotations

import datetime as dt

from tests.helpers import assert_contract, staff_headers

T0 = dt.datetime(2026, 8, 20, 2, 0, tzinfo=dt.timezone.utc)
READS = ("", "/history", "/materials", "/evidence", "/summary", "/deadlines", "/acknowledgements", "/packages")


def H(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _sees(client, user, transfer_id: str) -> bool:
    """Every read of the transfer answers alike: all 200, or all the contract's 403; and the list agrees."""
    answers = {path: client.get(f"/api/v1/transfers/{transfer_id}{path}", headers=staff_headers(user))
               for path in READS}
    listed = transfer_id in {t["id"] for t in client.get("/api/v1/transfers?page_size=100",
                                                          headers=staff_headers(user)).json}
    if all(r.status_code == 200 for r in answers.values()):
        assert listed
        return True
    for response in answers.values():
        assert_contract(response, 403, "transfer.out_of_scope")
        assert b"\xe6\xb6\x89\xe5\xab\x8c" not in response.data  # 涉嫌: nothing of the transfer in the refusal
    assert not listed
    return False


def _prepared(db_session, scene):
    w = scene.w
    t = scene.create(db_session)
    scene.step(db_session, t, "form_team", w.a, at=H(0), member_ids=[w.a.id, w.b.id])
    scene.step(db_session, t, "submit_report", w.a, at=H(1))
    scene.add_required(db_session, t, at=H(2))
    return t


def test_nothing_before_the_hand_over_then_both_receivers(client, db_session, scene):
    w = scene.w
    t = _prepared(db_session, scene)
    db_session.commit()
    assert _sees(client, w.a, t.id)  # the bureau's own handler
    assert not _sees(client, scene.police, t.id) and not _sees(client, scene.prosecutor, t.id)
    scene.step(db_session, t, "approve", w.head, at=H(5))
    db_session.commit()
    assert not _sees(client, scene.police, t.id) and not _sees(client, scene.prosecutor, t.id)
    # a step of the receiving side is refused too: it is not yet a party
    assert_contract(client.post(f"/api/v1/transfers/{t.id}/steps/sign_receipt", headers=staff_headers(scene.police),
                                json={}), 403)
    scene.step(db_session, t, "hand_over", w.a, at=H(20))
    db_session.commit()
    assert _sees(client, scene.police, t.id) and _sees(client, scene.prosecutor, t.id)
    assert not _sees(client, scene.other_police, t.id)  # another police office never


def test_a_consultation_shares_with_the_office_consulted_only(client, db_session, scene):
    t = _prepared(db_session, scene)
    db_session.commit()
    asked = client.post(f"/api/v1/transfers/{t.id}/steps/consult", headers=staff_headers(scene.w.a), json={
        "to": "police", "question": "危险废物跨省转移后再处置的，立案追诉标准如何计算数量？"})
    assert asked.status_code == 200, asked.json
    assert _sees(client, scene.police, t.id) and not _sees(client, scene.prosecutor, t.id)


def test_early_involvement_shares_with_the_procuratorate(client, db_session, scene):
    t = _prepared(db_session, scene)
    db_session.commit()
    assert_contract(client.post(f"/api/v1/transfers/{t.id}/steps/request_early_involvement",
                                headers=staff_headers(scene.w.a), json={"reason": "短"}), 409, "transfer.guard_failed")
    asked = client.post(f"/api/v1/transfers/{t.id}/steps/request_early_involvement", headers=staff_headers(scene.w.a),
                        json={"reason": "案情重大，商请检察院提前介入，引导固定危险废物数量的证据"})
    assert asked.status_code == 200, asked.json
    assert _sees(client, scene.prosecutor, t.id) and not _sees(client, scene.police, t.id)
    assert_contract(client.post(f"/api/v1/transfers/{t.id}/steps/request_early_involvement",
                                headers=staff_headers(scene.prosecutor), json={"reason": "检察院不能自行请求提前介入"}),
                    403, "transfer.wrong_side")


def test_a_refusal_is_open_to_the_procuratorate_that_supervises_it(client, db_session, scene):
    t = _prepared(db_session, scene)
    scene.step(db_session, t, "refuse", scene.w.head, at=H(3), reason="复检称重为2.1吨，未达三吨标准，鉴定报告附后")
    db_session.commit()
    assert _sees(client, scene.prosecutor, t.id) and not _sees(client, scene.police, t.id)

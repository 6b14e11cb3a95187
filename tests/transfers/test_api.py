"""Transfer API: the bureau acts, the receiving offices see only their transfers, and every view or
download by them is a custody event per evidence item plus an audit entry."""
import base64

import sqlalchemy as sa

from server.modules.evidence.models import CustodyEvent
from tests.helpers import assert_contract, audit_entries, staff_headers
from tests.transfers.test_workflow import handed_over


def _custody(db_session, item, action):
    return db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == item.id,
                                                            CustodyEvent.action == action)).all()


def test_bureau_starts_and_steps_through_the_api(client, db_session, scene):
    w = scene.w
    response = client.post("/api/v1/transfers", headers=staff_headers(w.head), json={
        "case_id": scene.case.id, "police_unit_id": scene.police_unit.id,
        "procuratorate_unit_id": scene.procuratorate_unit.id, "suspected_offence": "污染环境罪",
        "legal_basis": "刑法 第338条", "reason": "非法处置危险废物4.5吨，涉嫌污染环境罪"})
    assert response.status_code == 201, response.json
    tid = response.json["id"]
    ok = client.post(f"/api/v1/transfers/{tid}/steps/form_team", headers=staff_headers(w.a),
                     json={"member_ids": [w.a.id, w.b.id]})
    assert ok.status_code == 200 and ok.json["state"] == "team_formed"
    client.post(f"/api/v1/transfers/{tid}/steps/submit_report", headers=staff_headers(w.a), json={})
    denied = client.post(f"/api/v1/transfers/{tid}/steps/approve", headers=staff_headers(w.a), json={})
    assert_contract(denied, 403, "transfer.wrong_side")
    client.post(f"/api/v1/transfers/{tid}/steps/approve", headers=staff_headers(w.head), json={})
    refused = client.post(f"/api/v1/transfers/{tid}/steps/hand_over", headers=staff_headers(w.a), json={})
    body = assert_contract(refused, 409, "transfer.missing_documents")
    assert {m["code"] for m in body["context"]["missing"]} == {"inspection_records", "items_list"}
    materials = client.get(f"/api/v1/transfers/{tid}/materials", headers=staff_headers(w.a)).json
    assert {m["code"] for m in materials["missing"]} == {"inspection_records", "items_list"}
    for code in ("inspection_records", "items_list"):
        added = client.post(f"/api/v1/transfers/{tid}/steps/add_material", headers=staff_headers(w.a), json={
            "code": code, "filename": f"{code}.pdf", "content_base64": base64.b64encode(b"%PDF-1.4 x").decode()})
        assert added.status_code == 200, added.json
    assert client.post(f"/api/v1/transfers/{tid}/steps/hand_over", headers=staff_headers(w.a),
                       json={}).json["state"] == "handed_over"
    history = client.get(f"/api/v1/transfers/{tid}/history", headers=staff_headers(w.a)).json
    assert [h["action"] for h in history][:4] == ["start", "form_team", "submit_report", "approve"]
    deadlines = client.get(f"/api/v1/transfers/{tid}/deadlines", headers=staff_headers(scene.police)).json
    assert {d["type"] for d in deadlines} >= {"transfer_decision", "transfer_handover"}
    workflow = client.get("/api/v1/transfers/workflow", headers=staff_headers(scene.police)).json
    assert "criminal" in workflow["required_documents"]


def test_receiving_offices_see_only_their_transfers_and_each_access_is_custody(client, db_session, scene):
    t = handed_over(db_session, scene)
    db_session.commit()
    police, other, prosecutor = (staff_headers(u) for u in (scene.police, scene.other_police, scene.prosecutor))
    assert [x["id"] for x in client.get("/api/v1/transfers", headers=police).json] == [t.id]
    assert client.get("/api/v1/transfers", headers=other).json == []
    assert [x["id"] for x in client.get("/api/v1/transfers", headers=prosecutor).json] == [t.id]
    assert_contract(client.get(f"/api/v1/transfers/{t.id}", headers=other), 403, "transfer.out_of_scope")
    assert_contract(client.get(f"/api/v1/transfers/{t.id}/evidence", headers=other), 403, "transfer.out_of_scope")
    assert_contract(client.post(f"/api/v1/transfers/{t.id}/steps/sign_receipt", headers=other,
                                json={"method": "typed", "typed_confirmation": "已签收"}), 403)
    listed = client.get(f"/api/v1/transfers/{t.id}/evidence", headers=police)
    assert listed.status_code == 200 and len(listed.json) == 3
    assert all(len(_custody(db_session, item, "viewed")) == 1 for item in scene.items)
    item = scene.items[0]
    original = client.get(f"/api/v1/transfers/{t.id}/evidence/{item.id}/original", headers=prosecutor)
    assert original.status_code == 200 and original.data[:2] == b"\xff\xd8"
    downloaded = _custody(db_session, item, "downloaded")
    assert downloaded[-1].detail["transfer"] == t.id and downloaded[-1].actor_id == str(scene.prosecutor.id)
    assert audit_entries("web:transfer:downloaded", transfer=t.id)
    receipt = client.post(f"/api/v1/transfers/{t.id}/steps/sign_receipt", headers=police,
                          json={"method": "scan", "scan_base64": base64.b64encode(b"%PDF scan of slip").decode()})
    assert receipt.status_code == 200 and receipt.json["state"] == "receipt_signed"
    acks = client.get(f"/api/v1/transfers/{t.id}/acknowledgements", headers=staff_headers(scene.w.a)).json
    assert acks[0]["method"] == "scan" and acks[0]["scan_sha256"]
    key = client.post("/api/v1/transfers/receiver-keys", headers=police,
                      json={"public_key": base64.b64encode(b"\x01" * 32).decode()})
    assert key.status_code == 201
    assert_contract(client.post("/api/v1/transfers/receiver-keys", headers=staff_headers(scene.w.a),
                                json={"public_key": base64.b64encode(b"\x02" * 32).decode()}), 403)
    board = client.get("/api/v1/transfers/deadlines", headers=police).json
    assert board["totals"]["due"] + board["totals"]["overdue"] >= 1

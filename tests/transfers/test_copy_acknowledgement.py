"""The procuratorate acknowledges its copy of a transfer (衔接办法 第6条) without moving the state."""
import pytest

from server.modules.transfers import operations as ops
from server.modules.transfers.models import TransferState as S
from server.modules.transfers.workflow import WrongSide
from tests.helpers import audit_entries
from tests.transfers.conftest import principal
from tests.transfers.test_workflow import H, handed_over


def test_prosecutor_acknowledges_the_copy_after_the_hand_over(db_session, scene):
    t = handed_over(db_session, scene)
    handed_over_at, t.handed_over_at = t.handed_over_at, None
    # not yet copied: the procuratorate is not a party to the transfer (issue 14 item 3)
    with pytest.raises(WrongSide):
        ops.acknowledge_copy(db_session, t, by=scene.prosecutor, principal=principal(scene.prosecutor),
                             data={"method": "typed", "typed_confirmation": "已收到抄送"})
    t.handed_over_at = handed_over_at
    ack = ops.acknowledge_copy(db_session, t, by=scene.prosecutor, principal=principal(scene.prosecutor),
                               data={"method": "typed", "typed_confirmation": "已收到抄送 王五"}, at=H(22))
    assert t.state is S.HANDED_OVER and ack.unit_id == scene.procuratorate_unit.id
    assert ack.summary_sha256 and [a.id for a in ops.acknowledgements(db_session, t)] == [ack.id]
    db_session.commit()
    assert audit_entries("web:transfer:copy_acknowledged", transfer=t.id)
    with pytest.raises(WrongSide):
        ops.acknowledge_copy(db_session, t, by=scene.police, principal=principal(scene.police),
                             data={"method": "typed", "typed_confirmation": "已签收"})
